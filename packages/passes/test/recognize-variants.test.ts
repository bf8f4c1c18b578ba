// Layout variants of decomposed attention as exporters write them, each lifted by the recognize pass and then
// checked against the graph as written: both run in onnxruntime (optimizations off) on the same seeded inputs,
// the lifted one after lowering the Attention node back to standard ONNX ops. fp32: |lifted - original| <= 1e-5
// (compareLowered). Every variant has a "does not fire when" case beside it.

import { assertValid, attentionParams, type AttentionParams, isAttention, parseGraph } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { rewritePass } from '@attnopt/rewrite';
import { describe, expect, test } from 'vitest';
import { lowerAttentionPass } from '../src/lower/index.js';
import { RECOGNITION_RULES } from '../src/recognize/index.js';
import { compareLowered, randomInputs, runModel } from './helpers/ort.js';

const OPSET = 17;

const recognize = (text: string) => {
  const g = parseGraph(text);
  const r = rewritePass('recognize', RECOGNITION_RULES, { explain: true }).run(g);
  assertValid(g);
  return { g, att: g.nodes.filter(isAttention), why: r.notes.map((n) => n.message).join('\n') };
};

/** Lifts `text`, expects `sites` Attention nodes with `params`, and runs lifted-and-lowered vs as written. */
async function liftsExactly(text: string, params: Partial<AttentionParams>, sites = 1): Promise<void> {
  const original = exportOnnx(newOnnxModel(parseGraph(text), { opset: OPSET }));
  const { g, att, why } = recognize(text);
  expect(att, why).toHaveLength(sites);
  for (const a of att) expect(attentionParams(a)).toMatchObject(params);
  const feeds = randomInputs(g, 11, { batch: 2, seq: 6, past: 3 });
  const want = await runModel(original, feeds);
  lowerAttentionPass({ opset: OPSET }).run(g);
  const got = await runModel(exportOnnx(newOnnxModel(g, { opset: OPSET })), feeds);
  const cmp = compareLowered(got, want);
  expect(cmp.mismatches, `max abs error ${cmp.maxAbsError}`).toEqual([]);
}

/** A graph of `body` with inputs `inputs` and output %y. */
const graph = (inputs: string, body: string) => `graph g {
${inputs}
${body}
  output %y
}`;

// [B, S, E] -> [B, H, S, D] the way PyTorch writes x.view(b, t, H, D).transpose(1, 2) with dynamic b, t
const splitHeads = (x: string, out: string, heads: number, d: number) => `  init %${out}_shape: i64[4] = tensor<i64[4]> [0, 0, ${heads}, ${d}]
  %${out}_r = Reshape(%${x}, %${out}_shape)
  %${out} = Transpose(%${out}_r) {perm = [0, 2, 1, 3]}`;

describe('heads folded into the batch: bmm / baddbmm', () => {
  const inputs = `  input %q: f32[2, seq, 32]
  input %k: f32[2, seq, 32]
  input %v: f32[2, seq, 32]
  input %alibi: f32[8, 1, seq]
  init %fold: i64[3] = tensor<i64[3]> [8, -1, 8]
  init %alpha: f32[] = tensor<f32[]> [0.35355339059327373]
  init %beta: f32[] = tensor<f32[]> [1.0]`;
  const fold = (x: string) => `${splitHeads(x, `${x}4`, 4, 8)}
  %${x}3 = Reshape(%${x}4, %fold)`;
  test('baddbmm(alibi, Q, Kᵀ, beta, alpha) over [B·H, S, D] -> Attention with 4 heads and the ALiBi bias', async () => {
    await liftsExactly(graph(inputs, `${fold('q')}
${fold('k')}
${fold('v')}
  %kt = Transpose(%k3) {perm = [0, 2, 1]}
  %bmm = MatMul(%q3, %kt)
  %scaled = Mul(%bmm, %alpha)
  %bias = Mul(%alibi, %beta)
  %sc = Add(%scaled, %bias)
  %p = Softmax(%sc) {axis = -1}
  %y = MatMul(%p, %v3)`), { numHeads: 4, headDim: 8, layout: 'bhsd' });
  });
});

describe('multi-query: one K/V head broadcast by MatMul over the heads axis', () => {
  const mq = (kvHeads: number) => graph(`  input %x: f32[batch, seq, 32]
  input %k: f32[batch, ${kvHeads}, seq, 8]
  input %v: f32[batch, ${kvHeads}, seq, 8]
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]`, `${splitHeads('x', 'q', 4, 8)}
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Mul(%qk, %s)
  %p = Softmax(%sc) {axis = -1}
  %y = MatMul(%p, %v)`);
  test('K and V [B, 1, T, D] against Q [B, 4, S, D] -> kvNumHeads 1', async () => {
    await liftsExactly(mq(1), { numHeads: 4, kvNumHeads: 1, headDim: 8 });
  });
  test('does not fire when K has 3 heads for 4 query heads', () => {
    const { att, why } = recognize(mq(3));
    expect(att).toHaveLength(0);
    expect(why).toMatch(/K has 3 heads/);
  });
});

describe('Einsum in any letter spelling', () => {
  const inputs = `  input %q: f32[batch, seq, 4, 8]
  input %k: f32[batch, seq, 4, 8]
  input %v: f32[batch, seq, 4, 8]
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]`;
  const einsum = (qk: string, pv: string) => graph(inputs, `  %qk = Einsum(%q, %k) {equation = "${qk}"}
  %sc = Mul(%qk, %s)
  %p = Softmax(%sc) {axis = -1}
  %y = Einsum(%p, %v) {equation = "${pv}"}`);
  test.each([
    ['bqhd,bkhd->bhqk', 'bhqk,bkhd->bqhd'],
    ['nlhe,nshe->nhls', 'nhls,nshe->nlhe'],
    ['ZXYW,ZVYW->ZYXV', 'ZYXV,ZVYW->ZXYW'],
    ['bqhd,bkhd->bhqk', 'bhqk,bkhd->bhqd'],
  ])('%s then %s', async (qk, pv) => {
    await liftsExactly(einsum(qk, pv), { numHeads: 4, headDim: 8, layout: 'bhsd' });
  });
  test('does not fire when the scores Einsum contracts the query axis', () => {
    const { att, why } = recognize(einsum('bqhd,bkhd->bhdk', 'bhqk,bkhd->bqhd'));
    expect(att).toHaveLength(0);
    expect(why).toMatch(/not Q · Kᵀ|query and one key/);
  });
  test('does not fire when the output Einsum sums over the query axis', () => {
    const { att, why } = recognize(einsum('bqhd,bkhd->bhqk', 'bhqk,bkhd->bhd'));
    expect(att).toHaveLength(0);
    expect(why).toMatch(/not probabilities · V/);
  });
});

describe('repeat_kv by Unsqueeze + Expand + Reshape', () => {
  const gqa = (groups: number, kvHeads = 2) => graph(`  input %x: f32[2, seq, 32]
  input %k: f32[2, ${kvHeads}, seq, 8]
  input %v: f32[2, ${kvHeads}, seq, 8]
  init %s: f32[] = tensor<f32[]> [8.0]
  init %ax: i64[1] = tensor<i64[1]> [2]
  init %e: i64[5] = tensor<i64[5]> [1, 1, ${groups}, 1, 1]
  init %r: i64[4] = tensor<i64[4]> [0, ${kvHeads * groups}, -1, 8]`, `${splitHeads('x', 'q', 4, 8)}
  %ku = Unsqueeze(%k, %ax)
  %ke = Expand(%ku, %e)
  %kr = Reshape(%ke, %r)
  %vu = Unsqueeze(%v, %ax)
  %ve = Expand(%vu, %e)
  %vr = Reshape(%ve, %r)
  %kt = Transpose(%kr) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Div(%qk, %s)
  %p = Softmax(%sc) {axis = -1}
  %y = MatMul(%p, %vr)`);
  test('2 key/value heads repeated twice for 4 query heads -> kvNumHeads 2, K and V read unrepeated', async () => {
    await liftsExactly(gqa(2), { numHeads: 4, kvNumHeads: 2, headDim: 8, scale: 0.125 });
  });
  test('does not read groups when the heads are tiled (Unsqueeze at axis 1: head h reads h mod 2, not h / 2)', async () => {
    const tiled = gqa(2).replace('[1, 1, 2, 1, 1]', '[1, 2, 1, 1, 1]').replace('%ax: i64[1] = tensor<i64[1]> [2]', '%ax: i64[1] = tensor<i64[1]> [1]');
    await liftsExactly(tiled, { numHeads: 4, kvNumHeads: 4 });
  });
});

describe('packed QKV split by Slice, Split, Gather or unbind', () => {
  const base = `  input %x: f32[batch, seq, 96]
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]`;
  const attend = `  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Mul(%qk, %s)
  %p = Softmax(%sc) {axis = -1}
  %y = MatMul(%p, %v)`;
  test('Slice of the last axis at 0:32, 32:64, 64:96', async () => {
    const slice = (name: string, lo: number) => `  init %${name}_lo: i64[1] = tensor<i64[1]> [${lo}]
  init %${name}_hi: i64[1] = tensor<i64[1]> [${lo + 32}]
  %${name}_flat = Slice(%x, %${name}_lo, %${name}_hi, %last)
${splitHeads(`${name}_flat`, name, 4, 8)}`;
    await liftsExactly(graph(`${base}\n  init %last: i64[1] = tensor<i64[1]> [-1]`, `${slice('q', 0)}\n${slice('k', 32)}\n${slice('v', 64)}\n${attend}`), { numHeads: 4, headDim: 8 });
  });
  test('Split of the last axis into three', async () => {
    await liftsExactly(graph(`${base}\n  init %sizes: i64[3] = tensor<i64[3]> [32, 32, 32]`, `  %qf, %kf, %vf = Split(%x, %sizes) {axis = 2}
${splitHeads('qf', 'q', 4, 8)}\n${splitHeads('kf', 'k', 4, 8)}\n${splitHeads('vf', 'v', 4, 8)}\n${attend}`), { numHeads: 4, headDim: 8 });
  });
  const packed = `  init %five: i64[5] = tensor<i64[5]> [0, 0, 3, 4, 8]
  %x5 = Reshape(%x, %five)`;
  const toBhsd = (x: string, out: string) => `  %${out} = Transpose(%${x}) {perm = [0, 2, 1, 3]}`;
  test('Gather of a [B, S, 3, H, D] view at 0, 1, 2', async () => {
    const gather = (name: string, at: number) => `  init %${name}_at: i64[] = tensor<i64[]> [${at}]
  %${name}_g = Gather(%x5, %${name}_at) {axis = 2}
${toBhsd(`${name}_g`, name)}`;
    await liftsExactly(graph(base, `${packed}\n${gather('q', 0)}\n${gather('k', 1)}\n${gather('v', 2)}\n${attend}`), { numHeads: 4, headDim: 8 });
  });
  test('unbind(2) of a [B, S, 3, H, D] view (Split + Squeeze)', async () => {
    await liftsExactly(graph(`${base}\n  init %ones: i64[3] = tensor<i64[3]> [1, 1, 1]\n  init %two: i64[1] = tensor<i64[1]> [2]`, `${packed}
  %q5, %k5, %v5 = Split(%x5, %ones) {axis = 2}
  %qs = Squeeze(%q5, %two)
  %ks = Squeeze(%k5, %two)
  %vs = Squeeze(%v5, %two)
${toBhsd('qs', 'q')}\n${toBhsd('ks', 'k')}\n${toBhsd('vs', 'v')}\n${attend}`), { numHeads: 4, headDim: 8 });
  });
});

describe('the scale on Q, on Kᵀ, on both, or on the scores; by Mul or Div; static or from shapes', () => {
  const inputs = `  input %q: f32[batch, 4, seq, 16]
  input %k: f32[batch, 4, seq, 16]
  input %v: f32[batch, 4, seq, 16]
  init %quarter: f32[] = tensor<f32[]> [0.5]
  init %four: f32[] = tensor<f32[]> [4.0]
  init %one: f32[] = tensor<f32[]> [1.0]
  init %last: i64[] = tensor<i64[]> [-1]`;
  const tail = `  %p = Softmax(%sc) {axis = -1}
  %y = MatMul(%p, %v)`;
  test.each([
    ['on Q by Mul', `  %qs = Mul(%q, %quarter)\n  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}\n  %sc = MatMul(%qs, %kt)`, 0.5],
    ['on Kᵀ by Div', `  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}\n  %ks = Div(%kt, %four)\n  %sc = MatMul(%q, %ks)`, 0.25],
    ['on both, each d^-0.25 (Whisper)', `  %qs = Mul(%q, %quarter)\n  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}\n  %ks = Mul(%kt, %quarter)\n  %sc = MatMul(%qs, %ks)`, 0.25],
    [
      'on the scores, 1 / sqrt(K.size(-1)) from Shape',
      `  %kshape = Shape(%k)\n  %d = Gather(%kshape, %last) {axis = 0}\n  %df = Cast(%d) {to = 1}\n  %root = Sqrt(%df)\n  %inv = Div(%one, %root)
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}\n  %qk = MatMul(%q, %kt)\n  %sc = Mul(%qk, %inv)`,
      0.25,
    ],
  ])('%s', async (_name, body, scale) => {
    await liftsExactly(graph(inputs, `${body}\n${tail}`), { numHeads: 4, headDim: 16, scale });
  });
  test('does not fire when the scores are scaled by a run-time value', () => {
    const { att, why } = recognize(graph(`${inputs}\n  input %t: f32[1]`, `  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}\n  %qk = MatMul(%q, %kt)\n  %sc = Mul(%qk, %t)\n${tail}`));
    expect(att).toHaveLength(0);
    expect(why).toMatch(/not a static scalar/);
  });
});

describe('masks: Add, Where, masked_fill, expand_as + Where, clamp(min = finfo.min); biases; a kept-alive Softmax', () => {
  const inputs = `  input %q: f32[batch, 4, seq, 8]
  input %k: f32[batch, 4, seq, 8]
  input %v: f32[batch, 4, seq, 8]
  input %attention_mask: i64[batch, seq]
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]
  init %ninf: f32[] = tensor<f32[]> [-inf]
  init %fmin: f32[] = tensor<f32[]> [-3.4028234663852886e38]
  init %one: f32[] = tensor<f32[]> [1.0]
  init %ax12: i64[2] = tensor<i64[2]> [1, 2]
  init %zero: i64[] = tensor<i64[]> [0]`;
  const scores = `  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Mul(%qk, %s)
  %m4 = Unsqueeze(%attention_mask, %ax12)
  %pad = Equal(%m4, %zero)`;
  const tail = `  %p = Softmax(%masked) {axis = -1}
  %y = MatMul(%p, %v)`;
  test.each([
    ['additive (1 - mask) · finfo.min', `  %mf = Cast(%m4) {to = 1}\n  %inv = Sub(%one, %mf)\n  %add = Mul(%inv, %fmin)\n  %masked = Add(%sc, %add)`],
    ['Where(pad, -inf, scores)', `  %masked = Where(%pad, %ninf, %sc)`],
    ['masked_fill(pad, finfo.min)', `  %keep = Not(%pad)\n  %masked = Where(%keep, %sc, %fmin)`],
    ['expand_as + Where', `  %ss = Shape(%sc)\n  %padx = Expand(%pad, %ss)\n  %masked = Where(%padx, %ninf, %sc)`],
    [
      'additive mask then clamp(min = finfo.min)',
      `  %mf = Cast(%m4) {to = 1}\n  %inv = Sub(%one, %mf)\n  %add = Mul(%inv, %fmin)\n  %sum = Add(%sc, %add)\n  %masked = Max(%sum, %fmin)`,
    ],
  ])('%s', async (_name, body) => {
    await liftsExactly(graph(inputs, `${scores}\n${body}\n${tail}`), { numHeads: 4, headDim: 8 });
  });
  test('does not fire when the scores are clamped at a value that is not a mask fill', () => {
    const { att, why } = recognize(graph(inputs, `${scores}\n  %masked = Max(%sc, %one)\n${tail}`));
    expect(att).toHaveLength(0);
    expect(why).toMatch(/Max|not a MatMul/);
  });
  test('relative-position bias (an input [1, H, S, T]) stays a bias, scale 1', async () => {
    await liftsExactly(graph(`${inputs}\n  input %position_bias: f32[1, 4, seq, seq]`, `  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %masked = Add(%qk, %position_bias)\n${tail}`), { numHeads: 4, scale: 1 });
  });
  test('ALiBi: slopes · key position added to the scores', async () => {
    await liftsExactly(graph(`${inputs}\n  init %slopes: f32[4, 1, 1] = tensor<f32[4, 1, 1]> [-0.5, -0.25, -0.125, -0.0625]\n  init %r0: i64[] = tensor<i64[]> [0]\n  init %r1: i64[] = tensor<i64[]> [1]`, `  %ks = Shape(%k)
  %two: i64[] = Constant() {value = tensor<i64[]> [2]}
  %t = Gather(%ks, %two) {axis = 0}
  %pos = Range(%r0, %t, %r1)
  %posf = Cast(%pos) {to = 1}
  %alibi = Mul(%slopes, %posf)
${scores}
  %masked = Add(%sc, %alibi)\n${tail}`), { numHeads: 4 });
  });
  test('a Softmax output the model also returns stays computed; the site lifts', async () => {
    const text = graph(inputs, `${scores}\n  %masked = Where(%pad, %ninf, %sc)\n${tail}`).replace('  output %y', '  output %y, %p');
    await liftsExactly(text, { numHeads: 4 });
  });
});

describe('the softmax computed in float32 between Casts', () => {
  test('fp16 Q, K, V; Cast(scores, f32) -> Softmax -> Cast(f16) -> · V', async () => {
    await liftsExactly(graph(`  input %q: f16[batch, 2, seq, 8]
  input %k: f16[batch, 2, seq, 8]
  input %v: f16[batch, 2, seq, 8]
  init %s: f16[] = tensor<f16[]> [0.35355339059327373]`, `  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Mul(%qk, %s)
  %up = Cast(%sc) {to = 1}
  %p32 = Softmax(%up) {axis = -1}
  %p = Cast(%p32) {to = 10}
  %y = MatMul(%p, %v)`), { numHeads: 2, softmaxPrecision: 'f32' });
  });
});

describe('scores over [B·H, S, T] viewed as [B, H, S, T] around the masks (BLOOM, CLIP, GPT-NeoX, BART)', () => {
  const inputs = `  input %x: f32[2, seq, 32]
  input %alibi: f32[8, 1, seq]
  input %causal: f32[1, 1, seq, seq]
  input %attention_mask: i64[2, seq]
  init %fold: i64[3] = tensor<i64[3]> [8, -1, 8]
  init %b_h: i64[2] = tensor<i64[2]> [2, 4]
  init %bh: i64[1] = tensor<i64[1]> [8]
  init %one1: i64[1] = tensor<i64[1]> [1]
  init %two1: i64[1] = tensor<i64[1]> [2]
  init %alpha: f32[] = tensor<f32[]> [0.35355339059327373]
  init %ninf: f32[] = tensor<f32[]> [-inf]
  init %ax12: i64[2] = tensor<i64[2]> [1, 2]
  init %zero: i64[] = tensor<i64[]> [0]`;
  const heads3 = (x: string) => `${splitHeads('x', `${x}4`, 4, 8)}
  %${x}3 = Reshape(%${x}4, %fold)`;
  const qkv = `  %xs = Shape(%x)
  %t = Slice(%xs, %one1, %two1)
  %view4 = Concat(%b_h, %t, %t) {axis = 0}
  %view3 = Concat(%bh, %t, %t) {axis = 0}
${heads3('q')}\n${heads3('k')}\n${heads3('v')}
  %kt = Transpose(%k3) {perm = [0, 2, 1]}
  %bmm = MatMul(%q3, %kt)
  %pad = Equal(%attention_mask, %zero)
  %pad4 = Unsqueeze(%pad, %ax12)`;
  test('BLOOM: ALiBi added over [B·H, S, T], viewed as 4D, masked_fill, Softmax, folded back for the bmm with V', async () => {
    await liftsExactly(graph(inputs, `${qkv}
  %scaled = Mul(%bmm, %alpha)
  %sc = Add(%scaled, %alibi)
  %sc4 = Reshape(%sc, %view4)
  %masked = Where(%pad4, %ninf, %sc4)
  %p4 = Softmax(%masked) {axis = -1}
  %p = Reshape(%p4, %view3)
  %y = MatMul(%p, %v3)`), { numHeads: 4, headDim: 8, layout: 'bhsd' });
  });
  test('ChatGLM: baddbmm(empty, q, kᵀ, beta = 0, alpha) viewed as 4D, scaled by the layer coefficient, masked_fill(-inf)', async () => {
    // (the coefficient cancels the one alpha divided by: the site's scale is alpha · coeff)
    await liftsExactly(graph(`${inputs}\n  init %coeff: f32[] = tensor<f32[]> [3.0]\n  init %beta: f32[] = tensor<f32[]> [0.0]`, `${qkv}
  %scaled = Mul(%bmm, %alpha)
  %empty = ConstantOfShape(%view3)
  %zeroed = Mul(%empty, %beta)
  %sc = Add(%scaled, %zeroed)
  %sc4 = Reshape(%sc, %view4)
  %scf = Cast(%sc4) {to = 1}
  %layer = Mul(%scf, %coeff)
  %masked = Where(%pad4, %ninf, %layer)
  %p4 = Softmax(%masked) {axis = -1}
  %p = Reshape(%p4, %view3)
  %y = MatMul(%p, %v3)`), { numHeads: 4, headDim: 8, layout: 'bhsd', scale: Math.fround(0.35355339059327373) * 3 });
  });
  test('CLIP: two 4D views, each adding a mask, the Softmax over [B·H, S, T]', async () => {
    await liftsExactly(graph(inputs, `${qkv}
  %a4 = Reshape(%bmm, %view4)
  %a = Add(%a4, %causal)
  %a3 = Reshape(%a, %view3)
  %b4 = Reshape(%a3, %view4)
  %masked4 = Where(%pad4, %ninf, %b4)
  %masked = Reshape(%masked4, %view3)
  %p = Softmax(%masked) {axis = -1}
  %y = MatMul(%p, %v3)`), { numHeads: 4, headDim: 8 });
  });
  test('GPT-NeoX: scores from the bmm viewed as 4D, masked, multiplied with V [B, H, T, D]', async () => {
    await liftsExactly(graph(inputs, `${qkv}
  %a4 = Reshape(%bmm, %view4)
  %masked = Where(%pad4, %ninf, %a4)
  %p = Softmax(%masked) {axis = -1}
  %y = MatMul(%p, %v4)`), { numHeads: 4, headDim: 8 });
  });
  test('does not fire when a Reshape between Q·Kᵀ and the Softmax changes the key length', () => {
    const { att, why } = recognize(graph(`${inputs}\n  init %odd: i64[4] = tensor<i64[4]> [2, 4, -1, 2]`, `${qkv}
  %a4 = Reshape(%bmm, %odd)
  %p = Softmax(%a4) {axis = -1}
  %y = MatMul(%p, %v4)`));
    expect(att).toHaveLength(0);
    expect(why).toMatch(/not between the \[B·H, S, T\] and \[B, H, S, T\] views/);
  });
});

describe('the scale applied before the heads split (q_proj(x) · d^-0.5, then view + transpose)', () => {
  const text = (alsoOutput: boolean) => graph(`  input %x: f32[batch, seq, 32]
  input %k: f32[batch, 4, seq, 8]
  input %v: f32[batch, 4, seq, 8]
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]`, `  %xs = Mul(%x, %s)
${splitHeads('xs', 'q', 4, 8)}
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %p = Softmax(%qk) {axis = -1}
  %y = MatMul(%p, %v)`).replace('  output %y', alsoOutput ? '  output %y, %xs' : '  output %y');
  test('is pulled out of Q: scale d^-0.5, Q rebuilt from the unscaled projection', async () => {
    await liftsExactly(text(false), { numHeads: 4, headDim: 8, scale: Math.fround(0.35355339059327373) });
  });
  test('is not pulled out when the scaled projection is also used elsewhere (Q keeps it, scale 1)', async () => {
    await liftsExactly(text(true), { numHeads: 4, headDim: 8, scale: 1 });
  });
});

describe('cross-attention to encoder states of a fixed batch: V head size known only at run time', () => {
  const text = graph(`  input %x: f32[batch, seq, 32]
  input %enc: f32[1, 5, 32]
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]
  init %heads: i64[2] = tensor<i64[2]> [4, -1]
  init %zero1: i64[1] = tensor<i64[1]> [0]
  init %one1: i64[1] = tensor<i64[1]> [1]
  init %two1: i64[1] = tensor<i64[1]> [2]`, `${splitHeads('x', 'q', 4, 8)}
  %xs = Shape(%x)
  %b = Slice(%xs, %zero1, %one1)
  %es = Shape(%enc)
  %t = Slice(%es, %one1, %two1)
  %target = Concat(%b, %t, %heads) {axis = 0}
  %k4 = Reshape(%enc, %target)
  %k = Transpose(%k4) {perm = [0, 2, 1, 3]}
  %v4 = Reshape(%enc, %target)
  %v = Transpose(%v4) {perm = [0, 2, 1, 3]}
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Mul(%qk, %s)
  %p = Softmax(%sc) {axis = -1}
  %y = MatMul(%p, %v)`);
  test('lifts with vHeadDim 0 (read from V) over a batch of 1', async () => {
    const original = exportOnnx(newOnnxModel(parseGraph(text), { opset: OPSET }));
    const { g, att, why } = recognize(text);
    expect(att, why).toHaveLength(1);
    expect(attentionParams(att[0]!)).toMatchObject({ numHeads: 4, headDim: 8, vHeadDim: 0 });
    const feeds = randomInputs(g, 3, { batch: 1, seq: 6, past: 0 });
    const want = await runModel(original, feeds);
    lowerAttentionPass({ opset: OPSET }).run(g);
    const cmp = compareLowered(await runModel(exportOnnx(newOnnxModel(g, { opset: OPSET })), feeds), want);
    expect(cmp.mismatches).toEqual([]);
  });
});
