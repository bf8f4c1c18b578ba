// Attention as torch.onnx's dynamo exporter writes scaled_dot_product_attention (onnxscript's torchlib, opset
// 18): Kᵀ by Reshape to [-1, T, D], Transpose [0, 2, 1], Reshape back to [..., D, T] (shapes read at run time
// from Shape / Slice / Concat), Q and Kᵀ each scaled by sqrt(scale), a boolean mask turned into 0 / -inf and
// added, after Hugging Face's repeat_kv of 2 key/value heads to 4 (Unsqueeze, Expand, Reshape). recognize must
// lift one site that reads the un-repeated K and V (GQA kept) with no Transpose of Kᵀ left in the prelude, and the
// lowered graph must compute what the graph as written computes in onnxruntime (fp32, |lowered - original| <=
// 1e-5, compareLowered). With the leading axes merged another way, Kᵀ is no transpose of K: then K is not the
// repeated K0 that V is, and the site is refused.

import { AttentionInput, isAttention, parseGraph } from '@attnopt/ir';
import { rewritePass } from '@attnopt/rewrite';
import { describe, expect, test } from 'vitest';
import { RECOGNITION_RULES } from '../src/recognize/index.js';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { lowerAttentionPass } from '../src/lower/index.js';
import { liftedAndExact } from './helpers/lifted-exact.js';
import { compareLowered, ortTensor, randomInputs, runModel } from './helpers/ort.js';

const OPSET = 18;

const sdpa = (sqShape = '%m1, %key_second_last, %key_last', guard = '') => `graph g {
  input %q: f32[batch, 4, seq, 8]
  input %k0: f32[batch, 2, seq, 8]
  input %v0: f32[batch, 2, seq, 8]
  input %attention_mask: bool[batch, 1, seq, seq]
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]
  init %zero: f32[] = tensor<f32[]> [0.0]
  init %ninf: f32[] = tensor<f32[]> [-inf]
  init %ax2: i64[1] = tensor<i64[1]> [2]
  init %m1: i64[1] = tensor<i64[1]> [-1]
  init %m2: i64[1] = tensor<i64[1]> [-2]
  init %big: i64[1] = tensor<i64[1]> [9223372036854775807]
  init %small: i64[1] = tensor<i64[1]> [-9223372036854775807]
  init %grp: i64[1] = tensor<i64[1]> [2]
  %qs = Shape(%q)
  %heads_first = Slice(%qs, %small, %m2)
  %ks0 = Shape(%k0)
  %kv_first = Slice(%ks0, %small, %m2)
  %kv_last = Slice(%ks0, %m2, %big)
  %eshape = Concat(%kv_first, %grp, %kv_last) {axis = 0}
  %hshape = Concat(%heads_first, %kv_last) {axis = 0}
  %ku = Unsqueeze(%k0, %ax2)
  %ke = Expand(%ku, %eshape)
  %k = Reshape(%ke, %hshape)
  %vu = Unsqueeze(%v0, %ax2)
  %ve = Expand(%vu, %eshape)
  %v = Reshape(%ve, %hshape)
  %key_shape = Shape(%k)
  %key_last = Slice(%key_shape, %m1, %big)
  %key_second_last = Slice(%key_shape, %m2, %m1)
  %key_first = Slice(%key_shape, %small, %m2)
  init %zero1: i64[1] = tensor<i64[1]> [0]
  %sq_shape = Concat(${sqShape}) {axis = 0}
  %k_sq = Reshape(%k, %sq_shape)
  %k_sq_t = Transpose(%k_sq) {perm = [0, 2, 1]}
  %kt_shape = Concat(%key_first, %key_last, %key_second_last) {axis = 0}
  %kt = Reshape(%k_sq_t, %kt_shape)
  %sqrt_s = Sqrt(%s)
  %qsc = Mul(%q, %sqrt_s)
  %ktsc = Mul(%kt, %sqrt_s)
  %mask = Where(%attention_mask, %zero, %ninf)
  %qk = MatMul(%qsc, %ktsc)
  %w = Add(%qk, %mask)
  %p${guard ? '0' : ''} = Softmax(%w) {axis = -1}
  ${guard}
  %y = MatMul(%p, %v)
  output %y
}`;

/** onnxscript's guard after the Softmax of a boolean mask: a fully masked row's NaN probabilities become 0. */
const NAN_GUARD = '%isnan = IsNaN(%p0)\n  %p = Where(%isnan, %zero, %p0)';
/** The same as torch.where(isnan(p), zeros_like(p), p) writes it. */
const NAN_GUARD_ZEROS_LIKE = '%isnan = IsNaN(%p0)\n  %pshape = Shape(%p0)\n  %zeros = ConstantOfShape(%pshape)\n  %p = Where(%isnan, %zeros, %p0)';
/** torch.nan_to_num(p, nan=0.0) as the TorchScript exporter writes it: the NaN step, then +inf and -inf replaced by the largest finite floats. */
const NAN_TO_NUM = `%isnan = IsNaN(%p0)
  %p1 = Where(%isnan, %zero, %p0)
  init %fmax: f32[] = tensor<f32[]> [3.4028234663852886e38]
  init %fmin: f32[] = tensor<f32[]> [-3.4028234663852886e38]
  %p1c = Cast(%p1) {to = 1}
  %isinf = IsInf(%p1c)
  %pos = Greater(%p1, %zero)
  %isinfb = Cast(%isinf) {to = 9}
  %posb = Cast(%pos) {to = 9}
  %posinf = And(%isinfb, %posb)
  %p2 = Where(%posinf, %fmax, %p1)
  %p2c = Cast(%p2) {to = 1}
  %isinf2 = IsInf(%p2c)
  %neg = Less(%p2, %zero)
  %isinf2b = Cast(%isinf2) {to = 9}
  %negb = Cast(%neg) {to = 9}
  %neginf = And(%isinf2b, %negb)
  %p = Where(%neginf, %fmin, %p2)`;


describe("torch.onnx's dynamo exporter: scaled_dot_product_attention as onnxscript writes it", () => {
  test('Kᵀ through Reshape / Transpose / Reshape: the site reads K itself, GQA kept, scale 1 / sqrt(8)', async () => {
    const { inputs, params: p } = await liftedAndExact(sdpa(), { opset: OPSET, seed: 3, sizes: { batch: 2, seq: 9, past: 0 } });
    expect([p.numHeads, p.kvNumHeads, p.headDim]).toEqual([4, 2, 8]);
    expect(p.scale).toBeCloseTo(0.35355339, 6);
    expect([inputs[AttentionInput.k], inputs[AttentionInput.v]]).toEqual(['k0', 'v0']);
  });
  test('merged another way ([B, H·T, D], not [B·H, T, D]): Kᵀ is no transpose of K, and the site is refused', () => {
    // Transpose and Reshape back then reinterpret the elements: K is not the repeated K0 that V is
    const g = parseGraph(sdpa('%zero1, %m1, %key_last'));
    const notes = rewritePass('recognize', RECOGNITION_RULES).run(g).notes.map((n) => n.message);
    expect(g.nodes.filter(isAttention)).toHaveLength(0);
    expect(notes.join('\n')).toContain('only one of K and V is repeated over heads');
  });

  test.each([
    ['a static 0', NAN_GUARD],
    ['zeros_like(p)', NAN_GUARD_ZEROS_LIKE],
    ['0, then the infinities (torch.nan_to_num)', NAN_TO_NUM],
  ])('Where(IsNaN(p), %s, p) after the Softmax: lifted with nothing of the chain left, and fully masked rows give 0 as the graph does', async (_, guard) => {
    const text = sdpa(undefined, guard);
    const original = exportOnnx(newOnnxModel(parseGraph(text), { opset: OPSET }));
    const g = parseGraph(text);
    rewritePass('recognize', RECOGNITION_RULES).run(g);
    expect(g.nodes.filter(isAttention)).toHaveLength(1);
    expect(g.nodes.map((n) => n.op).filter((op) => ['Softmax', 'IsNaN', 'IsInf', 'MatMul', 'ConstantOfShape'].includes(op))).toEqual([]);
    // rows 1 and 4 of the first batch keep no key; every other row keeps the keys up to its own
    const [B, S] = [2, 6];
    const feeds = randomInputs(g, 11, { batch: B, seq: S, past: 0 });
    const keep = Array.from({ length: B * S * S }, (_, k) => {
      const [b, i, j] = [Math.floor(k / (S * S)), Math.floor(k / S) % S, k % S];
      return Number(!(b === 0 && (i === 1 || i === 4)) && j <= i);
    });
    feeds.attention_mask = ortTensor('bool', [B, 1, S, S], keep);
    const want = await runModel(original, feeds);
    // the graph as written gives 0 on those rows, in every head ([B, 4, S, 8])
    const y = want.y!.data as Float32Array;
    const row = (h: number, i: number) => [...y.slice((h * S + i) * 8, (h * S + i + 1) * 8)];
    expect([0, 1, 2, 3].flatMap((h) => [...row(h, 1), ...row(h, 4)]).every((x) => x === 0)).toBe(true);
    expect(row(0, 2).some((x) => x !== 0)).toBe(true);
    lowerAttentionPass({ opset: OPSET }).run(g);
    const cmp = compareLowered(await runModel(exportOnnx(newOnnxModel(g, { opset: OPSET })), feeds), want);
    expect(cmp.mismatches, `max abs error ${cmp.maxAbsError}`).toEqual([]);
  });
});
