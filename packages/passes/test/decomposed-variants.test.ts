// Variants of decomposed attention not covered by decomposed-rules.test.ts: masked_fill Where masks, GQA by
// Unsqueeze/Expand/Reshape, 3D bmm (heads folded into the batch), Einsum, the fully-masked-row guard, and
// rank inference through dynamic reshape targets; with negative cases.

import { assertValid, attentionParams, isAttention, parseGraph } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { rewritePass } from '@attnopt/rewrite';
import { describe, expect, test } from 'vitest';
import { DECOMPOSED_RULES } from '../src/recognize/decomposed/index.js';
import { lowerAttentionPass } from '../src/lower/index.js';
import { staticShape } from '../src/shape-inference/shapes.js';
import { compareLowered, ortTensor, randomInputs, runModel } from './helpers/ort.js';

const lift = (text: string) => {
  const g = parseGraph(text);
  const r = rewritePass('decomposed', DECOMPOSED_RULES).run(g);
  assertValid(g);
  return { g, r, att: g.nodes.filter(isAttention), why: r.notes.map((n) => n.message).join('\n') };
};

const graph = (inputs: string, body: string) => `graph g {
${inputs}
  init %s: f32[] = tensor<f32[]> [4.0]
${body}
  output %y
}`;
const QKV4 = `  input %q: f32[2, 4, 8, 16]
  input %k: f32[2, 4, 8, 16]
  input %v: f32[2, 4, 8, 16]`;
const SCORES = `  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Div(%qk, %s)`;

describe('masked_fill masks', () => {
  test('Where(keep, scores, -inf) -> boolean keep-mask bias', () => {
    const { att } = lift(graph(`${QKV4}\n  input %keep: bool[8, 8]\n  init %ninf: f32[] = tensor<f32[]> [-inf]`, `${SCORES}
  %w = Where(%keep, %sc, %ninf)
  %p = Softmax(%w) {axis = -1}
  %y = MatMul(%p, %v)`));
    expect(att).toHaveLength(1);
    expect(att[0]!.inputs[3]!.name).toBe('keep');
  });

  test('Where(pad, -10000, scores) (inverted) -> Not(pad) as the keep-mask', () => {
    const { g, att } = lift(graph(`${QKV4}\n  input %pad: bool[8, 8]\n  init %fill: f32[] = tensor<f32[]> [-10000.0]`, `${SCORES}
  %w = Where(%pad, %fill, %sc)
  %p = Softmax(%w) {axis = -1}
  %y = MatMul(%p, %v)`));
    expect(att).toHaveLength(1);
    // Not(pad), cast to a declared bool so consumers read a keep-mask
    const cast = att[0]!.inputs[3]!.producer!;
    expect(cast.op).toBe('Cast');
    expect(cast.inputs[0]!.producer?.op).toBe('Not');
    expect(g.nodes.some((n) => n.op === 'Softmax')).toBe(false);
  });

  // finfo.min absorbs any score: Where(keep, x, fill) = x + Where(keep, 0, fill) on every entry, so the fill stays
  // the model's (a row it fills whole is uniform over its keys, as in the model), and the masks keep their order
  test('Where(pad, finfo.min, scores) (inverted), then + bias -> Where(Not(pad), 0, finfo.min) + bias, exact on a fully filled row', async () => {
    const text = graph(`${QKV4}\n  input %pad: bool[8, 8]\n  input %b: f32[2, 1, 1, 8]\n  init %fmin: f32[] = tensor<f32[]> [-3.4028234663852886e38]`, `${SCORES}
  %w = Where(%pad, %fmin, %sc)
  %wb = Add(%w, %b)
  %p = Softmax(%wb) {axis = -1}
  %y = MatMul(%p, %v)`);
    const { g, att } = lift(text);
    expect(att).toHaveLength(1);
    const add = att[0]!.inputs[3]!.producer!;
    expect(add.op).toBe('Add');
    const fill = add.inputs[0]!.producer!;
    expect([fill.op, fill.inputs[0]!.producer?.op]).toEqual(['Where', 'Not']);
    // row 0 filled whole, row 1 but one key; the key bias -inf on key 7 of batch 1
    const feeds = randomInputs(parseGraph(text), 3);
    feeds.pad = ortTensor('bool', [8, 8], Array.from({ length: 64 }, (_, e) => Number(e < 8 || (e >= 8 && e < 15))));
    feeds.b = ortTensor('f32', [2, 1, 1, 8], Array.from({ length: 16 }, (_, e) => (e === 15 ? -Infinity : 0.25 * (e % 8))));
    const want = await runModel(exportOnnx(newOnnxModel(parseGraph(text), { opset: 17 })), feeds);
    lowerAttentionPass({ opset: 17 }).run(g);
    const cmp = compareLowered(await runModel(exportOnnx(newOnnxModel(g, { opset: 17 })), feeds), want);
    expect(cmp.mismatches, `max abs error ${cmp.maxAbsError}`).toEqual([]);
  });

  test('does not fire when neither Where branch is a mask fill', () => {
    const { att, why } = lift(graph(`${QKV4}\n  input %c: bool[8, 8]\n  init %z: f32[] = tensor<f32[]> [-1.0]`, `${SCORES}
  %w = Where(%c, %sc, %z)
  %p = Softmax(%w) {axis = -1}
  %y = MatMul(%p, %v)`));
    expect(att).toHaveLength(0);
    expect(why).toMatch(/neither of which is a mask fill/);
  });
});

describe('GQA by Unsqueeze/Expand/Reshape', () => {
  const inputs = `  input %q: f32[2, 4, 8, 16]
  input %k: f32[2, 2, 8, 16]
  input %v: f32[2, 2, 8, 16]
  init %ax: i64[1] = tensor<i64[1]> [2]
  init %e: i64[5] = tensor<i64[5]> [2, 2, 2, 8, 16]
  init %r: i64[4] = tensor<i64[4]> [2, 4, 8, 16]`;
  const rep = (x: string) => `  %${x}u = Unsqueeze(%${x}, %ax)
  %${x}e = Expand(%${x}u, %e)
  %${x}r = Reshape(%${x}e, %r)`;
  test('K and V repeated the same way -> kvNumHeads 2', () => {
    const { att } = lift(graph(inputs, `${rep('k')}
${rep('v')}
  %kt = Transpose(%kr) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Div(%qk, %s)
  %p = Softmax(%sc) {axis = -1}
  %y = MatMul(%p, %vr)`));
    expect(att).toHaveLength(1);
    expect(attentionParams(att[0]!)).toMatchObject({ numHeads: 4, kvNumHeads: 2 });
    expect(att[0]!.inputs[1]!.name).toBe('k');
    expect(att[0]!.inputs[2]!.name).toBe('v');
  });

  test('does not fire when only K is repeated', () => {
    const { att, why } = lift(graph(inputs.replace('%v: f32[2, 2, 8, 16]', '%v: f32[2, 4, 8, 16]'), `${rep('k')}
  %kt = Transpose(%kr) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Div(%qk, %s)
  %p = Softmax(%sc) {axis = -1}
  %y = MatMul(%p, %v)`));
    expect(att).toHaveLength(0);
    expect(why).toMatch(/only one of K and V is repeated/);
  });
});

describe('3D bmm (heads folded into the batch)', () => {
  test('[B·H, S, D] with a 3D mask -> layout bsd, one head, the mask unsqueezed to 4D', () => {
    const { att } = lift(graph(`  input %q: f32[8, 8, 16]\n  input %k: f32[8, 8, 16]\n  input %v: f32[8, 8, 16]\n  input %m: f32[8, 1, 8]`, `  %kt = Transpose(%k) {perm = [0, 2, 1]}
  %qk = MatMul(%q, %kt)
  %sc = Div(%qk, %s)
  %b = Add(%sc, %m)
  %p = Softmax(%b) {axis = -1}
  %y = MatMul(%p, %v)`));
    expect(att).toHaveLength(1);
    expect(attentionParams(att[0]!)).toMatchObject({ layout: 'bsd', numHeads: 1, headDim: 16 });
    // the heads axis, inserted in a form every opset reads (Expand to rank 4, then Transpose)
    expect(staticShape(att[0]!.inputs[3])).toEqual([8, 1, 1, 8]);
    expect(att[0]!.inputs[3]!.producer?.op).toBe('Transpose');
  });

  test('rank of Q through a dynamic reshape target (Shape -> Gather -> Unsqueeze -> Concat)', () => {
    const { att } = lift(`graph g {
  input %x: f32[n, 8, 16]
  input %k: f32[b, 8, 16]
  input %v: f32[b, 8, 16]
  init %i0: i64[] = tensor<i64[]> [0]
  init %a0: i64[1] = tensor<i64[1]> [0]
  init %rest: i64[2] = tensor<i64[2]> [8, 16]
  init %s: f32[] = tensor<f32[]> [4.0]
  %sh = Shape(%k)
  %g0 = Gather(%sh, %i0) {axis = 0}
  %u0 = Unsqueeze(%g0, %a0)
  %tgt = Concat(%u0, %rest) {axis = 0}
  %q = Reshape(%x, %tgt)
  %kt = Transpose(%k) {perm = [0, 2, 1]}
  %qk = MatMul(%q, %kt)
  %sc = Div(%qk, %s)
  %p = Softmax(%sc) {axis = -1}
  %y = MatMul(%p, %v)
  output %y
}`);
    expect(att).toHaveLength(1);
    expect(attentionParams(att[0]!)).toMatchObject({ layout: 'bsd', headDim: 16 });
  });
});

describe('Einsum', () => {
  test('einsum("bhid,bhjd->bhij") and einsum("bhij,bhjd->bhid") -> Attention reading K as is', () => {
    const { att } = lift(graph(QKV4, `  %qk = Einsum(%q, %k) {equation = "bhid,bhjd->bhij"}
  %sc = Mul(%qk, %s)
  %p = Softmax(%sc) {axis = -1}
  %y = Einsum(%p, %v) {equation = "bhij,bhjd->bhid"}`));
    expect(att).toHaveLength(1);
    expect(attentionParams(att[0]!)).toMatchObject({ scale: 4, numHeads: 4 });
    expect(att[0]!.inputs[1]!.name).toBe('k');
  });

  test('einsum(K, Q, "bhjd,bhid->bhij"): the operands swap roles (onnxruntime\'s 3D BERT spells "aecd,abcd->acbe")', () => {
    // 8 queries, 6 keys: read with the roles unswapped, Q would be the 6-row operand
    const { att } = lift(graph(`  input %q: f32[2, 4, 8, 16]\n  input %k: f32[2, 4, 6, 16]\n  input %v: f32[2, 4, 6, 16]`, `  %qk = Einsum(%k, %q) {equation = "bhjd,bhid->bhij"}
  %sc = Mul(%qk, %s)
  %p = Softmax(%sc) {axis = -1}
  %y = Einsum(%p, %v) {equation = "bhij,bhjd->bhid"}`));
    expect(att).toHaveLength(1);
    expect(att[0]!.inputs[0]!.name).toBe('q');
    expect(att[0]!.inputs[1]!.name).toBe('k');
    expect(staticShape(att[0]!.outputs[0])).toEqual([2, 4, 8, 16]);
  });

  test('does not fire when the P·V Einsum contracts the wrong axis', () => {
    const { att, why } = lift(graph(QKV4, `  %qk = Einsum(%q, %k) {equation = "bhid,bhjd->bhij"}
  %p = Softmax(%qk) {axis = -1}
  %y = Einsum(%p, %v) {equation = "bhij,bhid->bhjd"}`));
    expect(att).toHaveLength(0);
    expect(why).toMatch(/not probabilities · V/);
  });
});

describe('fully-masked-row guard', () => {
  const inputs = `${QKV4}\n  input %m: f32[8, 8]\n  init %ninf: f32[] = tensor<f32[]> [-inf]\n  init %zero: f32[] = tensor<f32[]> [0.0]`;
  test('Where(ReduceMax(bias) == -inf, 0, p) on the same bias is part of the site', () => {
    const { g, att } = lift(graph(inputs, `${SCORES}
  %b = Add(%sc, %m)
  %p = Softmax(%b) {axis = -1}
  %mx = ReduceMax(%m) {axes = [-1], keepdims = 1}
  %full = Equal(%mx, %ninf)
  %pg = Where(%full, %zero, %p)
  %y = MatMul(%pg, %v)`));
    expect(att).toHaveLength(1);
    expect(g.nodes.some((n) => n.op === 'ReduceMax' || n.op === 'Where')).toBe(false);
  });

  test('does not fire when the guard reads another tensor than the bias', () => {
    const { att, why } = lift(graph(`${inputs}\n  input %other: f32[8, 8]`, `${SCORES}
  %b = Add(%sc, %m)
  %p = Softmax(%b) {axis = -1}
  %mx = ReduceMax(%other) {axes = [-1], keepdims = 1}
  %full = Equal(%mx, %ninf)
  %pg = Where(%full, %zero, %p)
  %y = MatMul(%pg, %v)`));
    expect(att).toHaveLength(0);
    expect(why).toMatch(/not the fully-masked-row guard/);
  });
});

describe('lengths read from the scores (GPT-2: nd, ns = w.size(-2), w.size(-1))', () => {
  test('the Shape of the scores is read from Q and K instead, so QKᵀ is not computed twice; the order stays valid', () => {
    const { g, att } = lift(`graph g {
${QKV4}
  init %s: f32[] = tensor<f32[]> [4.0]
  init %ninf: f32[] = tensor<f32[]> [-inf]
  init %buf: f32[1, 1, 8, 8] = tensor<f32[1, 1, 8, 8]> [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
  init %m2: i64[1] = tensor<i64[1]> [-2]
  init %m1: i64[1] = tensor<i64[1]> [-1]
  init %end: i64[1] = tensor<i64[1]> [9223372036854775807]
  init %zero: i64[1] = tensor<i64[1]> [0]
  init %ax2: i64[1] = tensor<i64[1]> [2]
  init %ax3: i64[1] = tensor<i64[1]> [3]
${SCORES}
  %sh = Shape(%sc)
  %nd = Slice(%sh, %m2, %m1)
  %ns = Slice(%sh, %m1, %end)
  %start = Sub(%ns, %nd)
  %rows = Slice(%buf, %start, %ns, %ax2)
  %band = Slice(%rows, %zero, %ns, %ax3)
  %keep = Cast(%band) {to = 9}
  %w = Where(%keep, %sc, %ninf)
  %p = Softmax(%w) {axis = -1}
  %y = MatMul(%p, %v)
  output %y
}`);
    expect(att).toHaveLength(1);
    expect(g.nodes.filter((n) => n.op === 'MatMul' || n.op === 'Div')).toEqual([]);
    // the mask's lengths: Shape(Q)[0:3] ++ Shape(K)[2], built before the Slices that read them (assertValid)
    const lengths = g.nodes.find((n) => n.name === 'nd' || n.outputs[0]?.name === 'nd')!;
    expect(lengths.inputs[0]!.producer?.op).toBe('Concat');
  });
});
