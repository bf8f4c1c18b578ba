// Bad input for every command: a clear message naming the file and the problem, the documented exit code,
// nothing on stdout and no output file or folder left behind.

import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { attnoptInProcess as attnopt } from './run-captured.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const fixtures = resolve(here, '../../../../shared/fixtures/onnx');
const gpt2 = join(fixtures, 'torch-exports/gpt2_causal_attn_where_op17_dyn.onnx');
const noAttention = join(fixtures, 'onnx-node-tests/test_softmax_large_number/model.onnx');
const scratch = mkdtempSync(join(tmpdir(), 'attnopt-bad-'));
const garbage = join(scratch, 'garbage.onnx');
writeFileSync(garbage, Buffer.from('this is not a protobuf message at all \xff\xff\xff'));
const missing = join(scratch, 'missing.onnx');
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Files in the scratch folder other than the inputs: anything a failed command left behind. */
const leftovers = () => readdirSync(scratch).filter((f) => f !== 'garbage.onnx');

/** Each command with a model argument, and the arguments that make it write an output. */
const COMMANDS: Record<string, (model: string) => string[]> = {
  inspect: (m) => ['inspect', m],
  explain: (m) => ['explain', m, '--seq-len', '16'],
  optimize: (m) => ['optimize', m, '-o', join(scratch, 'out.onnx'), '--seq-len', '16'],
  codegen: (m) => ['codegen', m, '--target', 'cpu', '-o', join(scratch, 'kernels'), '--seq-len', '16'],
  verify: (m) => ['verify', gpt2, m, '--seq-len', '16'],
};

describe.each(Object.entries(COMMANDS))('attnopt %s', (name, args) => {
  test('a missing model: exit 2, "<file>: no such file"', async () => {
    const r = await attnopt(...args(missing));
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`attnopt: ${missing}: no such file\n`);
    expect(leftovers()).toEqual([]);
  });

  test('garbage bytes: exit 2, the message names the file', async () => {
    const r = await attnopt(...args(garbage));
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^attnopt: ${garbage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
    expect(leftovers()).toEqual([]);
  });

  test('an unknown option: exit 1, commander names it', async () => {
    const r = await attnopt(...args(gpt2), '--no-such-option');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain("unknown option '--no-such-option'");
    expect(leftovers()).toEqual([]);
  });

  test('--help explains the command with an example', async () => {
    const r = await attnopt(name, '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: attnopt ${name} [options]`);
    expect(r.stdout).toMatch(new RegExp(`Examples:\\n {2}\\$ attnopt ${name} `));
    expect(r.stdout).toContain('--json');
  });
});

describe.each(['inspect', 'explain', 'optimize', 'codegen'])('attnopt %s: an impossible budget is a usage error', (name) => {
  test.each(['-1', 'abc', 'Infinity', ''])('--max-error %j: exit 1, "expected a number >= 0"', async (value) => {
    const r = await attnopt(...COMMANDS[name]!(gpt2), '--max-error', value);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain("option '--max-error <e>' argument");
    expect(r.stderr).toContain('expected a number >= 0');
    expect(leftovers()).toEqual([]);
  });

  test('--seq-len 0: exit 1', async () => {
    const r = await attnopt(...COMMANDS[name]!(gpt2), '--seq-len', '0');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('expected an integer >= 1');
    expect(leftovers()).toEqual([]);
  });

  test.each(['-1', '2.5', 'many'])('--decode-steps %j: exit 1, "expected an integer >= 0"', async (value) => {
    const r = await attnopt(...COMMANDS[name]!(gpt2), '--decode-steps', value);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain("option '--decode-steps <n>' argument");
    expect(r.stderr).toContain('expected an integer >= 0');
    expect(leftovers()).toEqual([]);
  });
});

describe('a model without attention', () => {
  test('optimize: exit 2, nothing written', async () => {
    const r = await attnopt(...COMMANDS.optimize!(noAttention));
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`attnopt: ${noAttention}: no attention site found: nothing to optimize (attnopt inspect lists what was recognized)\n`);
    expect(leftovers()).toEqual([]);
  });

  test('codegen: exit 2, no folder', async () => {
    const r = await attnopt(...COMMANDS.codegen!(noAttention));
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`attnopt: ${noAttention}: no attention site found: nothing to compile (attnopt inspect lists what was recognized)\n`);
    expect(leftovers()).toEqual([]);
  });

  test('inspect and explain say so and succeed (there is nothing wrong with looking)', async () => {
    const i = await attnopt('inspect', noAttention);
    expect(i.code).toBe(0);
    // it says why: the model's only Softmax does not feed values
    expect(i.stdout).toBe(`${noAttention}: 0 attention sites: 1 Softmax node, but none normalizes the last axis and feeds its probabilities to a MatMul or Einsum with values (no attention)\n`);
    const e = await attnopt('explain', noAttention, '--json');
    expect(e.code).toBe(0);
    expect(JSON.parse(e.stdout).sites).toEqual([]);
    expect((await attnopt('explain', noAttention)).stdout).toBe(`${noAttention}: no attention site found: nothing to rewrite\n`);
  });
});

describe('codegen options', () => {
  test('--target is required and must be wgsl or cpu', async () => {
    const none = await attnopt('codegen', gpt2, '-o', join(scratch, 'k'));
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("required option '--target <target>' not specified");
    const bad = await attnopt('codegen', gpt2, '--target', 'cuda', '-o', join(scratch, 'k'));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('Allowed choices are wgsl, cpu');
    expect(leftovers()).toEqual([]);
  });

  test('-o is required; a folder holding other files is refused, untouched', async () => {
    expect((await attnopt('codegen', gpt2, '--target', 'wgsl')).code).toBe(1);
    const occupied = join(scratch, 'occupied');
    rmSync(occupied, { recursive: true, force: true });
    writeFileSync(join(scratch, 'keep.txt'), 'x');
    const { mkdirSync, renameSync } = await import('node:fs');
    mkdirSync(occupied);
    renameSync(join(scratch, 'keep.txt'), join(occupied, 'keep.txt'));
    const r = await attnopt('codegen', gpt2, '--target', 'wgsl', '-o', occupied);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${occupied}: exists and holds files attnopt did not write`);
    expect(readdirSync(occupied)).toEqual(['keep.txt']);
    rmSync(occupied, { recursive: true, force: true });
  });

  test('a parent folder that does not exist: exit 2', async () => {
    const r = await attnopt('codegen', gpt2, '--target', 'wgsl', '-o', join(scratch, 'no', 'such', 'dir'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('its parent folder does not exist');
    expect(leftovers()).toEqual([]);
  });

  test('--target for optimize, explain and inspect names a cost model', async () => {
    const r = await attnopt('explain', gpt2, '--target', 'tpu');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('expected one of onnxruntime-cpu, attnopt-cpu, webgpu');
  });

  test('generated positions past a table the model computes them into (RoBERTa: a cumulative sum of the mask plus padding_idx): exit 2, the hint says so, no output', async () => {
    const roberta = resolve(here, '../../../tools/fixtures/whole-models/roberta.onnx');
    const out = join(scratch, 'roberta.opt.onnx');
    const r = await attnopt('optimize', roberta, '-o', out, '--seq-len', '128');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/out of data bounds[^\n]*\n {2}an index went past the end of a table: positions the model computes from the lengths .* may not fit 128 tokens; try a shorter --seq-len/);
    expect(leftovers()).toEqual([]);
  });
});
