// Masks added over a view of the scores that splits the query and key axes, as Segment Anything's image encoder
// (and ViTDet) adds its decomposed relative positions: scores [B·H, h·w, h·w] viewed as [B·H, h, w, h, w],
// rel_h [B·H, h, w, h, 1] and rel_w [B·H, h, w, 1, w] added (each an Einsum of Q with a table of relative
// positions), the view reshaped back before the Softmax. The site lifts with the view's bias brought to the scores
// (scores-view.ts), and the lowered graph computes what the graph as written computes in onnxruntime (fp32,
// |lowered - original| <= 1e-5, compareLowered). Before, every such site was refused ("the scores are reshaped
// ... between Q·Kᵀ and the Softmax").

import { AttentionInput } from '@attnopt/ir';
import { describe, expect, test } from 'vitest';
import { liftedAndExact, refusalNotes } from './helpers/lifted-exact.js';

const [B, H, HW, C] = [2, 2, 4, 8];
const N = HW * HW;
const values = (count: number, f: (i: number) => number) => Array.from({ length: count }, (_, i) => f(i)).join(', ');

/** SAM's Attention.forward with use_rel_pos, as the TorchScript exporter writes it (static shapes); `back` is the view's return target. */
const sam = (back = `[${B * H}, ${N}, ${N}]`) => `graph g {
  input %x: f32[${B}, ${N}, ${3 * H * C}]
  input %v_in: f32[${B * H}, ${N}, ${C}]
  init %qkv_shape: i64[5] = tensor<i64[5]> [${B}, ${N}, 3, ${H}, ${C}]
  init %qkv3: i64[4] = tensor<i64[4]> [3, ${B * H}, ${N}, ${C}]
  init %i0: i64[] = tensor<i64[]> [0]
  init %i1: i64[] = tensor<i64[]> [1]
  init %scale: f32[] = tensor<f32[]> [0.3535533905932738]
  init %rq_shape: i64[4] = tensor<i64[4]> [${B * H}, ${HW}, ${HW}, ${C}]
  init %rel_pos_h: f32[${HW}, ${HW}, ${C}] = tensor<f32[${HW}, ${HW}, ${C}]> [${values(HW * HW * C, (i) => ((i * 7) % 13) / 13 - 0.5)}]
  init %rel_pos_w: f32[${HW}, ${HW}, ${C}] = tensor<f32[${HW}, ${HW}, ${C}]> [${values(HW * HW * C, (i) => ((i * 5) % 11) / 11 - 0.5)}]
  init %view5: i64[5] = tensor<i64[5]> [${B * H}, ${HW}, ${HW}, ${HW}, ${HW}]
  init %back: i64[${back.split(',').length}] = tensor<i64[${back.split(',').length}]> ${back}
  init %ax4: i64[1] = tensor<i64[1]> [4]
  init %ax3: i64[1] = tensor<i64[1]> [3]
  %qkv5 = Reshape(%x, %qkv_shape)
  %qkvt = Transpose(%qkv5) {perm = [2, 0, 3, 1, 4]}
  %qkv = Reshape(%qkvt, %qkv3)
  %q = Gather(%qkv, %i0) {axis = 0}
  %k = Gather(%qkv, %i1) {axis = 0}
  %qs = Mul(%q, %scale)
  %kT = Transpose(%k) {perm = [0, 2, 1]}
  %attn = MatMul(%qs, %kT)
  %r_q = Reshape(%q, %rq_shape)
  %rel_h = Einsum(%r_q, %rel_pos_h) {equation = "bhwc,hkc->bhwk"}
  %rel_w = Einsum(%r_q, %rel_pos_w) {equation = "bhwc,wkc->bhwk"}
  %a5 = Reshape(%attn, %view5)
  %rh = Unsqueeze(%rel_h, %ax4)
  %rw = Unsqueeze(%rel_w, %ax3)
  %a5h = Add(%a5, %rh)
  %a5hw = Add(%a5h, %rw)
  %a3 = Reshape(%a5hw, %back)
  %p = Softmax(%a3) {axis = -1}
  %y = MatMul(%p, %v_in)
  output %y
}`;

describe("a view of the scores that splits the query and key axes (SAM's decomposed relative positions)", () => {
  test('rel_h and rel_w added in the [B·H, h, w, h, w] view: lifted with the bias over the scores, exact', async () => {
    const site = await liftedAndExact(sam(), { opset: 17, seed: 11, sizes: { batch: B, seq: N, past: 0 } });
    expect(site.params).toMatchObject({ headDim: C, scale: expect.closeTo(0.3535533905932738, 6) });
    expect(site.inputs[AttentionInput.bias]).toBeDefined();
  });

  test('a view reshaped back to another grouping of the scores (the Softmax over other rows): refused, with the reason', () => {
    const notes = refusalNotes(sam(`[${B * H}, ${HW}, ${N * HW}]`));
    expect(notes).toMatch(/the scores are reshaped by node Reshape -> %a3 .*, and no Reshape of scores shaped \[4,4,64\] into that view lies between it and Q·Kᵀ/);
  });
});
