// Beam-search attention of the corpus (onnxruntime's dmmha_*.onnx test models) and the qk output of
// MultiHeadAttention / DecoderMaskedMultiHeadAttention, lifted by FUSED_RULES, lowered to standard ops and
// run in onnxruntime against the original fused model on the same inputs: valid beam layouts (BB = batch * W
// rows, past_sequence_length P < M), cache_indirection entries drawn at random in [0, W) for positions < P
// and out of range (77) after P, where onnxruntime never reads them. fp32: |lowered - original| <= 1e-5, plus
// 1e-6 |original| for qk outputs: masked scores hold about -1e4, where one f32 ulp is 2^-10 and onnxruntime
// adds scale Q Kᵀ + attention_bias + mask in another order than the lowered graph (Q Kᵀ + (bias + mask)).
// MultiHeadAttention is checked for P >= 1 only: at P = 0 onnxruntime's CPU kernel leaves the beam-search
// step for its generic path, which concatenates the whole M-key buffer with the new key into the M-key
// present outputs (writing past their end); that case has no meaning to reproduce.

import path from 'node:path';
import { isAttention, parseGraph, SplitMix64 } from '@attnopt/ir';
import { exportOnnx, importOnnx, newOnnxModel, type OnnxModel } from '@attnopt/onnx';
import { rewritePass } from '@attnopt/rewrite';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { lowerAttentionPass } from '../src/lower/index.js';
import { FUSED_RULES } from '../src/recognize/fused/index.js';
import { FIXTURES } from './helpers/node-tests.js';
import { compareOutputs, runModel } from './helpers/ort.js';

const TESTDATA = path.join(FIXTURES, 'ort-models/onnxruntime/test/testdata');
const ATOL = 1e-5;
const QK_RTOL = 1e-6;

function random(seed: number) {
  const rng = new SplitMix64(seed);
  const f32 = (shape: number[]) => new ort.Tensor('float32', Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.nextFloat() * 2 - 1), shape);
  const i32 = (shape: number[], values: number[]) => new ort.Tensor('int32', Int32Array.from(values), shape);
  const below = (n: number) => Math.floor(rng.nextFloat() * n);
  return { f32, i32, below };
}

/** Lifts with FUSED_RULES (expecting one Attention and no fused node left), lowers, exports. */
function liftAndLower(model: OnnxModel): Uint8Array {
  rewritePass('recognize-fused', FUSED_RULES).run(model.graph);
  const nodes = [...model.graph.allNodes()];
  expect(nodes.filter(isAttention)).toHaveLength(1);
  expect(nodes.filter((n) => n.domain === 'com.microsoft')).toEqual([]);
  lowerAttentionPass({ opset: 21 }).run(model.graph);
  return exportOnnx(model);
}

async function expectSameOutputs(original: Uint8Array | string, lowered: Uint8Array, feeds: Record<string, ort.Tensor>, rtol = 0): Promise<number> {
  const want = await runModel(original, feeds);
  const got = await runModel(lowered, feeds);
  const cmp = compareOutputs(got, want, ATOL, rtol);
  expect(cmp.mismatches).toEqual([]);
  return cmp.maxAbsError;
}

interface Step {
  readonly batch: number;
  readonly beams: number;
  readonly maxLength: number;
  readonly past: number;
}

/** Inputs of one decoding step of the dmmha_* models (hidden 64, 2 heads of 32). */
function stepInputs(names: readonly string[], s: Step, seed: number, cross: boolean): Record<string, ort.Tensor> {
  const { f32, i32, below } = random(seed);
  const rows = s.batch * s.beams;
  const indirection = Array.from({ length: rows * s.maxLength }, (_, k) => (k % s.maxLength < s.past ? below(s.beams) : 77));
  const all: Record<string, () => ort.Tensor> = {
    q: () => f32([rows, 1, 64]),
    k: () => (cross ? f32([rows, 2, 10, 32]) : f32([rows, 1, 64])),
    v: () => (cross ? f32([rows, 2, 10, 32]) : f32([rows, 1, 64])),
    b: () => f32([192]),
    past_k: () => f32([rows, 2, s.maxLength, 32]),
    past_v: () => f32([rows, 2, s.maxLength, 32]),
    past_seq_len: () => i32([1], [s.past]),
    beam_width: () => i32([1], [s.beams]),
    cache_indir: () => i32([s.batch, s.beams, s.maxLength], indirection),
  };
  return Object.fromEntries(names.map((n) => [n, all[n]!()]));
}

const STEPS: readonly Step[] = [
  { batch: 2, beams: 3, maxLength: 6, past: 3 },
  { batch: 1, beams: 4, maxLength: 8, past: 7 },
  { batch: 3, beams: 2, maxLength: 5, past: 1 },
  { batch: 2, beams: 1, maxLength: 4, past: 2 },
];

describe('beam-search models of the corpus against onnxruntime', () => {
  const models = [
    { file: 'dmmha_self_attn.onnx', cross: false, steps: [...STEPS, { batch: 2, beams: 2, maxLength: 4, past: 0 }] },
    { file: 'dmmha_inside_mha_self_attn.onnx', cross: false, steps: STEPS },
    { file: 'dmmha_cross_attn.onnx', cross: true, steps: STEPS },
    { file: 'dmmha_inside_mha_cross_attn.onnx', cross: true, steps: STEPS },
  ];

  it.each(models)('$file', async ({ file, cross, steps }) => {
    const full = path.join(TESTDATA, file);
    const lowered = liftAndLower(importOnnx(full));
    const names = importOnnx(full).graph.inputs.map((v) => v.name);
    let err = 0;
    for (const [k, s] of steps.entries()) err = Math.max(err, await expectSameOutputs(full, lowered, stepInputs(names, s, 11 + k, cross)));
    console.log(`${file}: ${steps.length} steps match, max abs error ${err.toExponential(2)}`);
  });

  it('the past rows really are gathered through cache_indirection (a wrong beam changes the output)', async () => {
    const full = path.join(TESTDATA, 'dmmha_self_attn.onnx');
    const lowered = liftAndLower(importOnnx(full));
    const names = importOnnx(full).graph.inputs.map((v) => v.name);
    const feeds = stepInputs(names, STEPS[0]!, 5, false);
    const got = await runModel(lowered, feeds);
    const ci = feeds.cache_indir!.data as Int32Array;
    ci[0] = (ci[0]! + 1) % 3; // row 0, position 0 now reads another beam's past
    const moved = await runModel(lowered, feeds);
    const want = await runModel(full, feeds);
    expect(compareOutputs(moved, want, ATOL, 0).mismatches).toEqual([]);
    expect(compareOutputs(moved, got, ATOL, 0).mismatches).toContain('o: 64 of 384 elements differ');
  });
});

/** A one-node model in the com.microsoft domain from text. */
function msModel(text: string): OnnxModel {
  const model = newOnnxModel(parseGraph(text), { opset: 17 });
  (model.proto.opsetImport as { domain?: string; version?: bigint }[]).push({ domain: 'com.microsoft', version: 1n });
  return model;
}

describe('qk outputs: the softmax input, padding mask and attention bias included', () => {
  it('MultiHeadAttention with key_padding_mask, attention_bias and qk', async () => {
    const text = `graph g {
  input %q: f32[2, 3, 16]
  input %k: f32[2, 5, 16]
  input %v: f32[2, 5, 16]
  input %mask: i32[2, 5]
  input %ab: f32[2, 2, 3, 5]
  %y: f32[2, 3, 16], %pk, %pv, %qk: f32[2, 2, 3, 5] = com.microsoft::MultiHeadAttention(%q, %k, %v, _, %mask, %ab) {num_heads = 2}
  output %y, %qk
}`;
    const original = exportOnnx(msModel(text));
    const lowered = liftAndLower(msModel(text));
    const { f32, i32 } = random(7);
    const feeds = { q: f32([2, 3, 16]), k: f32([2, 5, 16]), v: f32([2, 5, 16]), mask: i32([2, 5], [1, 1, 1, 1, 1, 1, 0, 1, 1, 0]), ab: f32([2, 2, 3, 5]) };
    await expectSameOutputs(original, lowered, feeds, QK_RTOL);
  });

  it('DecoderMaskedMultiHeadAttention cross attention with mask_index and qk', async () => {
    const text = `graph g {
  input %q: f32[3, 1, 16]
  input %k: f32[3, 2, 6, 8]
  input %v: f32[3, 2, 6, 8]
  input %mask: i32[3, 6]
  input %b: f32[48]
  %y: f32[3, 1, 16], %pk, %pv, %qk: f32[3, 2, 1, 6] = com.microsoft::DecoderMaskedMultiHeadAttention(%q, %k, %v, %mask, _, _, _, _, _, _, %b) {num_heads = 2, output_qk = 1}
  output %y, %qk
}`;
    const model = msModel(text);
    // the present outputs are omitted in the node, as in dmmha_cross_attn.onnx: cross attention
    for (const v of model.graph.nodes[0]!.outputs.slice(1, 3)) v.annotations.set('onnx.omitted', v.name);
    const original = exportOnnx(model);
    const lowered = liftAndLower(model);
    const { f32, i32 } = random(8);
    const feeds = { q: f32([3, 1, 16]), k: f32([3, 2, 6, 8]), v: f32([3, 2, 6, 8]), mask: i32([3, 6], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1]), b: f32([48]) };
    await expectSameOutputs(original, lowered, feeds, QK_RTOL);
  });
});
