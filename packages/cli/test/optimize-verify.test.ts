// attnopt optimize and attnopt verify as a user runs them, bad input included.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { loadModel, writeModel } from '@attnopt/core';
import { Tensor } from '@attnopt/ir';

const here = fileURLToPath(new URL('.', import.meta.url));
const bin = resolve(here, '../bin/attnopt.js');
const fixtures = resolve(here, '../../../../shared/fixtures/onnx');
const tinyBert = resolve(here, '../../../examples/tiny-bert/model.onnx');
const gpt2 = join(fixtures, 'torch-exports/gpt2_causal_attn_where_op17_dyn.onnx');
const scratch = mkdtempSync(join(tmpdir(), 'attnopt-optimize-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function attnopt(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('attnopt optimize', () => {
  test('--max-error 0 proves the causal mask of GPT-2 exactly and writes a model onnxruntime runs', () => {
    const out = join(scratch, 'gpt2.opt.onnx');
    const r = attnopt('optimize', gpt2, '-o', out, '--max-error', '0', '--seq-len', '32', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.output).toBe(out);
    expect(report.sites).toHaveLength(1);
    expect(report.sites[0]).toMatchObject({ id: 'site0', chosen: 'causal', exact: true, bound: 0, measuredError: null });
    const v = attnopt('verify', gpt2, out, '--seq-len', '32', '--json');
    expect(v.code).toBe(0);
    const verified = JSON.parse(v.stdout);
    expect(verified.certified).toBe(0);
    expect(verified.withinCertified).toBe(true);
    expect(verified.outputs[0].maxAbsError).toBeLessThanOrEqual(1e-5);
  });

  test('writes weights kept in a side file to a new side file, and the result verifies', () => {
    const out = join(scratch, 'tiny-bert.opt.onnx');
    const r = attnopt('optimize', tinyBert, '-o', out, '--seq-len', '16');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('2 sites');
    expect(existsSync(`${out}.data`)).toBe(true);
    expect(attnopt('verify', tinyBert, out, '--seq-len', '16').code).toBe(0);
  });

  test('bad input exits 2 and leaves no output file', () => {
    const out = join(scratch, 'never.onnx');
    const r = attnopt('optimize', join(scratch, 'missing.onnx'), '-o', out);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('missing.onnx: no such file');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(scratch).filter((f) => f.startsWith('never'))).toEqual([]);
  });

  test('usage errors exit 1: no -o, a negative max error', () => {
    expect(attnopt('optimize', gpt2).code).toBe(1);
    const r = attnopt('optimize', gpt2, '-o', join(scratch, 'x.onnx'), '--max-error', '-1');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('expected a number >= 0');
  });
});

describe('attnopt verify', () => {
  test('exits 3 when the optimized model differs by more than it certifies', () => {
    const out = join(scratch, 'exact.onnx');
    expect(attnopt('optimize', gpt2, '-o', out, '--max-error', '0', '--seq-len', '16').code).toBe(0);
    // tamper with a weight of the optimized model while its metadata still certifies 0
    const model = loadModel(out);
    const w = model.graph.initializers.find((v) => v.initializer!.dtype === 'f32' && v.initializer!.size > 16)!;
    const values = w.initializer!.toFloat64().map((x) => x + 0.5);
    w.initializer = Tensor.fromValues('f32', w.initializer!.shape, values);
    const tampered = join(scratch, 'tampered.onnx');
    writeModel(tampered, model);
    const r = attnopt('verify', gpt2, tampered, '--seq-len', '16');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('verification failed');
  });

  test('models that do not match (another model as OPTIMIZED): exit 2 naming both interfaces', () => {
    const r = attnopt('verify', gpt2, tinyBert, '--seq-len', '16');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `attnopt: ${tinyBert}: the models do not match: the original reads inputs [x], the optimized [input_ids, attention_mask] (is it the model optimize wrote from this original?)\n`,
    );
  });

  test('a missing model exits 2', () => {
    expect(attnopt('verify', gpt2, join(scratch, 'nope.onnx')).code).toBe(2);
  });
});
