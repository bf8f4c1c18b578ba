import { assertValid, attentionParams, isAttention, parseGraph } from '@attnopt/ir';
import { rewritePass } from '@attnopt/rewrite';
import { describe, expect, test } from 'vitest';
import { DECOMPOSED_RULES } from '../src/recognize/decomposed/index.js';

const lift = (text: string) => {
  const g = parseGraph(text);
  const r = rewritePass('decomposed', DECOMPOSED_RULES).run(g);
  assertValid(g);
  return { g, r, att: g.nodes.filter(isAttention) };
};

const bhsd = (body: string) => `graph g {
  input %q: f32[2, 4, 8, 16]
  input %k: f32[2, 4, 8, 16]
  input %v: f32[2, 4, 8, 16]
  input %m: f32[8, 8]
  init %s: f32[] = tensor<f32[]> [4.0]
${body}
  output %y
}`;

describe('decomposed attention', () => {
  test('Softmax(Q·Kᵀ / s + M) · V -> Attention with the additive mask as bias', () => {
    const { att } = lift(bhsd(`  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Div(%qk, %s)
  %b = Add(%sc, %m)
  %p = Softmax(%b) {axis = -1}
  %y = MatMul(%p, %v)`));
    expect(att).toHaveLength(1);
    const p = attentionParams(att[0]!);
    expect(p).toMatchObject({ numHeads: 4, kvNumHeads: 4, headDim: 16, vHeadDim: 16, scale: 0.25, softcap: 0, layout: 'bhsd' });
    expect(att[0]!.inputs[3]!.name).toBe('m');
  });

  test('softcap Div/Tanh/Mul and scale split over Q and Kᵀ', () => {
    const { att } = lift(bhsd(`  init %h: f32[] = tensor<f32[]> [0.5]
  init %c: f32[] = tensor<f32[]> [30.0]
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qs = Mul(%q, %h)
  %ks = Mul(%kt, %h)
  %qk = MatMul(%qs, %ks)
  %d = Div(%qk, %c)
  %t = Tanh(%d)
  %cap = Mul(%t, %c)
  %p = Softmax(%cap) {axis = -1}
  %y = MatMul(%p, %v)`));
    expect(att).toHaveLength(1);
    expect(attentionParams(att[0]!)).toMatchObject({ scale: 0.25, softcap: 30 });
  });

  test('does not fire when the scale is not a static scalar', () => {
    const { att, r } = lift(bhsd(`  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Div(%qk, %m)
  %p = Softmax(%sc) {axis = -1}
  %y = MatMul(%p, %v)`));
    expect(att).toHaveLength(0);
    expect(r.notes.map((n) => n.message).join('\n')).toMatch(/not a static scalar/);
  });

  test('does not fire when the Softmax is not over the key axis', () => {
    const { att, r } = lift(bhsd(`  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %p = Softmax(%qk) {axis = 2}
  %y = MatMul(%p, %v)`));
    expect(att).toHaveLength(0);
    expect(r.notes[0]!.message).toMatch(/not the last/);
  });
});
