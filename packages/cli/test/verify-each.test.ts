// --verify-each: the IR verifier on the graph before the first pass of the compile pipeline and after every pass,
// for inspect and for the commands that choose forms. The verifier is counted; the test suite's default
// (ATTNOPT_VERIFY_EACH=1) is turned off here so that only the flag turns it on.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeEach, expect, test, vi } from 'vitest';
import { verifyGraph } from '@attnopt/ir';
import { attnoptInProcess as attnopt } from './run-captured.js';

vi.mock('@attnopt/ir', async (original) => {
  const ir = await original<typeof import('@attnopt/ir')>();
  return { ...ir, verifyGraph: vi.fn(ir.verifyGraph) };
});
const verifications = vi.mocked(verifyGraph);

const here = fileURLToPath(new URL('.', import.meta.url));
const tinyBert = resolve(here, '../../../examples/tiny-bert/model.onnx');
const scratch = mkdtempSync(join(tmpdir(), 'attnopt-verify-each-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const suiteDefault = process.env['ATTNOPT_VERIFY_EACH'];
beforeEach(() => {
  delete process.env['ATTNOPT_VERIFY_EACH'];
  verifications.mockClear();
});
afterEach(() => {
  process.env['ATTNOPT_VERIFY_EACH'] = suiteDefault;
});

test('without the flag (and the environment) nothing is verified', async () => {
  expect((await attnopt('inspect', tinyBert, '--json')).code).toBe(0);
  expect((await attnopt('optimize', tinyBert, '-o', join(scratch, 'a.onnx'), '--max-error', '0', '--json')).code).toBe(0);
  expect(verifications).not.toHaveBeenCalled();
});

test('inspect --verify-each: the input graph, then after recognize and after the mask analysis; the output is the same', async () => {
  const plain = await attnopt('inspect', tinyBert, '--json');
  const verified = await attnopt('inspect', tinyBert, '--json', '--verify-each');
  expect(verified.code).toBe(0);
  expect(verifications).toHaveBeenCalledTimes(1 + 2);
  expect(verified.stdout).toBe(plain.stdout);
});

test('optimize --verify-each: the input graph, then after each of the five passes that run at max error 0', async () => {
  const r = await attnopt('optimize', tinyBert, '-o', join(scratch, 'b.onnx'), '--max-error', '0', '--verify-each', '--json');
  expect(r.code).toBe(0);
  expect(verifications).toHaveBeenCalledTimes(1 + 5); // recognize, analyze masks, restore, lower, prune
});
