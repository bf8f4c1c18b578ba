// MatMul, onnxruntime's FusedMatMul, Gemm, Einsum, Softmax/LogSoftmax, LayerNormalization and the reductions against hand-derived
// values or a naive float64 loop written here (independent of the executor's blocked loops).
// Tolerance for float32 results: |got - want| <= 1e-6 |want| + 1e-6.

import { floatAttr, intAttr, intsAttr, SplitMix64, stringAttr } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import type { ExecTensor } from '../src/index.js';
import { f32, f64, i64, runOp, values } from './executor-build.js';

function random(shape: number[], seed: number): ExecTensor {
  const rng = new SplitMix64(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return f32(shape, Array.from({ length: n }, () => rng.nextFloat() * 2 - 1));
}

const close = (got: readonly number[], want: readonly number[], tol = 1e-6) => {
  expect(got.length).toBe(want.length);
  got.forEach((g, k) => expect(Math.abs(g - want[k]!), `element ${k}: ${g} vs ${want[k]}`).toBeLessThanOrEqual(tol * Math.abs(want[k]!) + 1e-6));
};

/** Naive batched matmul of [batch, M, K] x [batch, K, N] (batch broadcast by index function). */
function naiveMatmul(a: number[], b: number[], batch: number, M: number, K: number, N: number, aAt: (t: number) => number, bAt: (t: number) => number): number[] {
  const out: number[] = [];
  for (let t = 0; t < batch; t++)
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[aAt(t) * M * K + i * K + k]! * b[bAt(t) * K * N + k * N + j]!;
        out.push(s);
      }
  return out;
}

describe('MatMul and Gemm', () => {
  it('broadcasts batch dims: [2, 1, 3, 4] x [5, 4, 2] -> [2, 5, 3, 2]', async () => {
    const a = random([2, 1, 3, 4], 1);
    const b = random([5, 4, 2], 2);
    const [y] = await runOp('MatMul', [a, b]);
    expect(y!.shape).toEqual([2, 5, 3, 2]);
    close(values(y!), naiveMatmul(values(a), values(b), 10, 3, 4, 2, (t) => Math.floor(t / 5), (t) => t % 5));
  });
  it('1-D operands: vector . vector is a scalar, vector x batch of matrices drops the axis', async () => {
    const [dot] = await runOp('MatMul', [f32([3], [1, 2, 3]), f32([3], [4, 5, 6])]);
    expect(dot!.shape).toEqual([]);
    expect(values(dot!)).toEqual([32]);
    const [vm] = await runOp('MatMul', [f32([2], [1, 2]), f32([2, 2, 3], [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1])]);
    expect(vm!.shape).toEqual([2, 3]);
    expect(values(vm!)).toEqual([1, 2, 0, 2, 2, 3]);
    const [mv] = await runOp('MatMul', [f32([2, 2], [1, 2, 3, 4]), f32([2], [1, 1])]);
    expect(mv!.shape).toEqual([2]);
    expect(values(mv!)).toEqual([3, 7]);
  });
  it('inner dimensions that differ name both shapes and the node', async () => {
    await expect(runOp('MatMul', [f32([2, 3], [0, 0, 0, 0, 0, 0]), f32([2, 2], [0, 0, 0, 0])])).rejects.toThrow(/"MatMul_0".*\[2, 3\] x \[2, 2\].*3 and 2/);
  });
  it('0 x Inf is NaN, as IEEE says', async () => {
    const [y] = await runOp('MatMul', [f32([1, 2], [0, 1]), f32([2, 1], [Infinity, 1])]);
    expect(values(y!)).toEqual([NaN]);
  });
  it("onnxruntime's FusedMatMul: alpha · A · Bᵀ over a batch (transB), Aᵀ (transA); a moved batch axis is refused", async () => {
    const a = random([2, 3, 4], 11);
    const b = random([2, 5, 4], 12);
    const bt = (x: number[]) => Array.from({ length: 2 * 4 * 5 }, (_, k) => x[Math.floor(k / 20) * 20 + (k % 5) * 4 + Math.floor((k % 20) / 5)]!);
    const [y] = await runOp('FusedMatMul', [a, b], { transB: intAttr(1), alpha: floatAttr(0.5) }, { domain: 'com.microsoft' });
    expect(y!.shape).toEqual([2, 3, 5]);
    close(values(y!), naiveMatmul(values(a), bt(values(b)), 2, 3, 4, 5, (t) => t, (t) => t).map((x) => 0.5 * x));
    const at = f32([2, 1], [1, 2]);
    const [z] = await runOp('FusedMatMul', [at, f32([2, 2], [1, 2, 3, 4])], { transA: intAttr(1) }, { domain: 'com.microsoft' });
    expect(values(z!)).toEqual([7, 10]);
    await expect(runOp('FusedMatMul', [a, b], { transBatchB: intAttr(1) }, { domain: 'com.microsoft' })).rejects.toThrow(/FusedMatMul with transBatchB is not supported/);
  });
  it('Gemm: alpha A Bᵀ + beta C with C broadcast along rows, and transA', async () => {
    const a = f32([1, 2], [1, 2]);
    const b = f32([3, 2], [1, 0, 0, 1, 1, 1]);
    const [y] = await runOp('Gemm', [a, b, f32([3], [1, 1, 1])], { transB: intAttr(1), alpha: floatAttr(2), beta: floatAttr(0.5) });
    expect(values(y!)).toEqual([2.5, 4.5, 6.5]);
    const [z] = await runOp('Gemm', [f32([2, 1], [1, 2]), f32([2, 2], [1, 2, 3, 4])], { transA: intAttr(1) });
    expect(values(z!)).toEqual([7, 10]);
    await expect(runOp('Gemm', [a, b])).rejects.toThrow(/inner dimensions 2 and 3/);
  });
});

describe('Einsum', () => {
  it('the attention equations keras/tf2onnx write: bhqd,bhkd->bhqk and bhqk,bhkd->bhqd', async () => {
    const q = random([1, 2, 3, 4], 3);
    const k = random([1, 2, 5, 4], 4);
    const [s] = await runOp('Einsum', [q, k], { equation: stringAttr('bhqd,bhkd->bhqk') });
    expect(s!.shape).toEqual([1, 2, 3, 5]);
    const qv = values(q);
    const kv = values(k);
    const want: number[] = [];
    for (let h = 0; h < 2; h++)
      for (let i = 0; i < 3; i++)
        for (let j = 0; j < 5; j++) {
          let acc = 0;
          for (let d = 0; d < 4; d++) acc += qv[(h * 3 + i) * 4 + d]! * kv[(h * 5 + j) * 4 + d]!;
          want.push(acc);
        }
    close(values(s!), want);
    const v = random([1, 2, 5, 4], 5);
    const [o] = await runOp('Einsum', [s!, v], { equation: stringAttr('bhqk,bhkd->bhqd') });
    expect(o!.shape).toEqual([1, 2, 3, 4]);
  });
  it('implicit output (labels seen once, sorted), transpose, diagonal, ellipsis with broadcasting', async () => {
    const [mm] = await runOp('Einsum', [f32([2, 2], [1, 2, 3, 4]), f32([2, 2], [5, 6, 7, 8])], { equation: stringAttr('ij,jk') });
    expect(values(mm!)).toEqual([19, 22, 43, 50]);
    const [t] = await runOp('Einsum', [f32([2, 3], [1, 2, 3, 4, 5, 6])], { equation: stringAttr('ij->ji') });
    expect(values(t!)).toEqual([1, 4, 2, 5, 3, 6]);
    const [d] = await runOp('Einsum', [f32([2, 2], [1, 2, 3, 4])], { equation: stringAttr('ii->i') });
    expect(values(d!)).toEqual([1, 4]);
    const [tr] = await runOp('Einsum', [f32([2, 2], [1, 2, 3, 4])], { equation: stringAttr('ii') });
    expect(values(tr!)).toEqual([5]);
    const [e] = await runOp('Einsum', [f32([2, 1, 1, 2], [1, 0, 0, 1]), f32([3, 2, 1], [1, 2, 3, 4, 5, 6])], { equation: stringAttr('...ij,...jk->...ik') });
    expect(e!.shape).toEqual([2, 3, 1, 1]);
    expect(values(e!)).toEqual([1, 3, 5, 2, 4, 6]);
  });
});

describe('Softmax and LayerNormalization', () => {
  const x = f32([1, 2, 2], [0, Math.log(3), 0, Math.log(3)]);
  it('opset 13: along the last axis by default', async () => {
    close(values((await runOp('Softmax', [x], {}, { opset: 13 }))[0]!), [0.25, 0.75, 0.25, 0.75]);
  });
  it('opset 11: default axis 1 over the input flattened to 2-D', async () => {
    close(values((await runOp('Softmax', [x], {}, { opset: 11 }))[0]!), [1 / 8, 3 / 8, 1 / 8, 3 / 8]);
  });
  it('opset 13 axis 1 runs along that axis only; LogSoftmax is the log', async () => {
    const y = f32([1, 2, 2], [0, 0, Math.log(3), Math.log(7)]);
    close(values((await runOp('Softmax', [y], { axis: intAttr(1) }, { opset: 13 }))[0]!), [0.25, 0.125, 0.75, 0.875]);
    close(values((await runOp('LogSoftmax', [x], {}, { opset: 13 }))[0]!), [Math.log(0.25), Math.log(0.75), Math.log(0.25), Math.log(0.75)]);
  });
  it('a row of -inf gives NaN (as onnxruntime), a large logit is no overflow', async () => {
    const [y] = await runOp('Softmax', [f32([2, 2], [-Infinity, -Infinity, 1000, 0])], {}, { opset: 13 });
    const v = values(y!);
    expect(v.slice(0, 2).every(Number.isNaN)).toBe(true);
    expect(v.slice(2)).toEqual([1, 0]);
  });
  it('LayerNormalization over the last axis with scale and bias, Mean and InvStdDev outputs', async () => {
    const inv = 1 / Math.sqrt(1.25); // mean 2.5, variance 1.25
    const [y, mean, invStd] = await runOp(
      'LayerNormalization',
      [f32([1, 4], [1, 2, 3, 4]), f32([4], [1, 1, 2, 2]), f32([4], [0, 0, 0, 1])],
      { epsilon: floatAttr(0) },
      { opset: 17, outputs: 3 },
    );
    close(values(y!), [-1.5 * inv, -0.5 * inv, 2 * 0.5 * inv, 2 * 1.5 * inv + 1]);
    expect(mean!.shape).toEqual([1, 1]);
    close(values(mean!), [2.5]);
    close(values(invStd!), [inv]);
  });
  it('LayerNormalization over the last two axes (axis -2), epsilon counted', async () => {
    const [y] = await runOp('LayerNormalization', [f64([1, 2, 2], [0, 0, 2, 2]), f64([2, 2], [1, 1, 1, 1])], { axis: intAttr(-2), epsilon: floatAttr(1) }, { opset: 17 });
    const r = 1 / Math.sqrt(1 + 1); // variance 1, epsilon 1
    close(values(y!), [-r, -r, r, r]);
  });
});

describe('reductions', () => {
  const x = f32([2, 3], [1, 2, 3, 4, 5, 6]);
  it('ReduceMean: axes attribute before opset 18, input from 18; keepdims', async () => {
    const [a] = await runOp('ReduceMean', [x], { axes: intsAttr([1]) }, { opset: 13 });
    expect(a!.shape).toEqual([2, 1]);
    expect(values(a!)).toEqual([2, 5]);
    const [b] = await runOp('ReduceMean', [x, i64([1], [-2])], { keepdims: intAttr(0) }, { opset: 18 });
    expect(b!.shape).toEqual([3]);
    expect(values(b!)).toEqual([2.5, 3.5, 4.5]);
  });
  it('ReduceSum: axes input from opset 13, all axes when absent, noop_with_empty_axes', async () => {
    const [a] = await runOp('ReduceSum', [x, i64([1], [1])], { keepdims: intAttr(0) }, { opset: 13 });
    expect(values(a!)).toEqual([6, 15]);
    const [b] = await runOp('ReduceSum', [x], {}, { opset: 13 });
    expect(b!.shape).toEqual([1, 1]);
    expect(values(b!)).toEqual([21]);
    const [c] = await runOp('ReduceSum', [x, i64([0], [])], { noop_with_empty_axes: intAttr(1) }, { opset: 13 });
    expect(values(c!)).toEqual([1, 2, 3, 4, 5, 6]);
    const [d] = await runOp('ReduceSum', [x], { axes: intsAttr([0]) }, { opset: 11 });
    expect(values(d!)).toEqual([5, 7, 9]);
  });
  it('ReduceMax/Min/Prod and int64 sums', async () => {
    expect(values((await runOp('ReduceMax', [x], { axes: intsAttr([1]), keepdims: intAttr(0) }, { opset: 13 }))[0]!)).toEqual([3, 6]);
    expect(values((await runOp('ReduceMin', [x], { axes: intsAttr([0]), keepdims: intAttr(0) }, { opset: 13 }))[0]!)).toEqual([1, 2, 3]);
    expect(values((await runOp('ReduceProd', [x], { keepdims: intAttr(0) }, { opset: 13 }))[0]!)).toEqual([720]);
    const [s] = await runOp('ReduceSum', [i64([3], [1, 2, 3])], { keepdims: intAttr(0) }, { opset: 13 });
    expect(s!.dtype).toBe('i64');
    expect(values(s!)).toEqual([6]);
  });
});
