// Progress bars: shown on stderr when stdout is a terminal, nothing at all when output goes to a pipe.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, test } from 'vitest';

const here = fileURLToPath(new URL('.', import.meta.url));
const bin = resolve(here, '../bin/attnopt.js');
const gpt2 = resolve(here, '../../../../shared/fixtures/onnx/torch-exports/gpt2_causal_attn_where_op17_dyn.onnx');
const scratch = mkdtempSync(join(tmpdir(), 'attnopt-progress-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

test('on a pipe: no progress output, stderr empty', () => {
  const r = spawnSync(process.execPath, [bin, 'optimize', gpt2, '-o', join(scratch, 'a.onnx'), '--seq-len', '16'], { encoding: 'utf8', timeout: 110_000 });
  expect(r.status).toBe(0);
  expect(r.stderr).toBe('');
});

test('on a terminal (a pseudo-terminal from script(1)): a bar names the stages, then the result', () => {
  const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} optimize ${JSON.stringify(gpt2)} -o ${JSON.stringify(join(scratch, 'b.onnx'))} --seq-len 16`;
  const r = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', timeout: 110_000 });
  expect(r.status).toBe(0);
  // calibration inputs, recognize and analyze masks, calibrate, sparsify, lower, write
  expect(r.stdout).toMatch(/attnopt optimize \[[^\]]*\] \d\/6 /);
  expect(r.stdout).toContain('1 site -> ');
});
