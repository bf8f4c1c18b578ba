// Scores scaled per head by a static tensor: a learned temperature per head, as Swin V2's cosine attention writes
// it (normalized Q and K, scores times exp(clamp(logit_scale)) of shape [H, 1, 1], constant-folded by the
// exporter). The scale moves onto Q's heads in the prelude, (s_h · Q)·Kᵀ, and the lowered graph computes what the
// graph as written computes in onnxruntime (fp32, |lowered - original| <= 1e-5, compareLowered). A scale that
// varies along any other axis is refused, with the reason. Before, every such site was refused as "a value that
// is not a static scalar".

import { describe, expect, test } from 'vitest';
import { liftedAndExact, refusalNotes } from './helpers/lifted-exact.js';

/** softmax(Q·Kᵀ op s + bias) · V over [batch, 4, seq, 8]; `s` given as its type and values. */
const site = (op: 'Mul' | 'Div', s: string, order: 'scores-first' | 'scale-first' = 'scores-first') => `graph g {
  input %q: f32[batch, 4, seq, 8]
  input %k: f32[batch, 4, seq, 8]
  input %v: f32[batch, 4, seq, 8]
  input %bias: f32[batch, 1, 1, seq]
  init %s: ${s}
  %kT = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kT)
  %sc = ${op}(${order === 'scores-first' ? '%qk, %s' : '%s, %qk'})
  %x = Add(%sc, %bias)
  %p = Softmax(%x) {axis = -1}
  %y = MatMul(%p, %v)
  output %y
}`;

const SIZES = { batch: 2, seq: 7, past: 0 };

describe('a static scale per head on the scores', () => {
  test("Swin V2's logit_scale [H, 1, 1] multiplied in: lifted with scale 1, exact", async () => {
    const lifted = await liftedAndExact(site('Mul', 'f32[4, 1, 1] = tensor<f32[4, 1, 1]> [10.0, 3.5, 1.25, 22.0]'), { opset: 17, seed: 1, sizes: SIZES });
    expect(lifted.params.scale).toBe(1);
    expect(lifted.ops.has('Softmax')).toBe(false);
  });

  test('[1, H, 1, 1] first, and a Div by one: lifted, exact', async () => {
    await liftedAndExact(site('Mul', 'f32[1, 4, 1, 1] = tensor<f32[1, 4, 1, 1]> [0.5, 2.0, 0.25, 1.0]', 'scale-first'), { opset: 17, seed: 2, sizes: SIZES });
    await liftedAndExact(site('Div', 'f32[4, 1, 1] = tensor<f32[4, 1, 1]> [2.0, 2.8, 8.0, 0.5]'), { opset: 17, seed: 3, sizes: SIZES });
  });

  test("Swin V2's scale as PyTorch exports it from the parameter: exp(clamp(logit_scale, max=log 100)), Clip without a min: lifted, exact", async () => {
    // the shape engine folds Clip (opset 11: bounds as inputs, either omitted) and Exp of the learned logit_scale
    const text = site('Mul', 'f32[4, 1, 1] = tensor<f32[4, 1, 1]> [2.302585, 1.0, 5.5, 0.25]')
      .replace('  %kT = Transpose', '  init %cap: f32[] = tensor<f32[]> [4.605170185988092]\n  %clamped = Clip(%s, _, %cap)\n  %scale = Exp(%clamped)\n  %kT = Transpose')
      .replace('%sc = Mul(%qk, %s)', '%sc = Mul(%qk, %scale)');
    const lifted = await liftedAndExact(text, { opset: 17, seed: 4, sizes: SIZES });
    expect(lifted.params.scale).toBe(1);
    expect(lifted.ops.has('Softmax')).toBe(false);
  });

  test('a scale that varies along the keys: refused, with the reason', () => {
    expect(refusalNotes(site('Mul', 'f32[1, 1, 1, 7] = tensor<f32[1, 1, 1, 7]> [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]').replaceAll('seq', '7'))).toMatch(/scales the scores by a value that is not a static scalar, nor a static one per head/);
  });

  test('one head of scores broadcast to four by the scale: refused (no scale of Q)', () => {
    const text = site('Mul', 'f32[4, 1, 1] = tensor<f32[4, 1, 1]> [10.0, 3.5, 1.25, 22.0]').replace('input %q: f32[batch, 4, seq, 8]', 'input %q: f32[batch, 1, seq, 8]').replace('input %k: f32[batch, 4, seq, 8]', 'input %k: f32[batch, 1, seq, 8]');
    expect(refusalNotes(text)).toMatch(/nor a static one per head/);
  });
});
