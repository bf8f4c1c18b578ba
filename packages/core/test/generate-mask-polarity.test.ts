// Generated calibration inputs keep most keys whatever a model's mask convention: transformers' attention_mask
// keeps on 1 (tiny-bert), PyTorch's nn.MultiheadAttention key_padding_mask drops on True (mha_self_kpm). Before the
// polarity was read from the graph, the key_padding_mask was generated all True: every key of every row masked, the
// original's outputs NaN, and every sparse form "measured 0" on that data. Checked in onnxruntime: the original runs
// to finite outputs on the generated inputs, and the mask keeps all keys of batch row 0 and pads the tail of row 1.
// A model's mask polarity also decides `verify`: an infinite error (a number against NaN) is never within a bound.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Graph, Node, parseGraph, Tensor, tensorType, Value } from '@attnopt/ir';
import { exportOnnx } from '@attnopt/onnx';
import { generateInputs, loadModel, optimize, verifyModels } from '../src/index.js';
import { toOrt } from '../src/calibrate/ort-tensor.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const KPM = path.resolve(here, '../../../../shared/fixtures/onnx/torch-exports/mha_self_kpm_op17_dyn.onnx');
const BERT = path.resolve(here, '../../../examples/tiny-bert/model.onnx');

async function outputsFinite(file: string, sample: Record<string, unknown>): Promise<boolean> {
  const s = await ort.InferenceSession.create(file, { logSeverityLevel: 3 });
  const out = await s.run(Object.fromEntries(Object.entries(sample).map(([k, t]) => [k, toOrt(t as never, k)])));
  await s.release();
  return Object.values(out).every((t) => t.type !== 'float32' || (t.data as Float32Array).every(Number.isFinite));
}

const rows = (t: { shape: readonly number[]; data: ArrayLike<number | bigint | boolean> }) => {
  const last = t.shape[t.shape.length - 1]!;
  const all = Array.from(t.data as ArrayLike<number>, Number);
  return [all.slice(0, last), all.slice(last, 2 * last)];
};

describe('generated masks keep most keys in the model own convention', () => {
  it('key_padding_mask (drops on True): row 0 all False, row 1 its last key True; the original runs finite', async () => {
    const [sample] = generateInputs(loadModel(KPM), { seed: 0, batch: 2, seqLen: 64 });
    const [r0, r1] = rows(sample!.key_padding_mask as never);
    expect(r0!.every((x) => x === 0)).toBe(true);
    expect(r1!.slice(0, -1).every((x) => x === 0)).toBe(true);
    expect(r1!.at(-1)).toBe(1);
    expect(await outputsFinite(KPM, sample!)).toBe(true);
  });

  it("key_padding_mask Or-ed into a causal attn_mask (nn.MultiheadAttention with both): still drops on True", () => {
    // the mask merged as torch 1.13's F.multi_head_attention_forward does: attn_mask.logical_or(key_padding_mask),
    // then masked_fill(-inf) into the zeros added to the scores
    const g = parseGraph(`graph g {
  input %scores: f32[2, seq, seq]
  input %key_padding_mask: bool[2, seq]
  input %causal: bool[seq, seq]
  init %ninf: f32[] = tensor<f32[]> [-inf]
  init %zero: f32[] = tensor<f32[]> [0.0]
  init %ax1: i64[1] = tensor<i64[1]> [1]
  %kpm = Unsqueeze(%key_padding_mask, %ax1)
  %merged = Or(%causal, %kpm)
  %bias = Where(%merged, %ninf, %zero)
  %y = Add(%scores, %bias)
  output %y
}`);
    const [sample] = generateInputs(g, { seed: 0, batch: 2, seqLen: 16 });
    const [r0, r1] = rows(sample!.key_padding_mask as never);
    expect(r0!.every((x) => x === 0)).toBe(true);
    expect(r1!.at(-1)).toBe(1);
  });

  it('attention_mask (keeps on 1): row 0 all ones', () => {
    const [sample] = generateInputs(loadModel(BERT), { seed: 0, batch: 2, seqLen: 16 });
    const [r0, r1] = rows(sample!.attention_mask as never);
    expect(r0!.every((x) => x === 1)).toBe(true);
    expect(r1!.at(-1)).toBe(0);
  });
});

describe('verify: an infinite error is never within the certified bound', () => {
  it('an optimized model whose output is NaN fails (the rounding allowance, relative to the error, once let Infinity pass)', async () => {
    const inputs = generateInputs(loadModel(KPM), { seed: 1, batch: 1, seqLen: 32 });
    const r = await optimize(loadModel(KPM), { maxError: 0, seqLen: 32 });
    // the exact model with NaN added to its output
    const g: Graph = r.model.graph;
    const y = g.outputs[0]!;
    const nan = g.addInitializer(new Value('nan_constant', tensorType('f32', [1]), Tensor.fromValues('f32', [1], [NaN])));
    const poisoned = new Value('y_poisoned', y.type);
    g.addNode(new Node({ op: 'Add', inputs: [y, nan], outputs: [poisoned] }));
    g.outputs[0] = poisoned;
    poisoned.name = y.name;
    y.name = `${y.name}_before_nan`;
    const bytes = exportOnnx(r.model);
    const report = await verifyModels(KPM, bytes, r.model, inputs);
    expect(report.outputs[0]!.maxAbsError).toBe(Infinity);
    expect(report.withinCertified).toBe(false);
    expect(report.passed).toBe(false);
  });
});
