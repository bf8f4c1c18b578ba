// Attention in quantized models. Quantization around the site (QDQ pairs on Q, K and V, weights dequantized by
// DequantizeLinear or packed in onnxruntime's MatMulNBits, projections quantized dynamically) leaves the site a float function of its inputs: it
// lifts, and the lowered graph computes what the graph as written computes in onnxruntime (fp32,
// |lowered - original| <= 1e-5, compareLowered). Quantization inside the site (a QDQ pair on the scores or on the
// probabilities, as onnxruntime's static QDQ quantizer writes it) is another function: not lifted, with the reason.
// Before the shape engine knew these ops, the QDQ pairs on Q, K and V were refused as "the rank of Q is not known"
// (the projections here lift either way, through their Reshape; whole-models.test.ts has the quantized models
// whose sites the unknown shapes broke).

import { SplitMix64 } from '@attnopt/ir';
import { describe, expect, test } from 'vitest';
import { liftedAndExact, refusalNotes } from './helpers/lifted-exact.js';

const E = 32;
const SIZES = { batch: 2, seq: 7, past: 0 };

/** A QuantizeLinear -> DequantizeLinear pair from %{x}0 to %{x}. */
const qdq = (x: string) => `%${x}_q = QuantizeLinear(%${x}0, %s8, %zp)\n  %${x} = DequantizeLinear(%${x}_q, %s8, %zp)`;

/** softmax(Q·Kᵀ / sqrt(8) + bias) · V over [2, 4, seq, 8], with `q`, `k`, `v`, `p` (the probabilities) and `x` (the scores) quantized as asked. */
function bhsdSite(quantized: readonly ('qkv' | 'scores' | 'probabilities')[]): string {
  const has = (w: string) => quantized.includes(w as never);
  const pair = (x: string, on: boolean) => (on ? qdq(x) : `%${x} = Identity(%${x}0)`);
  return `graph g {
  input %q0: f32[2, 4, seq, 8]
  input %k0: f32[2, 4, seq, 8]
  input %v0: f32[2, 4, seq, 8]
  input %bias: f32[2, 1, 1, seq]
  init %s8: f32[] = tensor<f32[]> [0.02]
  init %zp: u8[] = tensor<u8[]> [128]
  init %sp: f32[] = tensor<f32[]> [0.003921569]
  init %zp0: u8[] = tensor<u8[]> [0]
  init %scale: f32[] = tensor<f32[]> [0.3535533905932738]
  ${pair('q', has('qkv'))}
  ${pair('k', has('qkv'))}
  ${pair('v', has('qkv'))}
  %kT = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kT)
  %sc = Mul(%qk, %scale)
  %x0 = Add(%sc, %bias)
  ${pair('x', has('scores'))}
  %p0 = Softmax(%x) {axis = -1}
  ${has('probabilities') ? '%p_q = QuantizeLinear(%p0, %sp, %zp0)\n  %p = DequantizeLinear(%p_q, %sp, %zp0)' : '%p = Identity(%p0)'}
  %y = MatMul(%p, %v)
  output %y
}`;
}

const tensor = (dtype: string, shape: readonly number[], values: readonly number[]) => `tensor<${dtype}[${shape.join(', ')}]> [${values.join(', ')}]`;

/** Q, K and V projected from [2, seq, 32] by `project(x)` into 4 heads of 8, one line each, then the attention as BERT writes it. */
function projectedSite(weights: string[], project: (x: 'q' | 'k' | 'v') => string): string {
  const heads = (x: string) => `%${x}r = Reshape(%${x}p, %split)\n  %${x}h = Transpose(%${x}r) {perm = [0, 2, 1, 3]}`;
  return `graph g {
  input %h: f32[2, seq, ${E}]
  input %bias: f32[2, 1, 1, seq]
  init %split: i64[4] = tensor<i64[4]> [0, 0, 4, 8]
  init %merge: i64[3] = tensor<i64[3]> [0, 0, ${E}]
  init %scale: f32[] = tensor<f32[]> [0.3535533905932738]
  ${weights.join('\n  ')}
  ${project('q')}
  ${project('k')}
  ${project('v')}
  ${heads('q')}
  ${heads('k')}
  ${heads('v')}
  %kT = Transpose(%kh) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%qh, %kT)
  %sc = Mul(%qk, %scale)
  %x = Add(%sc, %bias)
  %p = Softmax(%x) {axis = -1}
  %o = MatMul(%p, %vh)
  %ot = Transpose(%o) {perm = [0, 2, 1, 3]}
  %y = Reshape(%ot, %merge)
  output %y
}`;
}


describe('attention in quantized models', () => {
  test('QDQ pairs on Q, K and V: lifted (Q, K, V are the dequantized values), exact', async () => {
    const lifted = await liftedAndExact(bhsdSite(['qkv']), { opset: 17, seed: 1, sizes: SIZES });
    expect(lifted.inputs.slice(0, 3)).toEqual(['q', 'k', 'v']);
    expect(lifted.params.scale).toBeCloseTo(1 / Math.sqrt(8), 6);
  });

  test('projections by int8 weights dequantized per column (weight-only QDQ): lifted, exact', async () => {
    const rng = new SplitMix64(7);
    const weights = (['q', 'k', 'v'] as const).flatMap((x) => [
      `init %w${x}8: i8[${E}, ${E}] = ${tensor('i8', [E, E], Array.from({ length: E * E }, () => Math.floor(rng.nextFloat() * 255) - 127))}`,
      `init %w${x}s: f32[${E}] = ${tensor('f32', [E], Array.from({ length: E }, () => 0.002 + 0.01 * rng.nextFloat()))}`,
      `%w${x} = DequantizeLinear(%w${x}8, %w${x}s) {axis = 1}`,
    ]);
    const lifted = await liftedAndExact(projectedSite(weights, (x) => `%${x}p = MatMul(%h, %w${x})`), { opset: 17, seed: 2, sizes: SIZES });
    expect(lifted.params).toMatchObject({ numHeads: 4, headDim: 8 });
  });

  test("projections quantized dynamically (onnxruntime's quantize_dynamic: DynamicQuantizeLinear, MatMulInteger): lifted, exact", async () => {
    const rng = new SplitMix64(9);
    const weights = [
      '%hq, %hs, %hz = DynamicQuantizeLinear(%h)',
      ...(['q', 'k', 'v'] as const).flatMap((x) => [
        `init %w${x}8: i8[${E}, ${E}] = ${tensor('i8', [E, E], Array.from({ length: E * E }, () => Math.floor(rng.nextFloat() * 255) - 127))}`,
        `init %w${x}z: i8[] = tensor<i8[]> [0]`,
        `init %w${x}s: f32[] = ${tensor('f32', [], [0.003 + 0.01 * rng.nextFloat()])}`,
        `%${x}i = MatMulInteger(%hq, %w${x}8, %hz, %w${x}z)`,
        `%${x}f = Cast(%${x}i) {to = 1}`,
        `%${x}s = Mul(%hs, %w${x}s)`,
      ]),
    ];
    const lifted = await liftedAndExact(projectedSite(weights, (x) => `%${x}p = Mul(%${x}f, %${x}s)`), { opset: 17, seed: 4, sizes: SIZES });
    expect(lifted.params).toMatchObject({ numHeads: 4, headDim: 8 });
  });

  test("projections by onnxruntime's 4-bit MatMulNBits (block 32): lifted, exact", async () => {
    const rng = new SplitMix64(8);
    // B: [N, K / block, block / 2] bytes of two 4-bit weights each; one scale per column and block
    const weights = (['q', 'k', 'v'] as const).flatMap((x) => [
      `init %w${x}4: u8[${E}, 1, 16] = ${tensor('u8', [E, 1, 16], Array.from({ length: E * 16 }, () => Math.floor(rng.nextFloat() * 256)))}`,
      `init %w${x}s: f32[${E}] = ${tensor('f32', [E], Array.from({ length: E }, () => 0.02 + 0.05 * rng.nextFloat()))}`,
    ]);
    const lifted = await liftedAndExact(
      projectedSite(weights, (x) => `%${x}p = com.microsoft::MatMulNBits(%h, %w${x}4, %w${x}s) {K = ${E}, N = ${E}, bits = 4, block_size = 32}`),
      { opset: 17, seed: 3, sizes: SIZES },
    );
    expect(lifted.params).toMatchObject({ numHeads: 4, headDim: 8 });
  });

  test('QDQ on the probabilities before P·V: not lifted, with the reason', () => {
    expect(refusalNotes(bhsdSite(['qkv', 'probabilities']))).toMatch(/node QuantizeLinear -> %p_q quantizes the probabilities inside the site \(a QDQ-quantized model\)/);
  });

  test('QDQ on the scores before the Softmax: not lifted, with the reason', () => {
    expect(refusalNotes(bhsdSite(['qkv', 'scores']))).toMatch(/node DequantizeLinear -> %x quantizes the scores inside the site/);
  });
});
