// The probabilities the mask filled, zeroed again after the Softmax on the mask's own condition: DeBERTa's
// XSoftmax exports masked_fill(x, rmask, finfo.min), Softmax, masked_fill(p, rmask, 0), with rmask built from the
// int64 attention mask as the product of its query and key factors (padded queries keep no key). attnopt::Attention
// gives those entries 0, and a fully masked row 0, as the graph does: the site lifts, and the lowered graph computes
// what the graph as written computes in onnxruntime (fp32, |lowered - original| <= 1e-5, compareLowered) on inputs
// with padded rows. A Where on another condition stays refused, with the reason.

import { isAttention, parseGraph } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { rewritePass } from '@attnopt/rewrite';
import { describe, expect, test } from 'vitest';
import { lowerAttentionPass } from '../src/lower/index.js';
import { RECOGNITION_RULES } from '../src/recognize/index.js';
import { liftedAndExact, refusalNotes } from './helpers/lifted-exact.js';
import { compareLowered, ortTensor, randomInputs, runModel } from './helpers/ort.js';

const OPSET = 17;

/** XSoftmax with the fill as masked_fill writes it (`inverted`: Where(rmask, fill, x)) or on the keep-mask (Where(keep, x, fill)). */
function xsoftmax(polarity: 'inverted' | 'keep', zeroOn = '%rmask'): string {
  const [fill, zero] =
    polarity === 'inverted'
      ? ['%x = Where(%rmask, %fmin, %sc)', `%p = Where(${zeroOn}, %zero, %p0)`]
      : ['%x = Where(%keep, %sc, %fmin)', `%p = Where(${zeroOn === '%rmask' ? '%keep' : zeroOn}, %p0, %zero)`];
  return `graph g {
  input %q: f32[2, 4, seq, 8]
  input %k: f32[2, 4, seq, 8]
  input %v: f32[2, 4, seq, 8]
  input %attention_mask: i64[2, seq]
  input %other: bool[2, 1, seq, seq]
  init %alpha: f32[] = tensor<f32[]> [0.3535533905932738]
  init %fmin: f32[] = tensor<f32[]> [-3.4028234663852886e38]
  init %zero: f32[] = tensor<f32[]> [0.0]
  init %ax1: i64[1] = tensor<i64[1]> [1]
  init %ax2: i64[1] = tensor<i64[1]> [2]
  init %axl: i64[1] = tensor<i64[1]> [-1]
  %m1 = Unsqueeze(%attention_mask, %ax1)
  %mk = Unsqueeze(%m1, %ax2)
  %mq = Unsqueeze(%m1, %axl)
  %mm = Mul(%mk, %mq)
  %keep = Cast(%mm) {to = 9}
  %rmask = Not(%keep)
  %kT = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kT)
  %sc = Mul(%qk, %alpha)
  ${fill}
  %p0 = Softmax(%x) {axis = -1}
  ${zero}
  %y = MatMul(%p, %v)
  output %y
}`;
}

/** DeBERTa's attention over [B·H, S, D] (B = 2, H = 4, S = 7): scores bmm(q, kᵀ / sqrt(d · 3)) + the relative bias, viewed per head around XSoftmax. */
const DEBERTA = `graph g {
  input %q: f32[batch, 7, 8]
  input %k: f32[batch, 7, 8]
  input %v: f32[batch, 7, 8]
  input %rel: f32[batch, 7, 7]
  input %mask: i64[2, 7]
  init %scale: f32[] = tensor<f32[]> [4.898979485566356]
  init %fmin: f32[] = tensor<f32[]> [-3.4028234663852886e38]
  init %zero: f32[] = tensor<f32[]> [0.0]
  init %ax1: i64[1] = tensor<i64[1]> [1]
  init %ax2: i64[1] = tensor<i64[1]> [2]
  init %axl: i64[1] = tensor<i64[1]> [-1]
  init %t4: i64[4] = tensor<i64[4]> [-1, 4, 7, 7]
  init %t3: i64[3] = tensor<i64[3]> [-1, 7, 7]
  %m1 = Unsqueeze(%mask, %ax1)
  %mk = Unsqueeze(%m1, %ax2)
  %mq = Unsqueeze(%m1, %axl)
  %mm = Mul(%mk, %mq)
  %keep = Cast(%mm) {to = 9}
  %rmask = Not(%keep)
  %kT = Transpose(%k) {perm = [0, 2, 1]}
  %kTs = Div(%kT, %scale)
  %qk = MatMul(%q, %kTs)
  %sc = Add(%qk, %rel)
  %s4 = Reshape(%sc, %t4)
  %x = Where(%rmask, %fmin, %s4)
  %p0 = Softmax(%x) {axis = -1}
  %p4 = Where(%rmask, %zero, %p0)
  %p = Reshape(%p4, %t3)
  %y = MatMul(%p, %v)
  output %y
}`;

describe("the mask's entries zeroed after the Softmax (DeBERTa's XSoftmax)", () => {
  test.each(['inverted', 'keep'] as const)('%s: lifted, exact, padded query rows 0 on both sides', async (polarity) => {
    const text = xsoftmax(polarity);
    const original = exportOnnx(newOnnxModel(parseGraph(text), { opset: OPSET }));
    const g = parseGraph(text);
    rewritePass('recognize', RECOGNITION_RULES).run(g);
    expect(g.nodes.filter(isAttention)).toHaveLength(1);
    expect(g.nodes.some((n) => n.op === 'Softmax')).toBe(false);
    // the second sequence is padded after 4 of its 6 tokens
    const S = 6;
    const feeds = randomInputs(g, 5, { batch: 2, seq: S, past: 0 });
    feeds.attention_mask = ortTensor('i64', [2, S], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    const want = await runModel(original, feeds);
    const y = want.y!.data as Float32Array;
    const row = (b: number, h: number, i: number) => [...y.slice(((b * 4 + h) * S + i) * 8, ((b * 4 + h) * S + i + 1) * 8)];
    expect(row(1, 0, 5).every((x) => x === 0)).toBe(true);
    expect(row(1, 0, 3).some((x) => x !== 0)).toBe(true);
    lowerAttentionPass({ opset: OPSET }).run(g);
    const cmp = compareLowered(await runModel(exportOnnx(newOnnxModel(g, { opset: OPSET })), feeds), want);
    expect(cmp.mismatches, `max abs error ${cmp.maxAbsError}`).toEqual([]);
  });

  test('Conformer (ESPnet, NeMo): the mask cast to bool again for each masked_fill: the same condition, lifted, exact', async () => {
    const text = xsoftmax('inverted', '%rmask_zero')
      .replace('%rmask = Not(%keep)', '%rmask = Not(%keep)\n  %rmask_fill = Cast(%rmask) {to = 9}\n  %rmask_zero = Cast(%rmask) {to = 9}')
      .replace('%x = Where(%rmask, %fmin, %sc)', '%x = Where(%rmask_fill, %fmin, %sc)');
    await liftedAndExact(text, { opset: OPSET, seed: 6, sizes: { batch: 2, seq: 6, past: 0 } });
  });

  test.each([
    ['masked_fill(~keep, -inf), then where(keep, p, 0)', 'inverted', '%p = Where(%keep, %p0, %zero)'],
    ['where(keep, x, -inf), then masked_fill(~keep, 0)', 'keep', '%p = Where(%rmask, %zero, %p0)'],
  ] as const)('the zeroes on the negation of the fill\'s condition (%s): lifted, exact', async (_, polarity, zero) => {
    const text = xsoftmax(polarity).replace(/%p = Where\([^\n]*/, zero);
    expect(text).toContain(zero);
    await liftedAndExact(text, { opset: OPSET, seed: 7, sizes: { batch: 2, seq: 6, past: 0 } });
  });

  test('zeroed on another condition than the fill: refused, with the reason', () => {
    expect(refusalNotes(xsoftmax('inverted', '%other'), OPSET)).toMatch(/nor zeroes the entries the mask filled/);
  });

  test('as DeBERTa writes it around XSoftmax: Kᵀ divided by the scale, a relative bias over [B·H, S, T], the fill and the zeroes over the [B, H, S, T] view: lifted, exact', async () => {
    const site = await liftedAndExact(DEBERTA, { opset: OPSET, seed: 6, sizes: { batch: 8, seq: 7, past: 0 } });
    expect(site.params).toMatchObject({ numHeads: 4, headDim: 8 });
    expect(site.params.scale).toBeCloseTo(1 / Math.sqrt(24), 6);
  });
});
