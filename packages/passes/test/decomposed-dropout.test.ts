// Dropout between the Softmax and the product with V: lifted only when it is the identity on its output.
import { isAttention, parseGraph } from '@attnopt/ir';
import { rewritePass } from '@attnopt/rewrite';
import { describe, expect, test } from 'vitest';
import { DECOMPOSED_RULES } from '../src/recognize/decomposed/index.js';

const graph = (dropout: string) => `graph g {
  input %q: f32[2, 4, 8, 16]
  input %k: f32[2, 4, 8, 16]
  input %v: f32[2, 4, 8, 16]
  init %r0: f32[] = tensor<f32[]> [0.0]
  init %r1: f32[] = tensor<f32[]> [0.1]
  init %yes: bool[] = tensor<bool[]> [true]
  init %no: bool[] = tensor<bool[]> [false]
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %p = Softmax(%qk) {axis = -1}
  ${dropout}
  %y = MatMul(%d, %v)
  output %y
}`;

const lifted = (dropout: string) => {
  const g = parseGraph(graph(dropout));
  const r = rewritePass('decomposed', DECOMPOSED_RULES, { explain: true }).run(g);
  return { count: g.nodes.filter(isAttention).length, r };
};

describe('Dropout after the Softmax', () => {
  test.each([
    ['no training_mode input (inference)', '%d = Dropout(%p, %r1)'],
    ['training_mode a constant false', '%d = Dropout(%p, %r1, %no)'],
    ['ratio 0 in training mode (nothing dropped, scale 1)', '%d = Dropout(%p, %r0, %yes)'],
  ])('lifts when the Dropout is the identity: %s', (_what, dropout) => {
    expect(lifted(dropout).count).toBe(1);
  });

  test('does not fire when the Dropout runs in training mode with a nonzero ratio', () => {
    expect(lifted('%d = Dropout(%p, %r1, %yes)').count).toBe(0);
  });
});
