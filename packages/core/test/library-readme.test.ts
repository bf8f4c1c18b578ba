// The example in README.md runs as written.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = resolve(here, '../../..');

test('the README example prints every site of tiny-bert, a kernel and the optimized size', () => {
  const readme = readFileSync(resolve(here, '../README.md'), 'utf8');
  const code = /```js\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(code).toBeDefined();
  const r = spawnSync(process.execPath, ['--conditions=@attnopt/source', '--import', 'tsx', '--input-type=module', '-e', code!], {
    cwd: root,
    encoding: 'utf8',
    timeout: 110_000,
    env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' },
  });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const lines = r.stdout.trim().split('\n');
  // tiny-bert: 2 layers, 4 heads of 16, a padding mask from its input (nothing to prove)
  expect(lines.slice(0, 2)).toEqual(['site0: 4 heads x 16, keys dense', 'site1: 4 heads x 16, keys dense']);
  expect(lines[2]).toMatch(/^site0\.wgsl: attention over 4 heads, head size 16/);
  expect(lines[3]).toMatch(/^site0: dense/);
  expect(lines[5]).toMatch(/^\d+ bytes$/);
});
