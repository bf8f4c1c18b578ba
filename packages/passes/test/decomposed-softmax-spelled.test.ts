// Attention whose softmax is spelled in elementary ops (ONNX's Softmax function body, JAX's softmax through
// tf2onnx, hand-written ones): recognize lifts the site as if it were the Softmax op, and the lowered graph
// computes what the graph as written computes in onnxruntime (fp32, |lowered - original| <= 1e-5, compareLowered).
// A reduction over another axis than the keys is not a softmax over the keys: no site, and no note about the
// graph's other Div and Mul nodes (the rule is offered every one of them). A subtracted value that varies
// along the keys is no stabilizer: exp(x - b) / sum(exp(x - b)) is softmax(x - b), a site with the mask -b.
// A softmax over a view of the scores that keeps the keys' axis, reshaped back, is the softmax of the scores; a
// view that merges the keys with the queries is not.

import { DEFAULT_OPSET_ANNOTATION, isAttention, parseGraph } from '@attnopt/ir';
import { rewritePass } from '@attnopt/rewrite';
import { describe, expect, test } from 'vitest';
import { RECOGNITION_RULES } from '../src/recognize/index.js';
import { liftedAndExact } from './helpers/lifted-exact.js';

const site = (softmax: string, extraInits = '') => `graph g {
  input %q: f32[2, 4, seq, 8]
  input %k: f32[2, 4, seq, 8]
  input %v: f32[2, 4, seq, 8]
  input %bias: f32[2, 1, 1, seq]
  init %s: f32[] = tensor<f32[]> [2.8284271247461903]
  init %last: i64[1] = tensor<i64[1]> [-1]
${extraInits}
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Div(%qk, %s)
  %x = Add(%sc, %bias)
${softmax}
  %y = MatMul(%p, %v)
  output %y
}`;

/** The ONNX Softmax function body (opset 18: ReduceMax and ReduceSum read their axes as an input). */
const FUNCTION_BODY = `  %m = ReduceMax(%x, %last) {keepdims = 1}
  %z = Sub(%x, %m)
  %e = Exp(%z)
  %sum = ReduceSum(%e, %last) {keepdims = 1}
  %p = Div(%e, %sum)`;

async function lifted(text: string, opset: number): Promise<void> {
  const site = await liftedAndExact(text, { opset, seed: 5, sizes: { batch: 2, seq: 9, past: 0 } });
  expect(site.params.scale).toBeCloseTo(1 / 2.8284271247461903, 6);
  expect(site.ops.has('Exp') || site.ops.has('ReduceSum')).toBe(false);
}

describe('a softmax spelled in Exp, ReduceSum and Div', () => {
  test('the ONNX Softmax function body (max-subtracted, axes as inputs, opset 18)', async () => {
    await lifted(site(FUNCTION_BODY), 18);
  });
  test('axes as attributes (opset 11), the last axis written as 3', async () => {
    const body = FUNCTION_BODY.replace('ReduceMax(%x, %last) {keepdims = 1}', 'ReduceMax(%x) {axes = [3], keepdims = 1}').replace('ReduceSum(%e, %last) {keepdims = 1}', 'ReduceSum(%e) {axes = [3], keepdims = 1}');
    await lifted(site(body), 11);
  });
  test('the maximum behind a stop-gradient Identity', async () => {
    await lifted(site(FUNCTION_BODY.replace('%z = Sub(%x, %m)', '%md = Identity(%m)\n  %z = Sub(%x, %md)')), 18);
  });
  test('no stabilizer: Div(Exp(x), ReduceSum(Exp(x)))', async () => {
    await lifted(site(`  %e = Exp(%x)
  %sum = ReduceSum(%e, %last) {keepdims = 1}
  %p = Div(%e, %sum)`), 17);
  });
  test('Mul by the Reciprocal of the sum', async () => {
    await lifted(site(FUNCTION_BODY.replace('%p = Div(%e, %sum)', '%r = Reciprocal(%sum)\n  %p = Mul(%r, %e)')), 18);
  });
  test('a subtracted value that varies along the keys is no stabilizer: it is read as a mask, softmax(x - b)', async () => {
    await lifted(site(FUNCTION_BODY.replace('%z = Sub(%x, %m)', '%z = Sub(%x, %bias)')), 18);
    // of lower rank, [T]: broadcast from the right, so along the keys too
    const row = site(FUNCTION_BODY.replace('%z = Sub(%x, %m)', '%z = Sub(%x, %row)')).replace('  input %bias: f32[2, 1, 1, seq]', '  input %bias: f32[2, 1, 1, seq]\n  input %row: f32[seq]');
    await lifted(row, 18);
  });
});

describe('Exp of a LogSoftmax: exp(log softmax(x)) = softmax(x)', () => {
  test('over the last axis, written as 3 at opset 11', async () => {
    await lifted(site('  %lp = LogSoftmax(%x) {axis = 3}\n  %p = Exp(%lp)'), 11);
  });
  test('LogSoftmax without an axis at opset 11 normalizes axes 1 and on: refused with the reason', () => {
    const g = parseGraph(site('  %lp = LogSoftmax(%x)\n  %p = Exp(%lp)'));
    g.annotations.set(DEFAULT_OPSET_ANNOTATION, 11);
    const notes = rewritePass('recognize', RECOGNITION_RULES, { explain: true }).run(g).notes.map((n) => n.message);
    expect(g.nodes.filter(isAttention)).toHaveLength(0);
    expect(notes.join('\n')).toMatch(/LogSoftmax has no axis attribute, so at opset 11 it normalizes over axes 1 and on/);
  });
});

describe('the row maximum subtracted before the Softmax op (w - w.max(-1, keepdim=True)): softmax(x - c) = softmax(x)', () => {
  test('ReduceMax over the last axis: lifted with the scores as written, the shift and its maximum gone', async () => {
    const s = await liftedAndExact(site('  %m = ReduceMax(%x, %last) {keepdims = 1}\n  %z = Sub(%x, %m)\n  %p = Softmax(%z) {axis = -1}'), { opset: 18, seed: 5, sizes: { batch: 2, seq: 9, past: 0 } });
    expect(s.ops.has('ReduceMax') || s.ops.has('Sub')).toBe(false);
    // the bias is the model's key bias alone (the maximum reads the scores: kept in the bias, it would keep them n x n)
    expect(s.inputs[3]).toBe('bias');
  });
  test('the maximum over the queries is no shift of each row: read as a mask, softmax(x - m)', async () => {
    const text = site('  init %axis2: i64[1] = tensor<i64[1]> [2]\n  %m = ReduceMax(%x, %axis2) {keepdims = 1}\n  %z = Sub(%x, %m)\n  %p = Softmax(%z) {axis = -1}');
    const s = await liftedAndExact(text, { opset: 18, seed: 5, sizes: { batch: 2, seq: 9, past: 0 } });
    expect(s.inputs[3]).not.toBe('bias');
  });
});

describe('a softmax over a view of the scores, reshaped back', () => {
  test('flattened to [B·H·S, T] by Flatten, softmax over axis 1 at opset 11 (its 2-D semantics), the shape read back from the scores', async () => {
    await lifted(site('  %xs = Shape(%x)\n  %x2 = Flatten(%x) {axis = 3}\n  %p2 = Softmax(%x2) {axis = 1}\n  %p = Reshape(%p2, %xs)'), 11);
  });
  test('folded to [B·H, S, T] and back by static targets', async () => {
    const fold = '  init %to3: i64[3] = tensor<i64[3]> [8, -1, 9]\n  init %to4: i64[4] = tensor<i64[4]> [2, 4, -1, 9]';
    const text = site('  %x3 = Reshape(%x, %to3)\n  %p3 = Softmax(%x3) {axis = -1}\n  %p = Reshape(%p3, %to4)', fold).replaceAll('seq', '9');
    await lifted(text, 17);
  });
  test('a view that merges the keys with the queries normalizes over both: no site', () => {
    const g = parseGraph(site('  %xs = Shape(%x)\n  %x2 = Flatten(%x) {axis = 2}\n  %p2 = Softmax(%x2) {axis = 1}\n  %p = Reshape(%p2, %xs)'));
    g.annotations.set(DEFAULT_OPSET_ANNOTATION, 17);
    rewritePass('recognize', RECOGNITION_RULES).run(g);
    expect(g.nodes.filter(isAttention)).toHaveLength(0);
  });
  test('reshaped back to another shape than the scores: no site', () => {
    const fold = '  init %to3: i64[3] = tensor<i64[3]> [8, -1, 9]\n  init %other: i64[4] = tensor<i64[4]> [4, 2, -1, 9]';
    // (V over [4, 2] batch and heads: each output row would read another head's probabilities; the V check
    // refuses it too, so this guards the result, not the view check alone)
    const text = site('  %x3 = Reshape(%x, %to3)\n  %p3 = Softmax(%x3) {axis = -1}\n  %p = Reshape(%p3, %other)', fold).replaceAll('seq', '9');
    const g = parseGraph(text.replace('input %v: f32[2, 4, 9, 8]', 'input %v: f32[4, 2, 9, 8]'));
    g.annotations.set(DEFAULT_OPSET_ANNOTATION, 17);
    rewritePass('recognize', RECOGNITION_RULES).run(g);
    expect(g.nodes.filter(isAttention)).toHaveLength(0);
  });
});

describe('not a softmax over the keys', () => {
  test('the sum over the queries: no site, and no note on the Div and Mul nodes that are not softmaxes', () => {
    const g = parseGraph(site(FUNCTION_BODY.replace('ReduceSum(%e, %last)', 'ReduceSum(%e, %axis2)'), '  init %axis2: i64[1] = tensor<i64[1]> [2]'));
    const result = rewritePass('recognize', RECOGNITION_RULES).run(g);
    expect(g.nodes.filter(isAttention)).toHaveLength(0);
    expect(result.notes.filter((n) => /Div|Mul/.test(n.node ?? ''))).toEqual([]);
  });
});
