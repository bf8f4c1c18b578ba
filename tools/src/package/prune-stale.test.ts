import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { pruneStale } from './prune-stale.js';

const dir = mkdtempSync(join(tmpdir(), 'attnopt-prune-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('built files without a source are deleted; sources, other files and kept files stay', () => {
  const files = ['src/a.ts', 'src/sub/b.ts', 'dist/a.js', 'dist/a.d.ts', 'dist/sub/b.js', 'dist/gone.js', 'dist/gone.d.ts', 'dist/sub/old.js', 'dist/notes.ts', 'dist/bundle.js'];
  for (const f of files) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), '');
  }
  const removed = pruneStale(dir, ['bundle.js']).map((f) => f.slice(dir.length + 1)).sort();
  expect(removed).toEqual(['dist/gone.d.ts', 'dist/gone.js', 'dist/sub/old.js']);
  for (const f of files) expect(existsSync(join(dir, f)), f).toBe(!removed.includes(f));
});
