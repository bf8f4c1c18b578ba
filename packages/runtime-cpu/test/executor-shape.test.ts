// Shape and data-movement ops of the executor against hand-derived values: Reshape (0, -1, allowzero),
// Unsqueeze/Squeeze (axes attribute before opset 13, input from 13, negative axes), Flatten, Expand, Shape
// (start/end), Size, ConstantOfShape, Range, Transpose, Gather (negative indices), Concat, Slice (negative
// steps, INT64_MAX ends, the opset-1 attribute form), Split (opset differences), Trilu, Tile, Cast, Dropout,
// Constant, NonZero, CumSum.

import { floatAttr, floatToHalf, intAttr, intsAttr, Tensor, tensorAttr } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { execTensor } from '../src/index.js';
import { bool, f32, i32, i64, runOp, values } from './executor-build.js';

const INT64_MAX = 2n ** 63n - 1n;
const iota = (n: number) => Array.from({ length: n }, (_, k) => k);

describe('shape ops', () => {
  it('Reshape copies a 0 dim, infers -1, and with allowzero keeps 0 as a size', async () => {
    const x = f32([2, 3, 4], iota(24));
    const [y] = await runOp('Reshape', [x, i64([3], [0, -1, 2])]);
    expect(y!.shape).toEqual([2, 6, 2]);
    expect(values(y!)).toEqual(iota(24));
    const [z] = await runOp('Reshape', [f32([0, 3], []), i64([2], [3, 0])], { allowzero: intAttr(1) });
    expect(z!.shape).toEqual([3, 0]);
    await expect(runOp('Reshape', [x, i64([2], [5, -1])])).rejects.toThrow(/"Reshape_0".*cannot reshape \[2, 3, 4\] to \[5, -1\]/);
  });
  it('Unsqueeze: axes attribute at opset 11, input at opset 13, negative axes count from the output rank', async () => {
    const x = f32([2, 3], iota(6));
    const [a] = await runOp('Unsqueeze', [x], { axes: intsAttr([0, 3]) }, { opset: 11 });
    expect(a!.shape).toEqual([1, 2, 3, 1]);
    const [b] = await runOp('Unsqueeze', [x, i64([2], [-1, 1])], {}, { opset: 13 });
    expect(b!.shape).toEqual([2, 1, 3, 1]);
  });
  it('Squeeze: named axes (input at 13) or every size-1 axis; a non-1 axis is an error', async () => {
    const x = f32([1, 2, 1, 3], iota(6));
    expect((await runOp('Squeeze', [x, i64([1], [-2])], {}, { opset: 13 }))[0]!.shape).toEqual([1, 2, 3]);
    expect((await runOp('Squeeze', [x]))[0]!.shape).toEqual([2, 3]);
    expect((await runOp('Squeeze', [x], { axes: intsAttr([0]) }, { opset: 11 }))[0]!.shape).toEqual([2, 1, 3]);
    await expect(runOp('Squeeze', [x, i64([1], [1])])).rejects.toThrow(/axis 1.*not 1/);
  });
  it('Flatten at axis 2 and -1', async () => {
    const x = f32([2, 3, 4, 5], iota(120));
    expect((await runOp('Flatten', [x], { axis: intAttr(2) }))[0]!.shape).toEqual([6, 20]);
    expect((await runOp('Flatten', [x], { axis: intAttr(-1) }))[0]!.shape).toEqual([24, 5]);
    expect((await runOp('Flatten', [x], { axis: intAttr(0) }))[0]!.shape).toEqual([1, 120]);
  });
  it('Expand broadcasts both ways: [3, 1] to [2, 1, 4] gives [2, 3, 4]', async () => {
    const [y] = await runOp('Expand', [i64([3, 1], [1, 2, 3]), i64([3], [2, 1, 4])]);
    expect(y!.shape).toEqual([2, 3, 4]);
    expect(values(y!)).toEqual([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
  });
  it('Shape with start/end (opset 15) and Size', async () => {
    const x = f32([2, 3, 4], iota(24));
    expect(values((await runOp('Shape', [x]))[0]!)).toEqual([2, 3, 4]);
    expect(values((await runOp('Shape', [x], { start: intAttr(-2) }, { opset: 15 }))[0]!)).toEqual([3, 4]);
    expect(values((await runOp('Shape', [x], { start: intAttr(1), end: intAttr(-1) }, { opset: 15 }))[0]!)).toEqual([3]);
    const [n] = await runOp('Size', [x]);
    expect(n!.dtype).toBe('i64');
    expect(n!.shape).toEqual([]);
    expect(values(n!)).toEqual([24]);
  });
  it('ConstantOfShape: default float32 zeros, or the value attribute', async () => {
    const [z] = await runOp('ConstantOfShape', [i64([2], [2, 2])]);
    expect(z!.dtype).toBe('f32');
    expect(values(z!)).toEqual([0, 0, 0, 0]);
    const [o] = await runOp('ConstantOfShape', [i64([1], [3])], { value: tensorAttr(Tensor.fromValues('i64', [1], [7n])) });
    expect(o!.dtype).toBe('i64');
    expect(values(o!)).toEqual([7, 7, 7]);
  });
  it('Range: ceil((limit - start) / delta) elements, float and negative int64 steps', async () => {
    const [a] = await runOp('Range', [f32([], [1]), f32([], [2]), f32([], [0.3])]);
    expect(values(a!).map((v) => Math.round(v * 10) / 10)).toEqual([1, 1.3, 1.6, 1.9]);
    const [b] = await runOp('Range', [i64([], [10]), i64([], [4]), i64([], [-3])]);
    expect(values(b!)).toEqual([10, 7]);
    const [c] = await runOp('Range', [i64([], [0]), i64([], [-1]), i64([], [1])]);
    expect(c!.shape).toEqual([0]);
  });
});

describe('data movement', () => {
  it('Transpose: default reverses the axes; a perm moves them', async () => {
    const x = f32([2, 3], iota(6));
    expect(values((await runOp('Transpose', [x]))[0]!)).toEqual([0, 3, 1, 4, 2, 5]);
    const [y] = await runOp('Transpose', [f32([2, 3, 4], iota(24))], { perm: intsAttr([1, 0, 2]) });
    expect(y!.shape).toEqual([3, 2, 4]);
    expect(values(y!).slice(0, 8)).toEqual([0, 1, 2, 3, 12, 13, 14, 15]);
  });
  it('Gather on axis 1 with negative indices and 2-D indices', async () => {
    const x = f32([2, 3], [0, 1, 2, 10, 11, 12]);
    const [y] = await runOp('Gather', [x, i64([2, 2], [-1, 0, 1, 1])], { axis: intAttr(1) });
    expect(y!.shape).toEqual([2, 2, 2]);
    expect(values(y!)).toEqual([2, 0, 1, 1, 12, 10, 11, 11]);
    const [s] = await runOp('Gather', [i64([3], [5, 6, 7]), i64([], [2])]);
    expect(s!.shape).toEqual([]);
    expect(values(s!)).toEqual([7]);
    await expect(runOp('Gather', [x, i64([1], [3])], { axis: intAttr(1) })).rejects.toThrow(/index 3 is out of range/);
  });
  it('Concat on a negative axis', async () => {
    const [y] = await runOp('Concat', [f32([2, 1], [1, 2]), f32([2, 2], [3, 4, 5, 6])], { axis: intAttr(-1) });
    expect(y!.shape).toEqual([2, 3]);
    expect(values(y!)).toEqual([1, 3, 4, 2, 5, 6]);
    await expect(runOp('Concat', [f32([2, 1], [1, 2]), f32([3, 1], [3, 4, 5])], { axis: intAttr(1) })).rejects.toThrow(/cannot concatenate/);
  });
  it('Slice: INT64_MAX ends, negative starts, negative steps, axes', async () => {
    const x = f32([10], iota(10));
    expect(values((await runOp('Slice', [x, i64([1], [-3]), i64([1], [INT64_MAX])]))[0]!)).toEqual([7, 8, 9]);
    expect(values((await runOp('Slice', [x, i64([1], [-1]), i64([1], [-(2n ** 63n)]), i64([1], [0]), i64([1], [-3])]))[0]!)).toEqual([9, 6, 3, 0]);
    const m = f32([3, 4], iota(12));
    const [y] = await runOp('Slice', [m, i64([1], [1]), i64([1], [3]), i64([1], [-1])]);
    expect(y!.shape).toEqual([3, 2]);
    expect(values(y!)).toEqual([1, 2, 5, 6, 9, 10]);
    const [old] = await runOp('Slice', [m], { starts: intsAttr([1]), ends: intsAttr([100]), axes: intsAttr([0]) }, { opset: 9 });
    expect(values(old!)).toEqual(iota(12).slice(4));
  });
  it('Split: sizes as input (opset 13), as attribute (opset 11), equal parts, num_outputs (opset 18)', async () => {
    const x = f32([5, 2], iota(10));
    const a = await runOp('Split', [x, i64([2], [2, 3])], {}, { opset: 13, outputs: 2 });
    expect(a.map((t) => t.shape)).toEqual([[2, 2], [3, 2]]);
    expect(values(a[1]!)).toEqual([4, 5, 6, 7, 8, 9]);
    const b = await runOp('Split', [x], { split: intsAttr([4, 1]) }, { opset: 11, outputs: 2 });
    expect(values(b[1]!)).toEqual([8, 9]);
    const c = await runOp('Split', [x], { axis: intAttr(-1) }, { opset: 13, outputs: 2 });
    expect(values(c[0]!)).toEqual([0, 2, 4, 6, 8]);
    const d = await runOp('Split', [x], { num_outputs: intAttr(2) }, { opset: 18, outputs: 2 });
    expect(d.map((t) => t.shape)).toEqual([[3, 2], [2, 2]]);
    await expect(runOp('Split', [x], {}, { opset: 13, outputs: 2 })).rejects.toThrow(/equal parts/);
  });
  it('Trilu: upper keeps j - i >= k, lower keeps j - i <= k, on the last two axes', async () => {
    const x = f32([1, 3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(values((await runOp('Trilu', [x]))[0]!)).toEqual([1, 2, 3, 0, 5, 6, 0, 0, 9]);
    expect(values((await runOp('Trilu', [x, i64([], [1])]))[0]!)).toEqual([0, 2, 3, 0, 0, 6, 0, 0, 0]);
    expect(values((await runOp('Trilu', [x, i64([], [-1])], { upper: intAttr(0) }))[0]!)).toEqual([0, 0, 0, 4, 0, 0, 7, 8, 0]);
    expect(values((await runOp('Trilu', [bool([2, 2], [1, 1, 1, 1])], { upper: intAttr(0) }))[0]!)).toEqual([1, 0, 1, 1]);
  });
  it('Tile repeats along each axis', async () => {
    const [y] = await runOp('Tile', [f32([1, 2], [1, 2]), i64([2], [2, 2])]);
    expect(y!.shape).toEqual([2, 4]);
    expect(values(y!)).toEqual([1, 2, 1, 2, 1, 2, 1, 2]);
  });
  it('CumSum: inclusive, exclusive, reverse', async () => {
    const x = f32([4], [1, 2, 3, 4]);
    expect(values((await runOp('CumSum', [x, i32([], [0])]))[0]!)).toEqual([1, 3, 6, 10]);
    expect(values((await runOp('CumSum', [x, i32([], [0])], { exclusive: intAttr(1) }))[0]!)).toEqual([0, 1, 3, 6]);
    expect(values((await runOp('CumSum', [x, i32([], [0])], { reverse: intAttr(1) }))[0]!)).toEqual([10, 9, 7, 4]);
  });
  it('NonZero gives the coordinates of nonzero elements, one row per axis', async () => {
    const [y] = await runOp('NonZero', [f32([2, 2], [0, 1, 1, 0])]);
    expect(y!.shape).toEqual([2, 2]);
    expect(values(y!)).toEqual([0, 1, 1, 0]);
  });
});

describe('casts and constants', () => {
  it('Cast float to int64 truncates toward zero; to bool is x != 0; int64 to float', async () => {
    const x = f32([4], [-1.7, 1.7, 0, 2.5]);
    const [a] = await runOp('Cast', [x], { to: intAttr(7) });
    expect(a!.dtype).toBe('i64');
    expect(values(a!)).toEqual([-1, 1, 0, 2]);
    expect(values((await runOp('Cast', [x], { to: intAttr(9) }))[0]!)).toEqual([1, 1, 0, 1]);
    const [c] = await runOp('Cast', [i64([2], [3, -4])], { to: intAttr(1) });
    expect(c!.dtype).toBe('f32');
    expect(values(c!)).toEqual([3, -4]);
  });
  it('Cast to float16 rounds to nearest even', async () => {
    const [h] = await runOp('Cast', [f32([2], [1 + 2 ** -11, 65520])], { to: intAttr(10) });
    expect(h!.dtype).toBe('f16');
    expect(values(h!)).toEqual([1, Infinity]);
  });
  it('Dropout in inference returns its input and an all-true mask', async () => {
    const x = f32([3], [1, 2, 3]);
    const [y, mask] = await runOp('Dropout', [x, f32([], [0.5])], {}, { outputs: 2 });
    expect(values(y!)).toEqual([1, 2, 3]);
    expect(values(mask!)).toEqual([1, 1, 1]);
    await expect(runOp('Dropout', [x, f32([], [0.5]), bool([], [1])])).rejects.toThrow(/training_mode/);
  });
  it('Constant from a tensor, value_float and value_ints', async () => {
    expect(values((await runOp('Constant', [], { value: tensorAttr(Tensor.fromValues('f32', [2], [1.5, 2])) }))[0]!)).toEqual([1.5, 2]);
    expect(values((await runOp('Constant', [], { value_float: floatAttr(0.25) }))[0]!)).toEqual([0.25]);
    const [ints] = await runOp('Constant', [], { value_ints: intsAttr([3, 4]) });
    expect(ints!.dtype).toBe('i64');
    expect(values(ints!)).toEqual([3, 4]);
  });
});

describe('float16 inputs of casts and NonZero are read as values, not bit patterns', () => {
  it('-0 in float16 is false and zero', async () => {
    const h = execTensor('f16', [3], Uint16Array.of(floatToHalf(-0), floatToHalf(2), floatToHalf(0)));
    expect(values((await runOp('Cast', [h], { to: intAttr(9) }))[0]!)).toEqual([0, 1, 0]);
    expect(values((await runOp('NonZero', [h]))[0]!)).toEqual([1]);
  });
});
