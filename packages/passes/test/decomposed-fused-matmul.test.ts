// Attention as onnxruntime saves it after its graph optimizations, where no attention fusion applied: the Kᵀ
// Transpose and the scale folded into com.microsoft::FusedMatMul(Q, K, transB = 1, alpha = s), and P·V a
// FusedMatMul too. The site lifts with scale s (alpha times any scale left outside), K read as it is, and the
// lowered graph computes what the graph as written computes in onnxruntime (fp32, |lowered - original| <= 1e-5,
// compareLowered). FusedMatMuls that move Q or a batch axis, or scale V, are not read, with the reason.

import { DEFAULT_OPSET_ANNOTATION, isAttention, parseGraph } from '@attnopt/ir';
import { rewritePass } from '@attnopt/rewrite';
import { describe, expect, test } from 'vitest';
import { RECOGNITION_RULES } from '../src/recognize/index.js';
import { liftedAndExact } from './helpers/lifted-exact.js';

const site = (qk: string, pv = '%y = com.microsoft::FusedMatMul(%p, %v) {alpha = 1.0}', after = '%x = Add(%qk, %bias)') => `graph g {
  input %q: f32[2, 4, seq, 8]
  input %k: f32[2, 4, seq, 8]
  input %v: f32[2, 4, seq, 8]
  input %bias: f32[2, 1, 1, seq]
  %qk = ${qk}
  ${after}
  %p = Softmax(%x) {axis = -1}
  ${pv}
  output %y
}`;

function refused(text: string): string {
  const g = parseGraph(text);
  g.annotations.set(DEFAULT_OPSET_ANNOTATION, 17);
  const notes = rewritePass('recognize', RECOGNITION_RULES, { explain: true }).run(g).notes.map((n) => n.message);
  expect(g.nodes.filter(isAttention)).toHaveLength(0);
  return notes.join('\n');
}

describe("onnxruntime's FusedMatMul", () => {
  test('Q·Kᵀ with transB and alpha 1/sqrt(8), P·V with alpha 1: lifted with the scale, exact', async () => {
    const lifted = await liftedAndExact(site('com.microsoft::FusedMatMul(%q, %k) {transB = 1, alpha = 0.3535533905932738}'), { opset: 17, seed: 4, sizes: { batch: 2, seq: 7, past: 0 } });
    expect(lifted.params.scale).toBeCloseTo(1 / Math.sqrt(8), 6);
    expect(lifted.ops.has('FusedMatMul')).toBe(false);
  });
  test('alpha times a scale after it, Kᵀ given transposed (no transB): the scales multiply', async () => {
    const text = site('com.microsoft::FusedMatMul(%q, %kt) {alpha = 0.5}', undefined, '%half = Mul(%qk, %c)\n  %x = Add(%half, %bias)')
      .replace('  input %bias', '  input %kt: f32[2, 4, 8, seq]\n  input %bias')
      .replace('  %qk =', '  init %c: f32[] = tensor<f32[]> [0.25]\n  %qk =');
    const lifted = await liftedAndExact(text, { opset: 17, seed: 5, sizes: { batch: 2, seq: 6, past: 0 } });
    expect(lifted.params.scale).toBeCloseTo(0.125, 7);
  });
  test('Q transposed (transA): not read, with the reason', () => {
    expect(refused(site('com.microsoft::FusedMatMul(%q, %k) {transA = 1, transB = 1}'))).toMatch(/sets transA: a FusedMatMul that moves the left operand's or a batch axis is not read/);
  });
  test('P·V scaled by alpha 2: not probabilities · V, with the reason', () => {
    expect(refused(site('com.microsoft::FusedMatMul(%q, %k) {transB = 1}', '%y = com.microsoft::FusedMatMul(%p, %v) {alpha = 2.0}'))).toMatch(/scales or transposes V \(alpha 2, transB 0\): not probabilities · V/);
  });
});
