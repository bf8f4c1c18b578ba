// The final write holds SIGINT / SIGTERM / SIGHUP: a signal arriving in the middle of it takes effect once the
// write is complete (the process then dies of it, as a caller expects), never cutting the write in half.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, test } from 'vitest';

const here = fileURLToPath(new URL('.', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'attnopt-signals-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

test('SIGTERM during a held write: the write completes, then the process dies of SIGTERM', () => {
  const out = join(scratch, 'out.txt');
  const r = spawnSync(process.execPath, ['--import', 'tsx', resolve(here, 'scripts/hold-signals.ts'), out], { encoding: 'utf8', timeout: 30_000 });
  expect(r.stderr).toBe('');
  expect(r.signal).toBe('SIGTERM');
  expect(readFileSync(out, 'utf8')).toBe('complete\n');
  expect(existsSync(`${out}.after`)).toBe(false);
});
