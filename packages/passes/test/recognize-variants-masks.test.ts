// Masks as Hugging Face builds them, lifted and then proven by the mask analysis, each checked against the
// graph as written in onnxruntime (optimizations off): recognize -> analyze-mask -> lower to standard ONNX,
// fp32 |lowered - original| <= 1e-5 (compareLowered).
//   causal: Where(arange(n) < (arange(n) + 1).view(n, 1), 0, finfo.min)     -> causal
//   window: Where(tril(ones, -w), finfo.min, causal)                          -> window(w - 1, 0)
//   padding on top: Where(bool(padding bias), finfo.min, structural mask)    -> the structure proven, the
//   whole mask kept as the data-dependent bias (it already masks everything the structure masks)

import { AttentionInput, attentionParams, isAttention, parseGraph, printSpec } from '@attnopt/ir';
import { rewritePass } from '@attnopt/rewrite';
import { describe, expect, test } from 'vitest';
import { analyzeMaskPass } from '../src/mask-analysis/index.js';
import { RECOGNITION_RULES } from '../src/recognize/index.js';
import { liftedAndExact } from './helpers/lifted-exact.js';

const OPSET = 17;

/** The attention every mask of this file feeds: softmax(s · Q·Kᵀ + %mask) · V (the graph text's last lines). */
const MASKED_ATTENTION = `  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Mul(%qk, %s)
  %b = Add(%sc, %mask)
  %p = Softmax(%b) {axis = -1}
  %y = MatMul(%p, %v)
  output %y
}`;

/** Causal (and windowed when `window` is set) float mask [1, 1, n, n] of the HF form, padding filled on top. */
const hfMask = (window: number | undefined, padding: boolean) => `graph g {
  input %q: f32[2, 4, seq, 8]
  input %k: f32[2, 4, seq, 8]
  input %v: f32[2, 4, seq, 8]
  input %attention_mask: i64[2, seq]
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]
  init %fmin: f32[] = tensor<f32[]> [-3.4028234663852886e38]
  init %fzero: f32[] = tensor<f32[]> [0.0]
  init %fone: f32[] = tensor<f32[]> [1.0]
  init %i0: i64[] = tensor<i64[]> [0]
  init %i1: i64[] = tensor<i64[]> [1]
  init %two: i64[] = tensor<i64[]> [2]
  init %one1: i64[1] = tensor<i64[1]> [1]
  init %ax0: i64[1] = tensor<i64[1]> [0]
  init %ax01: i64[2] = tensor<i64[2]> [0, 1]
  init %ax12: i64[2] = tensor<i64[2]> [1, 2]
  init %minus_w: i64[] = tensor<i64[]> [${-(window ?? 0)}]
  %qs = Shape(%q)
  %n = Gather(%qs, %two) {axis = 0}
  %n1 = Unsqueeze(%n, %ax0)
  %nn = Concat(%n1, %n1) {axis = 0}
  %full = ConstantOfShape(%nn) {value = tensor<f32[1]> [-3.4028234663852886e38]}
  %r = Range(%i0, %n, %i1)
  %r1 = Add(%r, %i1)
  %col = Concat(%n1, %one1) {axis = 0}
  %rc = Reshape(%r1, %col)
  %below = Less(%r, %rc)
  %causal = Where(%below, %fzero, %full)
${window === undefined ? '  %band = Identity(%causal)' : `  %ones = ConstantOfShape(%nn) {value = tensor<bool[1]> [true]}
  %far = Trilu(%ones, %minus_w) {upper = 0}
  %band = Where(%far, %fmin, %causal)`}
  %band4 = Unsqueeze(%band, %ax01)
${padding ? `  %m4 = Unsqueeze(%attention_mask, %ax12)
  %mf = Cast(%m4) {to = 1}
  %inv = Sub(%fone, %mf)
  %invb = Cast(%inv) {to = 9}
  %pad = Where(%invb, %fmin, %inv)
  %padb = Cast(%pad) {to = 9}
  %mask = Where(%padb, %fmin, %band4)` : '  %mask = Identity(%band4)'}
${MASKED_ATTENTION}`;

async function provenAndExact(text: string, seq: number): Promise<{ spec: string; bias: boolean }> {
  const site = await liftedAndExact(text, { opset: OPSET, seed: 9, sizes: { batch: 2, seq, past: 0 }, after: (g) => analyzeMaskPass().run(g).notes.map((n) => n.message) });
  return { spec: printSpec(site.params.spec), bias: site.inputs[AttentionInput.bias] !== undefined };
}

describe('Hugging Face 4D masks', () => {
  test('causal from arange < (arange + 1).view(n, 1): causal, bias dropped', async () => {
    expect(await provenAndExact(hfMask(undefined, false), 7)).toEqual({ spec: 'causal', bias: false });
  });
  test('causal with padding filled on top: causal proven, the filled mask kept as bias', async () => {
    expect(await provenAndExact(hfMask(undefined, true), 7)).toEqual({ spec: 'causal', bias: true });
  });
  test('sliding window 3 (tril(ones, -3) filled) with padding: window(left=2, right=0) proven, bias kept', async () => {
    expect(await provenAndExact(hfMask(3, true), 9)).toEqual({ spec: 'window(left=2, right=0)', bias: true });
  });
  test('a keep-mask and an additive term that both depend on data: causal proven, the whole mask kept as the bias', async () => {
    // the padding keep-mask and the position bias cannot be one residual value apart; the whole mask keeps no
    // more than the causal band, so causal + the whole mask as bias is the original exactly
    const text = hfMask(undefined, true)
      .replace('  input %attention_mask: i64[2, seq]', '  input %attention_mask: i64[2, seq]\n  input %position_bias: f32[1, 4, seq, seq]')
      .replace('%mask = Where(%padb, %fmin, %band4)', '%keepb = Not(%padb)\n  %kept = Where(%keepb, %band4, %fmin)\n  %mask = Add(%kept, %position_bias)');
    expect(await provenAndExact(text, 7)).toEqual({ spec: 'causal', bias: true });
  });
});

describe('causal | padding filled once (Falcon: triu(ones, 1) | Not(attention_mask))', () => {
  const falcon = (negated: boolean) => `graph g {
  input %q: f32[2, 4, seq, 8]
  input %k: f32[2, 4, seq, 8]
  input %v: f32[2, 4, seq, 8]
  input %attention_mask: i64[2, seq]
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]
  init %fmin: f32[] = tensor<f32[]> [-3.4028234663852886e38]
  init %fzero: f32[] = tensor<f32[]> [0.0]
  init %two: i64[] = tensor<i64[]> [2]
  init %i1: i64[] = tensor<i64[]> [1]
  init %ax0: i64[1] = tensor<i64[1]> [0]
  init %ax12: i64[2] = tensor<i64[2]> [1, 2]
  %qs = Shape(%q)
  %n = Gather(%qs, %two) {axis = 0}
  %n1 = Unsqueeze(%n, %ax0)
  %nn = Concat(%n1, %n1) {axis = 0}
  %ones = ConstantOfShape(%nn) {value = tensor<bool[1]> [true]}
  %future = Trilu(%ones, %i1) {upper = 1}
  %keep = Cast(%attention_mask) {to = 9}
  %keep4 = Unsqueeze(%keep, %ax12)
  init %zero64: i64[] = tensor<i64[]> [0]
  %am4 = Unsqueeze(%attention_mask, %ax12)
  ${negated ? '%pad = Not(%keep4)' : '%pad = Equal(%am4, %zero64)'}
  %masked = Or(%future, %pad)
  %mask = Where(%masked, %fmin, %fzero)
${MASKED_ATTENTION}`;
  test('causal proven, the attention mask kept as the keep-mask bias', async () => {
    expect(await provenAndExact(falcon(true), 7)).toEqual({ spec: 'causal', bias: true });
  });
  test('padding as attention_mask == 0 (no Not of a keep-mask: no value holds what it keeps): causal proven, the whole mask kept', async () => {
    expect(await provenAndExact(falcon(false), 7)).toEqual({ spec: 'causal', bias: true });
    const g = parseGraph(falcon(false));
    rewritePass('recognize', RECOGNITION_RULES).run(g);
    const notes = analyzeMaskPass().run(g).notes.map((n) => n.message);
    expect(notes.join('\n')).toMatch(/no value holds that complement: the whole .* stays as bias/);
  });
});

describe('causal mask with a cache: Concat(zeros[q, past], causal[q, q]) along the keys (HF with past_key_values)', () => {
  const withPast = (firstBlock: 'zeros' | 'masked') => `graph g {
  input %q: f32[2, 4, seq, 8]
  input %k_new: f32[2, 4, seq, 8]
  input %v_new: f32[2, 4, seq, 8]
  input %past_key: f32[2, 4, past, 8]
  input %past_value: f32[2, 4, past, 8]
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]
  init %fzero: f32[] = tensor<f32[]> [0.0]
  init %i0: i64[] = tensor<i64[]> [0]
  init %i1: i64[] = tensor<i64[]> [1]
  init %two: i64[] = tensor<i64[]> [2]
  init %one1: i64[1] = tensor<i64[1]> [1]
  init %ax0: i64[1] = tensor<i64[1]> [0]
  init %ax01: i64[2] = tensor<i64[2]> [0, 1]
  %k = Concat(%past_key, %k_new) {axis = 2}
  %v = Concat(%past_value, %v_new) {axis = 2}
  %qs = Shape(%q)
  %n = Gather(%qs, %two) {axis = 0}
  %n1 = Unsqueeze(%n, %ax0)
  %ps = Shape(%past_key)
  %p = Gather(%ps, %two) {axis = 0}
  %p1 = Unsqueeze(%p, %ax0)
  %nn = Concat(%n1, %n1) {axis = 0}
  %np = Concat(%n1, %p1) {axis = 0}
  %full = ConstantOfShape(%nn) {value = tensor<f32[1]> [-3.4028234663852886e38]}
  %r = Range(%i0, %n, %i1)
  %r1 = Add(%r, %i1)
  %col = Concat(%n1, %one1) {axis = 0}
  %rc = Reshape(%r1, %col)
  %below = Less(%r, %rc)
  %causal = Where(%below, %fzero, %full)
  %first = ConstantOfShape(%np) {value = tensor<f32[1]> [${firstBlock === 'zeros' ? '0.0' : '-3.4028234663852886e38'}]}
  %mask2 = Concat(%first, %causal) {axis = -1}
  %mask = Unsqueeze(%mask2, %ax01)
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Mul(%qk, %s)
  %b = Add(%sc, %mask)
  %pr = Softmax(%b) {axis = -1}
  %y = MatMul(%pr, %v)
  output %y
}`;
  test('every cached key visible, then causal: causal(bottom-right) over past + new keys, bias dropped', async () => {
    expect(await provenAndExact(withPast('zeros'), 5)).toEqual({ spec: 'causal(align=bottom-right)', bias: false });
  });
  test('does not prove causal when the cached keys are masked', () => {
    const g = parseGraph(withPast('masked'));
    rewritePass('recognize', RECOGNITION_RULES).run(g);
    analyzeMaskPass().run(g);
    const att = g.nodes.filter(isAttention);
    expect(att).toHaveLength(1);
    expect(printSpec(attentionParams(att[0]!).spec)).not.toBe('causal(align=bottom-right)');
  });
});

describe('a mask broadcast along the keys (the IR reads a key axis shorter than the key count as masked keys)', () => {
  // per-query terms (a query's own bias [B, 1, S, 1], a scalar score mod): the lift expands them to every key,
  // else the IR would mask every key after the first
  const perQuery = (mask: string, maskInput: string) => `graph g {
  input %q: f32[2, 4, seq, 8]
  input %k: f32[2, 4, seq, 8]
  input %v: f32[2, 4, seq, 8]
  ${maskInput}
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]
  init %fmin: f32[] = tensor<f32[]> [-3.4028234663852886e38]
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Mul(%qk, %s)
  ${mask}
  %p = Softmax(%b) {axis = -1}
  %y = MatMul(%p, %v)
  output %y
}`;
  test('an additive bias [B, 1, S, 1]', async () => {
    expect(await provenAndExact(perQuery('%b = Add(%sc, %row_bias)', 'input %row_bias: f32[2, 1, seq, 1]'), 7)).toEqual({ spec: 'dense', bias: true });
  });
  test('a scalar added to every score', async () => {
    expect(await provenAndExact(perQuery('%b = Add(%sc, %shift)', 'init %shift: f32[] = tensor<f32[]> [1.5]'), 7)).toEqual({ spec: 'dense', bias: true });
  });
});

describe('masks subtracted, and scales after a mask', () => {
  // s · (x + M) = s · x + s · M: the bias is s · M; x - M: the bias is -M; a masked fill scaled by s > 0 stays a
  // fill where s · fill still drowns every score
  const scores = (chain: string, inputs: string) => `graph g {
  input %q: f32[2, 4, seq, 8]
  input %k: f32[2, 4, seq, 8]
  input %v: f32[2, 4, seq, 8]
  ${inputs}
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]
  init %root: f32[] = tensor<f32[]> [2.8284271247461903]
  init %ninf: f32[] = tensor<f32[]> [-inf]
  init %tenk: f32[] = tensor<f32[]> [-10000.0]
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
${chain}
  %p = Softmax(%b) {axis = -1}
  %y = MatMul(%p, %v)
  output %y
}`;
  const BIAS = 'input %m: f32[2, 1, seq, seq]';
  const KEEP = 'input %keep: bool[2, 1, 1, seq]';
  test('(x + M) · s: the bias M · s', async () => {
    expect(await provenAndExact(scores('  %a = Add(%qk, %m)\n  %b = Mul(%a, %s)', BIAS), 7)).toEqual({ spec: 'dense', bias: true });
  });
  test('x · s - M (a mask subtracted): the bias -M', async () => {
    expect(await provenAndExact(scores('  %sc = Mul(%qk, %s)\n  %b = Sub(%sc, %m)', BIAS), 7)).toEqual({ spec: 'dense', bias: true });
  });
  test('masked fill with -inf, then divided by sqrt(d), then a bias added', async () => {
    expect(await provenAndExact(scores('  %w = Where(%keep, %qk, %ninf)\n  %d = Div(%w, %root)\n  %b = Add(%d, %m)', `${KEEP}\n  ${BIAS}`), 7)).toEqual({ spec: 'dense', bias: true });
  });
  test('refused: a fill of -10000 scaled by 1 / sqrt(8) before the Softmax no longer drowns every score', () => {
    const g = parseGraph(scores('  %w = Where(%keep, %qk, %tenk)\n  %b = Div(%w, %root)', KEEP));
    const notes = rewritePass('recognize', RECOGNITION_RULES).run(g).notes.map((n) => n.message);
    expect(g.nodes.filter(isAttention)).toHaveLength(0);
    expect(notes.join('\n')).toContain('fills -10000, scaled by 0.35355339');
  });
  test('refused: a scale after softcapped scores and a mask (no softcap attnopt::Attention computes)', () => {
    const g = parseGraph(scores('  init %cap: f32[] = tensor<f32[]> [30.0]\n  %sc = Div(%qk, %cap)\n  %t = Tanh(%sc)\n  %c = Mul(%t, %cap)\n  %a = Add(%c, %m)\n  %b = Mul(%a, %s)', BIAS));
    const notes = rewritePass('recognize', RECOGNITION_RULES).run(g).notes.map((n) => n.message);
    expect(g.nodes.filter(isAttention)).toHaveLength(0);
    expect(notes.join('\n')).toContain('scales softcapped scores');
  });
});

describe("torch's causal mask for scaled_dot_product_attention(is_causal=True), as both ONNX exporters write it", () => {
  // Expand(1.0, [S, T]) -> Trilu(upper = 0) -> Equal(., 0) -> Where(., -inf, 0): an indicator compared with a
  // constant is decided at its two values (1 on and below the diagonal, 0 above)
  const torchCausal = (compare: string) => `graph g {
  input %q: f32[2, 4, seq, 8]
  input %k: f32[2, 4, seq, 8]
  input %v: f32[2, 4, seq, 8]
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]
  init %fzero: f32[] = tensor<f32[]> [0.0]
  init %half: f32[] = tensor<f32[]> [0.5]
  init %ninf: f32[] = tensor<f32[]> [-inf]
  init %one: f32[] = tensor<f32[]> [1.0]
  init %m1: i64[1] = tensor<i64[1]> [-1]
  init %m2: i64[1] = tensor<i64[1]> [-2]
  init %big: i64[1] = tensor<i64[1]> [9223372036854775807]
  %qs = Shape(%q)
  %ks = Shape(%k)
  %target = Slice(%qs, %m2, %m1)
  %source = Slice(%ks, %m2, %m1)
  %size = Concat(%target, %source) {axis = 0}
  %ones = Expand(%one, %size)
  %tril = Trilu(%ones) {upper = 0}
  ${compare}
  %mask = Where(%above, %ninf, %fzero)
${MASKED_ATTENTION}`;
  test('Equal(tril, 0): causal proven, bias dropped', async () => {
    expect(await provenAndExact(torchCausal('%above = Equal(%tril, %fzero)'), 7)).toEqual({ spec: 'causal', bias: false });
  });
  test('the constant first, and Less(tril, 0.5): the same', async () => {
    expect(await provenAndExact(torchCausal('%above = Equal(%fzero, %tril)'), 7)).toEqual({ spec: 'causal', bias: false });
    expect(await provenAndExact(torchCausal('%above = Less(%tril, %half)'), 7)).toEqual({ spec: 'causal', bias: false });
  });
});

describe("MPT: torch.ones(s, s).tril().to(bool).view(1, 1, s, s), and the key padding mask viewed as [b, 1, 1, s]", () => {
  const mpt = `graph g {
  input %q: f32[2, 4, seq, 8]
  input %k: f32[2, 4, seq, 8]
  input %v: f32[2, 4, seq, 8]
  input %key_padding_mask: bool[2, seq]
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]
  init %fmin: f32[] = tensor<f32[]> [-3.4028234663852886e38]
  init %two: i64[] = tensor<i64[]> [2]
  init %ax0: i64[1] = tensor<i64[1]> [0]
  init %ones11: i64[2] = tensor<i64[2]> [1, 1]
  init %b11: i64[3] = tensor<i64[3]> [2, 1, 1]
  %qs = Shape(%q)
  %n = Gather(%qs, %two) {axis = 0}
  %n1 = Unsqueeze(%n, %ax0)
  %nn = Concat(%n1, %n1) {axis = 0}
  %ones = ConstantOfShape(%nn) {value = tensor<f32[1]> [1.0]}
  %tril = Trilu(%ones) {upper = 0}
  %causal2 = Cast(%tril) {to = 9}
  %view = Concat(%ones11, %n1, %n1) {axis = 0}
  %causal = Reshape(%causal2, %view)
  %pview = Concat(%b11, %n1) {axis = 0}
  %pad = Reshape(%key_padding_mask, %pview)
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Mul(%qk, %s)
  %notpad = Not(%pad)
  %w1 = Where(%notpad, %fmin, %sc)
  %notcausal = Not(%causal)
  %w2 = Where(%notcausal, %fmin, %w1)
  %p = Softmax(%w2) {axis = -1}
  %y = MatMul(%p, %v)
  output %y
}`;
  test('causal proven through the Reshape that adds leading axes of 1, the padding kept as a key bias', async () => {
    expect(await provenAndExact(mpt, 7)).toEqual({ spec: 'causal', bias: true });
  });
});
