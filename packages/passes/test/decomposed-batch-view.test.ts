// Masks added over a view that splits the scores' batch axis, as Swin's shifted windows write them (timm and
// Hugging Face): scores [B·nW, H, N, N] viewed as [B, nW, H, N, N], the window mask [nW, N, N] added (or a
// keep-mask applied) there, and the view reshaped back before the Softmax. The site lifts with the mask brought to
// the scores (scores-view.ts), and the lowered graph computes what the graph as written computes in onnxruntime
// (fp32, |lowered - original| <= 1e-5, compareLowered). Before, every shifted-window site was refused ("the scores
// are reshaped ... between Q·Kᵀ and the Softmax").

import { describe, expect, test } from 'vitest';
import { liftedAndExact, refusalNotes } from './helpers/lifted-exact.js';

const [H, N, D, NW] = [4, 16, 8, 4];
const values = (count: number, f: (i: number) => number) => Array.from({ length: count }, (_, i) => f(i)).join(', ');
/** Swin's mask: -100 between tokens of different regions of a shifted window, 0 within one. */
const windowMask = (i: number) => {
  const [w, q, k] = [Math.floor(i / (N * N)), Math.floor(i / N) % N, i % N];
  return (q % (w + 1)) === (k % (w + 1)) ? 0 : -100;
};

/** The view's targets: static (timm: [-1, nW, H, N, N] and [-1, H, N, N]) or read at run time as Hugging Face's view(batch // nW, nW, ...) exports. */
function swin(targets: 'static' | 'dynamic', mask: 'additive' | 'keep' = 'additive'): string {
  const view =
    targets === 'static'
      ? `  init %t5: i64[5] = tensor<i64[5]> [-1, ${NW}, ${H}, ${N}, ${N}]\n  init %t4: i64[4] = tensor<i64[4]> [-1, ${H}, ${N}, ${N}]`
      : `  init %i0: i64[] = tensor<i64[]> [0]
  init %ax0: i64[1] = tensor<i64[1]> [0]
  init %rest5: i64[4] = tensor<i64[4]> [${NW}, ${H}, ${N}, ${N}]
  init %rest4: i64[3] = tensor<i64[3]> [${H}, ${N}, ${N}]
  init %m1: i64[1] = tensor<i64[1]> [-1]
  %mshape = Shape(%mask)
  %nw = Gather(%mshape, %i0) {axis = 0}
  %qshape = Shape(%q)
  %bnw = Gather(%qshape, %i0) {axis = 0}
  %b = Div(%bnw, %nw)
  %b1 = Unsqueeze(%b, %ax0)
  %t5 = Concat(%b1, %rest5) {axis = 0}
  %t4 = Concat(%m1, %rest4) {axis = 0}`;
  const masked =
    mask === 'additive'
      ? '  %mask5 = Unsqueeze(%mask, %ax13)\n  %x5m = Add(%x5, %mask5)'
      : '  %keep = Equal(%mask, %zero)\n  %keep5 = Unsqueeze(%keep, %ax13)\n  %x5m = Where(%keep5, %x5, %ninf)';
  return `graph g {
  input %q: f32[batch, ${H}, ${N}, ${D}]
  input %k: f32[batch, ${H}, ${N}, ${D}]
  input %v: f32[batch, ${H}, ${N}, ${D}]
  init %mask: f32[${NW}, ${N}, ${N}] = tensor<f32[${NW}, ${N}, ${N}]> [${values(NW * N * N, windowMask)}]
  init %rpb: f32[1, ${H}, ${N}, ${N}] = tensor<f32[1, ${H}, ${N}, ${N}]> [${values(H * N * N, (i) => ((i * 37) % 11) / 10 - 0.5)}]
  init %alpha: f32[] = tensor<f32[]> [0.3535533905932738]
  init %zero: f32[] = tensor<f32[]> [0.0]
  init %ninf: f32[] = tensor<f32[]> [-inf]
  init %ax13: i64[2] = tensor<i64[2]> [0, 2]
${view}
  %qs = Mul(%q, %alpha)
  %kT = Transpose(%k) {perm = [0, 1, 3, 2]}
  %mm = MatMul(%qs, %kT)
  %x0 = Add(%mm, %rpb)
  %x5 = Reshape(%x0, %t5)
${masked}
  %x = Reshape(%x5m, %t4)
  %p = Softmax(%x) {axis = -1}
  %y = MatMul(%p, %v)
  output %y
}`;
}

// batch 8 is B = 2 images of nW = 4 windows
const SIZES = { batch: 8, seq: N, past: 0 };

describe("masks over a view of the scores' batch axis (Swin's shifted windows)", () => {
  test('static targets, the window mask added in the view beside a relative-position bias: lifted, exact', async () => {
    const site = await liftedAndExact(swin('static'), { opset: 17, seed: 1, sizes: SIZES });
    expect(site.params).toMatchObject({ numHeads: H, headDim: D });
    expect(site.params.scale).toBeCloseTo(1 / Math.sqrt(D), 6);
    expect(site.ops.has('Softmax')).toBe(false);
  });

  test("targets read at run time (Hugging Face's view(batch // nW, nW, ...)): lifted, exact", async () => {
    await liftedAndExact(swin('dynamic'), { opset: 17, seed: 2, sizes: SIZES });
  });

  test('a keep-mask (Where) in the view: lifted, exact', async () => {
    await liftedAndExact(swin('static', 'keep'), { opset: 17, seed: 3, sizes: SIZES });
  });

  test('a view that is not reshaped back to the scores (heads folded into the batch): refused, with the reason', () => {
    const text = swin('static').replace(`init %t4: i64[4] = tensor<i64[4]> [-1, ${H}, ${N}, ${N}]`, `init %t4: i64[3] = tensor<i64[3]> [-1, ${N}, ${N}]`).replace('%y = MatMul(%p, %v)', `init %t4v: i64[4] = tensor<i64[4]> [-1, ${H}, ${N}, ${N}]\n  %p4 = Reshape(%p, %t4v)\n  %y = MatMul(%p4, %v)`);
    expect(refusalNotes(text)).toMatch(/the scores are reshaped by node Reshape -> %x .*, and no Reshape of scores shaped .* into that view lies between it and Q·Kᵀ/);
  });
});
