// --runtime attnopt-cpu: calibration (optimize, inspect --decisions) and verify without onnxruntime, on attnopt's
// own CPU executor and kernels. The choices must be those made with onnxruntime's calibration data (the two
// runtimes compute the same site tensors within float rounding, far below any budget's margin), and verify's
// errors must agree with onnxruntime's within 1e-5 (both compare float32 models).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { attnoptInProcess as attnopt } from './run-captured.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const tinyBert = resolve(here, '../../../examples/tiny-bert/model.onnx');
const gpt2 = resolve(here, '../../../../shared/fixtures/onnx/torch-exports/gpt2_causal_attn_where_op17_dyn.onnx');
const scratch = mkdtempSync(join(tmpdir(), 'attnopt-runtime-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe.each([
  ['tiny-bert', tinyBert],
  ['gpt2', gpt2],
])('%s', (name, model) => {
  test('optimize and verify on attnopt-cpu agree with onnxruntime', async () => {
    const runs: Record<string, { sites: { id: string; chosen: string; bound: number; measuredError: number | null }[] }> = {};
    const verified: Record<string, { outputs: { name: string; maxAbsError: number }[]; withinCertified: boolean }> = {};
    for (const runtime of ['onnxruntime', 'attnopt-cpu']) {
      const out = join(scratch, `${name}.${runtime}.onnx`);
      const r = await attnopt('optimize', model, '-o', out, '--seq-len', '32', '--max-error', '0.05', '--runtime', runtime, '--json');
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      runs[runtime] = JSON.parse(r.stdout);
      const v = await attnopt('verify', model, out, '--seq-len', '32', '--runtime', runtime, '--json');
      expect(v.stderr).toBe('');
      expect(v.code).toBe(0);
      verified[runtime] = JSON.parse(v.stdout);
    }
    const a = runs['onnxruntime']!.sites;
    const b = runs['attnopt-cpu']!.sites;
    expect(b.map((s) => [s.id, s.chosen])).toEqual(a.map((s) => [s.id, s.chosen]));
    b.forEach((s, k) => expect(Math.abs(s.bound - a[k]!.bound)).toBeLessThanOrEqual(1e-4 * Math.max(1, a[k]!.bound)));
    const va = verified['onnxruntime']!;
    const vb = verified['attnopt-cpu']!;
    expect(vb.withinCertified).toBe(va.withinCertified);
    expect(vb.outputs.map((o) => o.name)).toEqual(va.outputs.map((o) => o.name));
    vb.outputs.forEach((o, k) => expect(Math.abs(o.maxAbsError - va.outputs[k]!.maxAbsError)).toBeLessThanOrEqual(1e-5));
  }, 300_000);
});

test('--runtime with an unknown name is a usage error naming the choices', async () => {
  const r = await attnopt('verify', gpt2, gpt2, '--runtime', 'tensorrt');
  expect(r.code).toBe(1);
  expect(r.stderr).toContain("argument 'tensorrt' is invalid. Allowed choices are onnxruntime, attnopt-cpu");
});

test("a model onnxruntime cannot load (ONNX's preview FlexAttention): verify names it and points to attnopt-cpu, which runs it", async () => {
  const flex = resolve(here, '../../../../shared/fixtures/onnx/onnx-node-tests/test_flexattention_causal_mask/model.onnx');
  const out = join(scratch, 'flex.opt.onnx');
  const o = await attnopt('optimize', flex, '-o', out, '--json');
  expect(o.stderr).toBe('');
  expect(o.code).toBe(0);
  expect(JSON.parse(o.stdout).sites).toHaveLength(1);
  const v = await attnopt('verify', flex, out);
  expect(v.code).toBe(2);
  expect(v.stderr).toContain(`${flex}: onnxruntime cannot load it`);
  expect(v.stderr).not.toContain(`${out}: ${flex}`);
  expect(v.stderr).toContain('--runtime attnopt-cpu');
  const c = await attnopt('verify', flex, out, '--runtime', 'attnopt-cpu', '--json');
  expect(c.stderr).toBe('');
  expect(c.code).toBe(0);
  expect(JSON.parse(c.stdout).outputs[0].maxAbsError).toBe(0);
}, 120_000);
