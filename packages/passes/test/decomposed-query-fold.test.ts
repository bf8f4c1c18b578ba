// Multi-query attention with the heads folded into the query axis, as GPT-BigCode (StarCoder, SantaCoder) writes
// it: Q [B, S·H, D] against one K [B, T, D] (baddbmm(zeros, q, kᵀ, beta = 1, alpha)), the scores [B, S·H, T]
// viewed as [B, S, H, T] for the mask [B, S, 1, T], the Softmax, the view back, and bmm with V [B, T, D]. The
// site must lift as H query heads over one key/value head, and the lowered graph must compute what the graph as
// written computes in onnxruntime (fp32, |lowered - original| <= 1e-5, compareLowered). Before, every such site
// was refused: "the scores are reshaped ... between Q·Kᵀ and the Softmax".

import { AttentionInput, printSpec } from '@attnopt/ir';
import { describe, expect, test } from 'vitest';
import { analyzeMaskPass } from '../src/mask-analysis/index.js';
import { liftedAndExact, refusalNotes } from './helpers/lifted-exact.js';

const [H, D] = [4, 8];

/** Static shapes: batch 2, 7 queries, 7 keys; the keep-mask [B, S, 1, T] applied in the [B, S, H, T] view. */
const staticFold = (softmaxView: 'folded' | 'viewed' = 'viewed') => `graph g {
  input %q: f32[2, ${7 * H}, ${D}]
  input %k: f32[2, 7, ${D}]
  input %v: f32[2, 7, ${D}]
  input %keep: bool[2, 7, 1, 7]
  init %alpha: f32[] = tensor<f32[]> [0.3535533905932738]
  init %fill: f32[] = tensor<f32[]> [-3.4028234663852886e38]
  init %t4: i64[4] = tensor<i64[4]> [2, 7, ${H}, 7]
  init %t3: i64[3] = tensor<i64[3]> [2, ${7 * H}, 7]
  %kT = Transpose(%k) {perm = [0, 2, 1]}
  %mm = MatMul(%q, %kT)
  %sc = Mul(%mm, %alpha)
  %s4 = Reshape(%sc, %t4)
  %x = Where(%keep, %s4, %fill)
${softmaxView === 'viewed' ? '  %p4 = Softmax(%x) {axis = -1}\n  %p = Reshape(%p4, %t3)' : '  %x3 = Reshape(%x, %t3)\n  %p = Softmax(%x3) {axis = -1}'}
  %y = MatMul(%p, %v)
  output %y
}`;

/**
 * As the TorchScript exporter writes GPTBigCodeAttention._attn with dynamic axes: the view targets read from Q's
 * and K's shapes at run time (query_length * num_heads by Mul), the zeros of torch.empty(attn_view).zero_() as
 * ConstantOfShape, baddbmm as Add(Mul(zeros, beta), Mul(Q·Kᵀ, alpha)), the causal mask a slice of a tril buffer
 * And-ed with the padding mask [B, 1, T] and unsqueezed to [B, S, 1, T]; and a padding bias [B, 1, T] added over
 * the folded [B, S·H, T] scores (`foldedBias`).
 */
const bigCode = (foldedBias: boolean) => `graph g {
  input %q3: f32[batch, seq, ${H * D}]
  input %k: f32[batch, seq, ${D}]
  input %v: f32[batch, seq, ${D}]
  input %attention_mask: i64[batch, seq]
  init %tril: bool[16, 16] = tensor<bool[16, 16]> [${Array.from({ length: 256 }, (_, i) => (i % 16 <= Math.floor(i / 16) ? 'true' : 'false')).join(', ')}]
  init %alpha: f32[] = tensor<f32[]> [0.3535533905932738]
  init %beta: f32[] = tensor<f32[]> [1.0]
  init %fill: f32[] = tensor<f32[]> [-3.4028234663852886e38]
  init %one: f32[] = tensor<f32[]> [1.0]
  init %nheads: i64[] = tensor<i64[]> [${H}]
  init %hd: i64[1] = tensor<i64[1]> [${D}]
  init %h1: i64[1] = tensor<i64[1]> [${H}]
  init %i0: i64[] = tensor<i64[]> [0]
  init %i1: i64[] = tensor<i64[]> [1]
  init %ax0: i64[1] = tensor<i64[1]> [0]
  init %ax1: i64[1] = tensor<i64[1]> [1]
  init %ax2: i64[1] = tensor<i64[1]> [2]
  init %m1: i64[1] = tensor<i64[1]> [-1]
  %qshape = Shape(%q3)
  %b = Gather(%qshape, %i0) {axis = 0}
  %s = Gather(%qshape, %i1) {axis = 0}
  %kshape = Shape(%k)
  %t = Gather(%kshape, %i1) {axis = 0}
  %sh = Mul(%s, %nheads)
  %b1 = Unsqueeze(%b, %ax0)
  %s1 = Unsqueeze(%s, %ax0)
  %t1 = Unsqueeze(%t, %ax0)
  %sh1 = Unsqueeze(%sh, %ax0)
  %view3 = Concat(%b1, %sh1, %t1) {axis = 0}
  %view4 = Concat(%b1, %s1, %h1, %t1) {axis = 0}
  %qshape3 = Concat(%b1, %sh1, %hd) {axis = 0}
  %q = Reshape(%q3, %qshape3)
  %zeros = ConstantOfShape(%view3)
  %kT = Transpose(%k) {perm = [0, 2, 1]}
  %mm = MatMul(%q, %kT)
  %mma = Mul(%mm, %alpha)
  %zb = Mul(%zeros, %beta)
  %bd = Add(%zb, %mma)
${
  foldedBias
    ? `  %pad_f = Cast(%attention_mask) {to = 1}
  %pad_inv = Sub(%one, %pad_f)
  %pad_bias = Mul(%pad_inv, %fill)
  %pad3 = Unsqueeze(%pad_bias, %ax1)
  %bd2 = Add(%bd, %pad3)`
    : '  %bd2 = Identity(%bd)'
}
  %s4 = Reshape(%bd2, %view4)
  %lo = Sub(%t1, %s1)
  %rows = Slice(%tril, %lo, %t1, %ax0)
  %causal = Slice(%rows, %ax0, %t1, %ax1)
  %causal3 = Unsqueeze(%causal, %ax0)
  %pad = Cast(%attention_mask) {to = 9}
  %pad_view = Unsqueeze(%pad, %ax1)
  %keep3 = And(%causal3, %pad_view)
  %keep = Unsqueeze(%keep3, %ax2)
  %x = Where(%keep, %s4, %fill)
  %p4 = Softmax(%x) {axis = -1}
  %p = Reshape(%p4, %view3)
  %y3 = MatMul(%p, %v)
  %y = Reshape(%y3, %qshape)
  output %y
}`;

const proven = (g: Parameters<ReturnType<typeof analyzeMaskPass>['run']>[0]) => analyzeMaskPass().run(g).notes.map((n) => n.message);

describe('heads folded into the query axis (GPT-BigCode multi-query attention)', () => {
  test('static shapes, the Softmax in the [B, S, H, T] view: H query heads over one key/value head', async () => {
    const site = await liftedAndExact(staticFold(), { opset: 17, seed: 3, sizes: { batch: 2, seq: 7, past: 0 } });
    expect(site.params).toMatchObject({ numHeads: H, kvNumHeads: 1, headDim: D, vHeadDim: D, layout: 'bhsd' });
    expect(site.inputs[AttentionInput.bias]).toBeDefined();
  });

  test('the Softmax in the folded [B, S·H, T] view, the mask in the other', async () => {
    const site = await liftedAndExact(staticFold('folded'), { opset: 17, seed: 4, sizes: { batch: 2, seq: 7, past: 0 } });
    expect(site.params).toMatchObject({ numHeads: H, kvNumHeads: 1 });
  });

  test('dynamic axes as TorchScript exports it: causal proven over [B, H, S, T], the padding kept beside it', async () => {
    const site = await liftedAndExact(bigCode(false), { opset: 17, seed: 5, sizes: { batch: 2, seq: 9, past: 0 }, after: proven });
    expect(site.params).toMatchObject({ numHeads: H, kvNumHeads: 1, headDim: D });
    expect(printSpec(site.params.spec)).toBe('causal');
    expect(site.inputs[AttentionInput.bias]).toBeDefined();
  });

  test('a padding bias [B, 1, T] added over the folded scores: exact, causal still proven', async () => {
    const site = await liftedAndExact(bigCode(true), { opset: 17, seed: 6, sizes: { batch: 3, seq: 6, past: 0 }, after: proven });
    expect(site.params).toMatchObject({ numHeads: H, kvNumHeads: 1 });
    expect(printSpec(site.params.spec)).toBe('causal');
  });

  test('any regrouping of the folded rows lifts (here 2 heads of 14 queries); a view that moves the keys is refused', async () => {
    const regrouped = staticFold().replace('[2, 7, 4, 7]', '[2, 14, 2, 7]').replace('bool[2, 7, 1, 7]', 'bool[2, 14, 1, 7]');
    const site = await liftedAndExact(regrouped, { opset: 17, seed: 7, sizes: { batch: 2, seq: 7, past: 0 } });
    expect(site.params).toMatchObject({ numHeads: 2, kvNumHeads: 1 });
    const moved = staticFold().replace('[2, 7, 4, 7]', '[2, 7, 28, 1]').replace('bool[2, 7, 1, 7]', 'bool[2, 7, 1, 1]');
    expect(refusalNotes(moved)).toMatch(/the scores are reshaped by node Reshape -> %s4/);
  });
});
