import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { checkBoundaries } from './boundaries.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('module boundaries', () => {
  test('the workspace keeps the architecture table and imports packages only through their entry', () => {
    expect(checkBoundaries(root)).toEqual([]);
  });

  test('a forbidden import and a deep import are reported with file and line', () => {
    const fake = mkdtempSync(join(tmpdir(), 'attnopt-boundaries-'));
    mkdirSync(join(fake, 'packages', 'ir', 'src'), { recursive: true });
    writeFileSync(
      join(fake, 'packages', 'ir', 'src', 'a.ts'),
      "import { x } from './x.js';\nimport { y } from '@attnopt/reference';\nexport * from '@attnopt/ir/src/graph.js';\n",
    );
    const found = checkBoundaries(fake);
    rmSync(fake, { recursive: true, force: true });
    expect(found).toEqual([
      { file: 'packages/ir/src/a.ts', line: 2, message: 'ir may not import @attnopt/reference (allowed: none)' },
      { file: 'packages/ir/src/a.ts', line: 3, message: 'deep import @attnopt/ir/src/graph.js: import @attnopt/ir only' },
    ]);
  });
});
