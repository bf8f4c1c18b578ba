// The quantization ops (QuantizeLinear / DequantizeLinear per tensor, per axis and in blocks, DynamicQuantizeLinear,
// MatMulInteger, onnxruntime's MatMulNBits) against onnxruntime on seeded inputs: integer outputs equal exactly, float
// outputs within |got - want| <= 1e-5 + 1e-5 |want| (MatMulNBits and DequantizeLinear accumulate in another order).

import { parseGraph, SplitMix64 } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { describe, expect, it } from 'vitest';
import { type ExecTensor, execTensor, runGraph } from '../src/index.js';
import { compareOutputs, runOrt } from './executor-ort.js';

const numbers = (seed: number, n: number, lo: number, hi: number) => {
  const rng = new SplitMix64(seed);
  return Array.from({ length: n }, () => lo + (hi - lo) * rng.nextFloat());
};
const list = (xs: readonly number[]) => xs.join(', ');

/** Both runs of `text` (opset 21) on `feeds`; integer outputs must be equal, float ones close. */
async function againstOrt(text: string, feeds: Record<string, ExecTensor>): Promise<Record<string, ExecTensor>> {
  const want = await runOrt(exportOnnx(newOnnxModel(parseGraph(text), { opset: 21 })), feeds);
  const got = await runGraph(parseGraph(text), feeds);
  const cmp = compareOutputs(got, want, 1e-5, 1e-5);
  expect(cmp.mismatches).toEqual([]);
  for (const [name, w] of Object.entries(want)) if (!['f32', 'f16', 'f64'].includes(w.dtype)) expect([...(got[name]!.data as Uint8Array)], name).toEqual([...(w.data as Uint8Array)]);
  return got;
}

const x = (seed: number, shape: number[], lo = -3, hi = 3) => execTensor('f32', shape, Float32Array.from(numbers(seed, shape.reduce((a, b) => a * b, 1), lo, hi)));

describe('quantization ops against onnxruntime', () => {
  it('QuantizeLinear and DequantizeLinear per tensor (uint8, int8), per axis and in blocks', async () => {
    const text = `graph g {
  input %x: f32[4, 6]
  init %s: f32[] = tensor<f32[]> [0.0237]
  init %zu: u8[] = tensor<u8[]> [131]
  init %zi: i8[] = tensor<i8[]> [-3]
  init %sa: f32[6] = tensor<f32[6]> [${list(numbers(1, 6, 0.01, 0.05))}]
  init %za: i8[6] = tensor<i8[6]> [1, -2, 0, 5, -7, 3]
  init %sb: f32[4, 2] = tensor<f32[4, 2]> [${list(numbers(2, 8, 0.01, 0.05))}]
  %qu = QuantizeLinear(%x, %s, %zu)
  %qi = QuantizeLinear(%x, %s, %zi)
  %qn = QuantizeLinear(%x, %s)
  %qa = QuantizeLinear(%x, %sa, %za) {axis = 1}
  %qb = QuantizeLinear(%x, %sb) {axis = 1, block_size = 3}
  %du = DequantizeLinear(%qu, %s, %zu)
  %da = DequantizeLinear(%qa, %sa, %za) {axis = 1}
  %db = DequantizeLinear(%qb, %sb) {axis = 1, block_size = 3}
  output %qu, %qi, %qn, %qa, %qb, %du, %da, %db
}`;
    // values past the ranges saturate; exact halves (0.0237 · 2.5) round to even
    const feeds = { x: x(3, [4, 6], -5, 5) };
    (feeds.x.data as Float32Array)[0] = Math.fround(0.0237 * 2.5);
    await againstOrt(text, feeds);
  });

  it('DynamicQuantizeLinear, then MatMulInteger by int8 weights with zero points (as quantize_dynamic writes a projection)', async () => {
    const text = `graph g {
  input %x: f32[3, 8]
  init %w: i8[8, 5] = tensor<i8[8, 5]> [${list(numbers(4, 40, -127, 127).map(Math.round))}]
  init %wz: i8[] = tensor<i8[]> [3]
  %xq, %xs, %xz = DynamicQuantizeLinear(%x)
  %y = MatMulInteger(%xq, %w, %xz, %wz)
  output %xq, %xs, %xz, %y
}`;
    await againstOrt(text, { x: x(5, [3, 8]) });
    await againstOrt(text, { x: x(6, [3, 8], 0.5, 2) }); // no negative value: the range still holds 0
  });

  it("onnxruntime's MatMulNBits: 4-bit blocks of 16 along K = 40 (a partial last block), with and without packed zero points, and a bias", async () => {
    const [K, N, block] = [40, 6, 16];
    const blocks = Math.ceil(K / block);
    const bytes = (seed: number, n: number) => list(numbers(seed, n, 0, 256).map(Math.floor));
    const text = (withZp: boolean) => `graph g {
  input %a: f32[2, 3, ${K}]
  init %b: u8[${N}, ${blocks}, ${block / 2}] = tensor<u8[${N}, ${blocks}, ${block / 2}]> [${bytes(7, N * blocks * (block / 2))}]
  init %s: f32[${N * blocks}] = tensor<f32[${N * blocks}]> [${list(numbers(8, N * blocks, 0.01, 0.1))}]
  init %z: u8[${N * Math.ceil(blocks / 2)}] = tensor<u8[${N * Math.ceil(blocks / 2)}]> [${bytes(9, N * Math.ceil(blocks / 2))}]
  init %bias: f32[${N}] = tensor<f32[${N}]> [${list(numbers(10, N, -1, 1))}]
  %y = com.microsoft::MatMulNBits(%a, %b, %s${withZp ? ', %z, _, %bias' : ''}) {K = ${K}, N = ${N}, bits = 4, block_size = ${block}}
  output %y
}`;
    await againstOrt(text(false), { a: x(11, [2, 3, K]) });
    await againstOrt(text(true), { a: x(12, [2, 3, K]) });
  });
});
