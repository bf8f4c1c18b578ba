// Elementwise ops of the executor against hand-derived values: numpy broadcasting, integer semantics
// (truncating division, exact int64), comparisons and logic, Where, float16 rounding, NaN/Inf passing
// through, Erf and Gelu against independently known values. Float results are checked to float32
// rounding (|got - want| <= 1e-6 |want| + 1e-7) unless exact.

import { floatToHalf, floatAttr, halfToFloat, stringAttr } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { execTensor } from '../src/index.js';
import { bool, f32, f64, i32, i64, runOp, values } from './executor-build.js';

const close = (got: number[], want: number[], tol = 1e-6) => {
  expect(got.length).toBe(want.length);
  got.forEach((g, k) => expect(Math.abs(g - want[k]!), `element ${k}: ${g} vs ${want[k]}`).toBeLessThanOrEqual(tol * Math.abs(want[k]!) + 1e-7));
};

describe('arithmetic with broadcasting', () => {
  it('Add [2, 3] + [3] adds the row to each row', async () => {
    const [y] = await runOp('Add', [f32([2, 3], [1, 2, 3, 4, 5, 6]), f32([3], [10, 20, 30])]);
    expect(y!.shape).toEqual([2, 3]);
    expect(values(y!)).toEqual([11, 22, 33, 14, 25, 36]);
  });
  it('Sub [2, 1] - [1, 3] is the outer difference', async () => {
    const [y] = await runOp('Sub', [f32([2, 1], [10, 20]), f32([1, 3], [1, 2, 3])]);
    expect(y!.shape).toEqual([2, 3]);
    expect(values(y!)).toEqual([9, 8, 7, 19, 18, 17]);
  });
  it('Mul with a scalar, and shapes that do not broadcast name both shapes and the node', async () => {
    const [y] = await runOp('Mul', [f32([], [2]), f32([2, 2], [1, 2, 3, 4])]);
    expect(values(y!)).toEqual([2, 4, 6, 8]);
    await expect(runOp('Mul', [f32([2], [1, 2]), f32([3], [1, 2, 3])])).rejects.toThrow(/"Mul_0".*\[2\], \[3\] do not broadcast/);
  });
  it('integer Div truncates toward zero (int64 and int32); division by zero is an error', async () => {
    const [a] = await runOp('Div', [i64([4], [7, -7, 7, -7]), i64([4], [2, 2, -2, -2])]);
    expect(a!.dtype).toBe('i64');
    expect(values(a!)).toEqual([3, -3, -3, 3]);
    const [b] = await runOp('Div', [i32([2], [9, -9]), i32([1], [4])]);
    expect(values(b!)).toEqual([2, -2]);
    await expect(runOp('Div', [i64([1], [1]), i64([1], [0])])).rejects.toThrow(/division by zero/);
  });
  it('int64 arithmetic is exact beyond 2^53', async () => {
    const [y] = await runOp('Mul', [i64([1], [2n ** 40n + 1n]), i64([1], [2n ** 20n])]);
    expect((y!.data as BigInt64Array)[0]).toBe(2n ** 60n + 2n ** 20n);
  });
  it('Pow takes an exponent of another dtype; mixed dtypes elsewhere are an error', async () => {
    const [y] = await runOp('Pow', [f32([3], [2, 3, 4]), i64([1], [2])]);
    expect(values(y!)).toEqual([4, 9, 16]);
    await expect(runOp('Add', [f32([1], [1]), f64([1], [1])])).rejects.toThrow(/different dtypes f32 and f64/);
  });
  it('Max/Min/Sum/Mean take several inputs and broadcast them; Max propagates NaN', async () => {
    const [mx] = await runOp('Max', [f32([3], [1, 5, NaN]), f32([1], [3]), f32([3], [0, 0, 0])]);
    expect(values(mx!)).toEqual([3, 5, NaN]);
    const [mean] = await runOp('Mean', [f32([2], [1, 2]), f32([2], [3, 6])]);
    expect(values(mean!)).toEqual([2, 4]);
    const [one] = await runOp('Sum', [f32([2], [1, 2])]);
    expect(values(one!)).toEqual([1, 2]);
  });
});

describe('comparisons, logic, Where', () => {
  it('Equal/Less/Greater on int64 broadcast to bool', async () => {
    const a = i64([2, 1], [1, 3]);
    const b = i64([3], [1, 2, 3]);
    expect(values((await runOp('Equal', [a, b]))[0]!)).toEqual([1, 0, 0, 0, 0, 1]);
    expect(values((await runOp('Less', [a, b]))[0]!)).toEqual([0, 1, 1, 0, 0, 0]);
    const [g] = await runOp('Greater', [a, b]);
    expect(g!.dtype).toBe('bool');
    expect(values(g!)).toEqual([0, 0, 0, 1, 1, 0]);
  });
  it('Equal of floats: NaN equals nothing', async () => {
    expect(values((await runOp('Equal', [f32([2], [NaN, 1]), f32([2], [NaN, 1])]))[0]!)).toEqual([0, 1]);
  });
  it('And/Or/Xor/Not on bool', async () => {
    const a = bool([4], [0, 0, 1, 1]);
    const b = bool([4], [0, 1, 0, 1]);
    expect(values((await runOp('And', [a, b]))[0]!)).toEqual([0, 0, 0, 1]);
    expect(values((await runOp('Or', [a, b]))[0]!)).toEqual([0, 1, 1, 1]);
    expect(values((await runOp('Xor', [a, b]))[0]!)).toEqual([0, 1, 1, 0]);
    expect(values((await runOp('Not', [a]))[0]!)).toEqual([1, 1, 0, 0]);
    await expect(runOp('And', [f32([1], [1]), bool([1], [1])])).rejects.toThrow(/must be bool/);
  });
  it('Where broadcasts condition, x and y (the masked_fill pattern: -inf where masked)', async () => {
    const mask = bool([2, 2], [1, 0, 1, 1]);
    const [y] = await runOp('Where', [mask, f32([2, 2], [1, 2, 3, 4]), f32([], [-Infinity])]);
    expect(values(y!)).toEqual([1, -Infinity, 3, 4]);
    const [z] = await runOp('Where', [bool([2], [1, 0]), i64([2, 1], [7, 8]), i64([1], [0])]);
    expect(z!.shape).toEqual([2, 2]);
    expect(values(z!)).toEqual([7, 0, 8, 0]);
  });
});

describe('unary ops', () => {
  it('Erf matches known values of the error function', async () => {
    const x = [0, 0.5, 1, 2, 3.5, -1.5, 7];
    const want = [0, 0.5204998778130465, 0.8427007929497149, 0.9953222650189527, 0.9999992569016276, -0.9661051464753108, 1];
    const [y] = await runOp('Erf', [f64([7], x)]);
    values(y!).forEach((v, k) => expect(Math.abs(v - want[k]!)).toBeLessThan(1e-14));
  });
  it('Gelu (opset 20): exact form 0.5 x (1 + erf(x / sqrt 2)) and the tanh form', async () => {
    const x = [-1, 0, 1, 2];
    const erfOf = [-0.6826894921370859, 0, 0.6826894921370859, 0.9544997361036416]; // erf(x / sqrt 2)
    const [exact] = await runOp('Gelu', [f64([4], x)], {}, { opset: 20 });
    values(exact!).forEach((v, k) => expect(Math.abs(v - 0.5 * x[k]! * (1 + erfOf[k]!))).toBeLessThan(1e-14));
    const [tanh] = await runOp('Gelu', [f64([4], x)], { approximate: stringAttr('tanh') }, { opset: 20 });
    const c = Math.sqrt(2 / Math.PI);
    values(tanh!).forEach((v, k) => expect(Math.abs(v - 0.5 * x[k]! * (1 + Math.tanh(c * (x[k]! + 0.044715 * x[k]! ** 3))))).toBeLessThan(1e-14));
  });
  it('Relu, Sigmoid, Tanh, Sqrt, Reciprocal, Neg on floats; Neg and Abs on int64', async () => {
    close(values((await runOp('Relu', [f32([3], [-1, 0, 2])]))[0]!), [0, 0, 2]);
    close(values((await runOp('Sigmoid', [f32([3], [0, 2, -800])]))[0]!), [0.5, 1 / (1 + Math.exp(-2)), 0]);
    close(values((await runOp('Tanh', [f32([1], [0.5])]))[0]!), [0.46211715726000974]);
    close(values((await runOp('Sqrt', [f32([2], [4, 2])]))[0]!), [2, Math.SQRT2]);
    close(values((await runOp('Reciprocal', [f32([2], [4, -0.5])]))[0]!), [0.25, -2]);
    expect(values((await runOp('Neg', [i64([2], [5, -2])]))[0]!)).toEqual([-5, 2]);
    expect(values((await runOp('Abs', [i64([2], [5, -2])]))[0]!)).toEqual([5, 2]);
  });
  it('NaN and Inf pass through as IEEE arithmetic says', async () => {
    expect(values((await runOp('Add', [f32([3], [NaN, Infinity, -Infinity]), f32([1], [1])]))[0]!)).toEqual([NaN, Infinity, -Infinity]);
    expect(values((await runOp('Relu', [f32([2], [NaN, -Infinity])]))[0]!)).toEqual([NaN, 0]);
    expect(values((await runOp('Sqrt', [f32([1], [-1])]))[0]!)).toEqual([NaN]);
    expect(values((await runOp('Div', [f32([2], [1, 0]), f32([1], [0])]))[0]!)).toEqual([Infinity, NaN]);
    expect(values((await runOp('Erf', [f32([2], [NaN, -Infinity])]))[0]!)).toEqual([NaN, -1]);
  });
  it('Clip by inputs (opset 11+) and by attributes (before)', async () => {
    expect(values((await runOp('Clip', [f32([3], [-2, 0.5, 9]), f32([], [0]), f32([], [1])], {}, { opset: 13 }))[0]!)).toEqual([0, 0.5, 1]);
    expect(values((await runOp('Clip', [f32([3], [-2, 0.5, 9])], { min: floatAttr(-1) }, { opset: 6 }))[0]!)).toEqual([-1, 0.5, 9]);
  });
});

describe('float16', () => {
  const half = (v: readonly number[]) => execTensor('f16', [v.length], Uint16Array.from(v, floatToHalf));
  it('computes in float32 and rounds the result to float16 (ties to even)', async () => {
    // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties to even gives 1; 1 + 3 * 2^-11 rounds up to 1 + 2^-9
    const [y] = await runOp('Add', [half([1, 1]), half([2 ** -11, 3 * 2 ** -11])]);
    expect(y!.dtype).toBe('f16');
    expect(Array.from(y!.data as Uint16Array, halfToFloat)).toEqual([1, 1 + 2 ** -9]);
  });
  it('overflows to Inf past 65504', async () => {
    const [y] = await runOp('Mul', [half([60000]), half([2])]);
    expect(Array.from(y!.data as Uint16Array, halfToFloat)).toEqual([Infinity]);
  });
});
