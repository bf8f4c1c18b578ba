// inspect's misses: every Softmax that looks like attention (softmax -> layout-only ops, casts, QDQ pairs -> the
// probabilities · V product) but was not lifted is listed with the recognizer's reason; a model with no site
// says why.

import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { newOnnxModel } from '@attnopt/onnx';
import { attentionSoftmaxes, loadModel, inspectModel, parseGraph } from '../src/index.js';

const fixtures = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../../shared/fixtures/onnx');

/** Softmax -> Cast -> Reshape -> bmm with V, but the scores are a model input, not Q · Kᵀ: no rule can lift it. */
const UNLIFTABLE = `graph unliftable {
  input %scores: f32[B, 4, 8, 8]
  input %v: f32[B, 4, 8, 16]
  init %p3: i64[3] = tensor<i64[3]> [-1, 8, 8]
  init %v3: i64[3] = tensor<i64[3]> [-1, 8, 16]
  %p = Softmax(%scores) {axis = -1}
  %c = Cast(%p) {to = 1}
  %r = Reshape(%c, %p3)
  %vr = Reshape(%v, %v3)
  %y = MatMul(%r, %vr)
  output %y
}`;

describe('inspect lists the attention-like Softmax nodes it did not lift', () => {
  test("softmax -> Cast -> Reshape -> bmm is found, and its miss carries the rule's reason", () => {
    const g = parseGraph(UNLIFTABLE);
    expect(attentionSoftmaxes(g).map((n) => n.op)).toEqual(['Softmax']);
    const report = inspectModel(newOnnxModel(parseGraph(UNLIFTABLE), { opset: 17 }));
    expect(report.sites).toEqual([]);
    expect(report.misses).toHaveLength(1);
    expect(report.misses[0]!.node).toBe('node Softmax -> %p');
    // the decomposed rule tried the Softmax and said why it failed (not the fallback text)
    expect(report.misses[0]!.reason).not.toBe('no recognition rule matched it');
    expect(report.misses[0]!.reason.length).toBeGreaterThan(0);
    expect(report.noSites).toBe('1 Softmax node looks like attention but no rule lifted it (reasons below)');
  });

  test('a softmax spelled as Exp, ReduceSum and Div is found too, and its miss carries the reason', () => {
    const spelled = UNLIFTABLE.replace(
      '  %p = Softmax(%scores) {axis = -1}',
      `  init %last: i64[1] = tensor<i64[1]> [-1]
  %e = Exp(%scores)
  %sum = ReduceSum(%e, %last) {keepdims = 1}
  %p = Div(%e, %sum)`,
    );
    expect(attentionSoftmaxes(parseGraph(spelled)).map((n) => n.op)).toEqual(['Div']);
    const report = inspectModel(newOnnxModel(parseGraph(spelled), { opset: 17 }));
    expect(report.misses.map((m) => m.node)).toEqual(['node Div -> %p']);
    expect(report.misses[0]!.reason).toMatch(/not a MatMul \(or Einsum\) of Q and Kᵀ: found input scores/);
    expect(report.noSites).toBe('1 Softmax node looks like attention but no rule lifted it (reasons below)');
  });

  test('a site whose probabilities a QDQ pair rounds before P·V (a QDQ-quantized model) is found, with the reason', () => {
    const qdq = `graph qdq {
  input %q: f32[B, 4, 8, 8]
  input %k: f32[B, 4, 8, 8]
  input %v: f32[B, 4, 8, 8]
  init %sp: f32[] = tensor<f32[]> [0.003921569]
  init %zp: u8[] = tensor<u8[]> [0]
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %s = MatMul(%q, %kt)
  %p = Softmax(%s) {axis = -1}
  %pq = QuantizeLinear(%p, %sp, %zp)
  %pd = DequantizeLinear(%pq, %sp, %zp)
  %y = MatMul(%pd, %v)
  output %y
}`;
    const report = inspectModel(newOnnxModel(parseGraph(qdq), { opset: 17 }));
    expect(report.sites).toEqual([]);
    expect(report.misses.map((m) => m.node)).toEqual(['node Softmax -> %p']);
    expect(report.misses[0]!.reason).toMatch(/node QuantizeLinear -> %pq quantizes the probabilities inside the site/);
  });

  test('Exp of a LogSoftmax over the last axis is found too; over another axis it is not attention', () => {
    const logSoftmax = (axis: number) => UNLIFTABLE.replace('  %p = Softmax(%scores) {axis = -1}', `  %lp = LogSoftmax(%scores) {axis = ${axis}}\n  %p = Exp(%lp)`);
    expect(attentionSoftmaxes(parseGraph(logSoftmax(-1))).map((n) => n.op)).toEqual(['Exp']);
    const report = inspectModel(newOnnxModel(parseGraph(logSoftmax(-1)), { opset: 17 }));
    expect(report.misses.map((m) => m.node)).toEqual(['node Exp -> %p']);
    expect(report.misses[0]!.reason).toMatch(/not a MatMul \(or Einsum\) of Q and Kᵀ: found input scores/);
    expect(attentionSoftmaxes(parseGraph(logSoftmax(2)))).toEqual([]);
  });

  test('an onnxruntime contrib attention op no rule lifts (PackedAttention) is a miss with what it holds, not a model without attention', () => {
    const g = parseGraph(`graph packed {
  input %x: f32[T, 32]
  input %w: f32[32, 96]
  input %b: f32[96]
  input %token_offset: i32[2, 8]
  input %cumulative_sequence_length: i32[3]
  %y = com.microsoft::PackedAttention(%x, %w, %b, %token_offset, %cumulative_sequence_length) {num_heads = 4}
  output %y
}`);
    const report = inspectModel(newOnnxModel(g, { opset: 17 }));
    expect(report.sites).toEqual([]);
    expect(report.misses.map((m) => m.node)).toEqual(['node com.microsoft::PackedAttention -> %y']);
    expect(report.misses[0]!.reason).toMatch(/com.microsoft::PackedAttention is not lifted: its tokens are packed without padding/);
    expect(report.noSites).toBe('1 attention node (fused ops, or Softmax nodes before a P · V product) that no rule lifted (reasons below)');
  });

  test('a Softmax whose probabilities reach no MatMul or Einsum is not attention, and not a miss', () => {
    const g = parseGraph(`graph g {
  input %x: f32[2, 8]
  input %w: f32[2, 8]
  %p = Softmax(%x) {axis = -1}
  %c = Cast(%p) {to = 1}
  %y = Add(%c, %w)
  output %y
}`);
    expect(attentionSoftmaxes(g)).toEqual([]);
    const report = inspectModel(newOnnxModel(g, { opset: 17 }));
    expect(report.misses).toEqual([]);
    expect(report.noSites).toBe('1 Softmax node, but none normalizes the last axis and feeds its probabilities to a MatMul or Einsum with values (no attention)');
  });

  test('a Softmax over another axis than the last is not attention', () => {
    const g = parseGraph(UNLIFTABLE.replace('{axis = -1}', '{axis = 2}'));
    expect(attentionSoftmaxes(g)).toEqual([]);
  });

  test('a fused attention op the rules cannot lift is a miss with the rule\'s reason', () => {
    // com.microsoft Attention with hidden size 3 and num_heads 12: onnxruntime rejects it, nothing can lift it
    const report = inspectModel(loadModel(resolve(fixtures, 'ort-models/onnxruntime/test/testdata/transform/fusion/embed_layer_norm_format1.onnx')));
    expect(report.sites).toEqual([]);
    expect(report.misses.map((m) => m.node)).toEqual(['node "Attention" (com.microsoft::Attention)']);
    expect(report.misses[0]!.reason).not.toBe('no recognition rule matched it');
    expect(report.noSites).toBe('1 attention node (fused ops, or Softmax nodes before a P · V product) that no rule lifted (reasons below)');
  });

  test('a lifted site is not a miss; a model without any Softmax says so', () => {
    const lifted = inspectModel(loadModel(resolve(fixtures, 'torch-exports/bert_self_attn_additive_mask_op17.onnx')));
    expect(lifted.sites).toHaveLength(1);
    expect(lifted.misses).toEqual([]);
    expect(lifted.noSites).toBeNull();
    const none = inspectModel(newOnnxModel(parseGraph('graph g {\n  input %x: f32[2]\n  %y = Relu(%x)\n  output %y\n}'), { opset: 17 }));
    expect(none.noSites).toBe('the model has no Softmax node and no fused attention op the recognizer knows');
  });
});
