// The indexing ops the attention lowerings emit (Pad, GatherND, ScatterElements, ScatterND, TopK, ArgMax/
// ArgMin, IsNaN/IsInf): first against values worked out by hand here, then against onnxruntime-node on
// seeded inputs (single-node models, graph optimizations off). These ops move or compare elements without
// arithmetic (the scatter reductions aside, one float32 operation per element), so both comparisons are
// exact: atol 0, rtol 0, dtypes and shapes equal.

import { type Attr, Graph, intAttr, SplitMix64, stringAttr, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { describe, expect, it } from 'vitest';
import { type ExecTensor, planGraph, runGraph, UnsupportedOpsError } from '../src/index.js';
import { bool, f32, f64, i32, i64, runOp, values } from './executor-build.js';
import { compareOutputs, runOrt } from './executor-ort.js';

const iota = (n: number, from = 0) => Array.from({ length: n }, (_, k) => k + from);

describe('Pad', () => {
  const x = f32([2, 3], [1, 2, 3, 4, 5, 6]);
  it('constant: zeros by default, constant_value when given', async () => {
    const [a] = await runOp('Pad', [x, i64([4], [1, 0, 0, 2])]);
    expect(a!.shape).toEqual([3, 5]);
    expect(values(a!)).toEqual([0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 4, 5, 6, 0, 0]);
    const [b] = await runOp('Pad', [x, i64([4], [0, 1, 0, 0]), f32([], [-1])]);
    expect(values(b!)).toEqual([-1, 1, 2, 3, -1, 4, 5, 6]);
  });
  it('reflect mirrors without repeating the edge; edge repeats it; wrap continues from the other side', async () => {
    const row = f32([1, 4], [1, 2, 3, 4]);
    const pads = i64([4], [0, 3, 0, 2]);
    expect(values((await runOp('Pad', [row, pads], { mode: stringAttr('reflect') }))[0]!)).toEqual([4, 3, 2, 1, 2, 3, 4, 3, 2]);
    expect(values((await runOp('Pad', [row, pads], { mode: stringAttr('edge') }))[0]!)).toEqual([1, 1, 1, 1, 2, 3, 4, 4, 4]);
    expect(values((await runOp('Pad', [row, pads], { mode: stringAttr('wrap') }, { opset: 19 }))[0]!)).toEqual([2, 3, 4, 1, 2, 3, 4, 1, 2]);
  });
  it('negative pads crop; the axes input (opset 18) names the padded axes', async () => {
    const [a] = await runOp('Pad', [x, i64([4], [0, -1, 1, 0])]);
    expect(a!.shape).toEqual([3, 2]);
    expect(values(a!)).toEqual([2, 3, 5, 6, 0, 0]);
    const [b] = await runOp('Pad', [x, i64([2], [2, -1]), undefined, i64([1], [-1])], {}, { opset: 18 });
    expect(values(b!)).toEqual([0, 0, 1, 2, 0, 0, 4, 5]);
  });
  it('int64 data with an int64 constant; the opset-2 attribute form', async () => {
    const [a] = await runOp('Pad', [i64([2], [5n, 2n ** 60n]), i64([2], [1, 1]), i64([], [7])]);
    expect(Array.from(a!.data as BigInt64Array)).toEqual([7n, 5n, 2n ** 60n, 7n]);
    const [b] = await runOp('Pad', [x], { pads: { type: 'ints', value: [1n, 0n, 0n, 0n] }, value: { type: 'float', value: 9 } }, { opset: 2 });
    expect(values(b!)).toEqual([9, 9, 9, 1, 2, 3, 4, 5, 6]);
  });
  it('refuses an unknown mode at plan time and wrong pads length at run time, naming the node', async () => {
    await expect(runOp('Pad', [x, i64([4], [0, 0, 0, 0])], { mode: stringAttr('mirror') })).rejects.toThrow(UnsupportedOpsError);
    await expect(runOp('Pad', [x, i64([2], [1, 1])])).rejects.toThrow(/"Pad_0".*pads has 2 entries, expected 4/);
    await expect(runOp('Pad', [f32([1, 0], []), i64([4], [0, 1, 0, 1])], { mode: stringAttr('edge') })).rejects.toThrow(/no elements to read/);
  });
});

describe('GatherND', () => {
  it('full tuples pick elements, short tuples pick slices; negative indices wrap', async () => {
    const data = i64([2, 2], [0, 1, 2, 3]);
    expect(values((await runOp('GatherND', [data, i64([2, 2], [0, 0, 1, 1])]))[0]!)).toEqual([0, 3]);
    const [s] = await runOp('GatherND', [data, i64([2, 1], [1, -2])]);
    expect(s!.shape).toEqual([2, 2]);
    expect(values(s!)).toEqual([2, 3, 0, 1]);
  });
  it('batch_dims = 1 indexes within each batch (the ONNX example)', async () => {
    const data = f32([2, 2, 2], iota(8));
    const [y] = await runOp('GatherND', [data, i64([2, 1], [1, 0])], { batch_dims: intAttr(1) });
    expect(y!.shape).toEqual([2, 2]);
    expect(values(y!)).toEqual([2, 3, 4, 5]);
  });
  it('an index out of range names the axis', async () => {
    await expect(runOp('GatherND', [f32([2, 3], iota(6)), i64([1, 2], [0, 3])])).rejects.toThrow(/"GatherND_0".*index 3 is out of range for axis 1 of size 3/);
  });
});

describe('ScatterElements and ScatterND', () => {
  it('ScatterElements on axis 1 (the ONNX example), and add / max reductions with repeated indices', async () => {
    const data = f32([1, 5], [1, 2, 3, 4, 5]);
    const idx = i64([1, 2], [1, 3]);
    const upd = f32([1, 2], [1.1, 2.1]);
    expect(values((await runOp('ScatterElements', [data, idx, upd], { axis: intAttr(1) }))[0]!)).toEqual([1, 1.1, 3, 2.1, 5].map(Math.fround));
    const rep = i64([1, 3], [1, 1, -1]);
    const u3 = f32([1, 3], [10, 20, 30]);
    expect(values((await runOp('ScatterElements', [data, rep, u3], { axis: intAttr(1), reduction: stringAttr('add') }, { opset: 18 }))[0]!)).toEqual([1, 32, 3, 4, 35]);
    expect(values((await runOp('ScatterElements', [data, rep, u3], { axis: intAttr(1), reduction: stringAttr('max') }, { opset: 18 }))[0]!)).toEqual([1, 20, 3, 4, 30]);
    expect(values((await runOp('ScatterElements', [data, rep, u3], { axis: intAttr(1) }))[0]!)).toEqual([1, 20, 3, 4, 30]);
  });
  it('ScatterElements on axis 0 writes rows by index (an inverse permutation)', async () => {
    const perm = i64([4], [2, 0, 3, 1]);
    const [inv] = await runOp('ScatterElements', [i64([4], [0, 0, 0, 0]), perm, i64([4], [0, 1, 2, 3])], { axis: intAttr(-1) });
    expect(values(inv!)).toEqual([1, 3, 0, 2]);
  });
  it('ScatterND replaces slices (the ONNX example) and multiplies with reduction mul', async () => {
    const data = i32([4, 2], iota(8));
    const [y] = await runOp('ScatterND', [data, i64([2, 1], [3, 1]), i32([2, 2], [10, 11, 12, 13])]);
    expect(values(y!)).toEqual([0, 1, 12, 13, 4, 5, 10, 11]);
    const [m] = await runOp('ScatterND', [f32([3], [1, 2, 3]), i64([3, 1], [0, 2, 0]), f32([3], [5, 7, 2])], { reduction: stringAttr('mul') }, { opset: 18 });
    expect(values(m!)).toEqual([10, 2, 21]);
  });
  it('shape mismatches name the shapes; an unknown reduction is refused at plan time', async () => {
    await expect(runOp('ScatterND', [f32([4, 2], iota(8)), i64([2, 1], [0, 1]), f32([2], [1, 2])])).rejects.toThrow(/updates \[2\] must have shape \[2, 2\]/);
    await expect(runOp('ScatterElements', [f32([2], [1, 2]), i64([1], [0]), f32([1], [1])], { reduction: stringAttr('avg') })).rejects.toThrow(UnsupportedOpsError);
  });
});

describe('TopK, ArgMax, ArgMin', () => {
  it('TopK largest and smallest along an axis; equal values keep index order', async () => {
    const x = f32([2, 4], [3, 1, 3, 2, 0, 5, 5, -1]);
    const [v, i] = await runOp('TopK', [x, i64([1], [3])], {}, { outputs: 2 });
    expect(values(v!)).toEqual([3, 3, 2, 5, 5, 0]);
    expect(values(i!)).toEqual([0, 2, 3, 1, 2, 0]);
    expect(i!.dtype).toBe('i64');
    const [sv, si] = await runOp('TopK', [x, i64([1], [2])], { axis: intAttr(0), largest: intAttr(0) }, { outputs: 2 });
    expect(sv!.shape).toEqual([2, 4]);
    expect(values(sv!)).toEqual([0, 1, 3, -1, 3, 5, 5, 2]);
    expect(values(si!)).toEqual([1, 0, 0, 1, 0, 1, 1, 0]);
  });
  it('TopK over int64 keys beyond 2^53 orders them exactly; k beyond the axis is an error', async () => {
    const big = 2n ** 60n;
    const [v, i] = await runOp('TopK', [i64([3], [big + 1n, big, big + 2n]), i64([1], [3])], { largest: intAttr(0) }, { outputs: 2 });
    expect(Array.from(v!.data as BigInt64Array)).toEqual([big, big + 1n, big + 2n]);
    expect(values(i!)).toEqual([1, 0, 2]);
    await expect(runOp('TopK', [f32([3], [1, 2, 3]), i64([1], [4])], {}, { outputs: 2 })).rejects.toThrow(/k = 4 is out of range/);
  });
  it('ArgMax/ArgMin: first extreme, or the last with select_last_index; keepdims', async () => {
    const x = f32([2, 3], [1, 4, 4, 2, 2, 0]);
    const [a] = await runOp('ArgMax', [x], { axis: intAttr(1) });
    expect(a!.shape).toEqual([2, 1]);
    expect(values(a!)).toEqual([1, 0]);
    const [b] = await runOp('ArgMax', [x], { axis: intAttr(1), keepdims: intAttr(0), select_last_index: intAttr(1) });
    expect(b!.shape).toEqual([2]);
    expect(values(b!)).toEqual([2, 1]);
    const [c] = await runOp('ArgMin', [x], { axis: intAttr(0), keepdims: intAttr(0) });
    expect(values(c!)).toEqual([0, 1, 1]);
  });
});

describe('IsNaN and IsInf', () => {
  it('classify float elements; IsInf can detect one sign only', async () => {
    const x = f64([5], [1, NaN, Infinity, -Infinity, 0]);
    expect(values((await runOp('IsNaN', [x]))[0]!)).toEqual([0, 1, 0, 0, 0]);
    expect(values((await runOp('IsInf', [x]))[0]!)).toEqual([0, 0, 1, 1, 0]);
    expect(values((await runOp('IsInf', [x], { detect_positive: intAttr(0) }))[0]!)).toEqual([0, 0, 0, 1, 0]);
    await expect(runOp('IsNaN', [bool([1], [1])])).rejects.toThrow(/float tensor/);
  });
});

// ---- against onnxruntime on seeded inputs ---------------------------------------------------------------------

interface OrtCase {
  readonly name: string;
  readonly op: string;
  readonly inputs: readonly (ExecTensor | undefined)[];
  readonly attrs?: Record<string, Attr>;
  readonly opset?: number;
  readonly outputs?: number;
}

/** One-node model: the executor's outputs must equal onnxruntime's exactly (dtype, shape, every element). */
async function expectSameAsOrt(c: OrtCase): Promise<void> {
  const opset = c.opset ?? 21;
  const g = new Graph(c.name);
  const feeds: Record<string, ExecTensor> = {};
  const ins = c.inputs.map((t, k) => {
    if (!t) return undefined;
    feeds[`in${k}`] = t;
    return g.addInput(new Value(`in${k}`, tensorType(t.dtype, t.shape)));
  });
  const outs = Array.from({ length: c.outputs ?? 1 }, (_, k) => new Value(`out${k}`));
  g.add({ op: c.op, domain: '', name: c.name, inputs: ins, outputs: outs, attrs: c.attrs ?? {} });
  g.outputs.push(...outs);
  planGraph(g, { opset });
  const got = await runGraph(g, feeds, { opset });
  const want = await runOrt(exportOnnx(newOnnxModel(g, { opset })), feeds);
  for (const name of Object.keys(want)) expect(got[name]!.dtype, `${c.name} ${name}`).toBe(want[name]!.dtype);
  expect(compareOutputs(got, want, 0, 0).mismatches, c.name).toEqual([]);
}

const rng = new SplitMix64(2024);
const floats = (shape: number[]) => f32(shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.nextFloat() * 2 - 1));
/** Small integers as floats: many ties. */
const ties = (shape: number[]) => f32(shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.floor(rng.nextFloat() * 4)));
const ints = (shape: number[], lo: number, hi: number) => i64(shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => lo + Math.floor(rng.nextFloat() * (hi - lo))));
/** A random permutation of 0..n-1 along the last axis of [rows, n]. */
const perms = (rows: number, n: number) =>
  i64([rows, n], Array.from({ length: rows }, () => {
    const p = iota(n);
    for (let k = n - 1; k > 0; k--) {
      const j = Math.floor(rng.nextFloat() * (k + 1));
      [p[k], p[j]] = [p[j]!, p[k]!];
    }
    return p;
  }).flat());

const ORT_CASES: OrtCase[] = [
  { name: 'pad_constant_4d', op: 'Pad', inputs: [floats([2, 3, 5, 4]), i64([8], [0, 0, 2, 1, 0, 1, 3, 0]), f32([], [-2.5])] },
  { name: 'pad_reflect', op: 'Pad', inputs: [floats([2, 5, 3]), i64([6], [0, 3, 2, 1, 4, 2])], attrs: { mode: stringAttr('reflect') } },
  { name: 'pad_edge_negative', op: 'Pad', inputs: [floats([4, 6]), i64([4], [-1, 3, 2, -2])], attrs: { mode: stringAttr('edge') } },
  { name: 'pad_wrap', op: 'Pad', inputs: [floats([3, 4]), i64([4], [2, 1, 1, 3])], attrs: { mode: stringAttr('wrap') }, opset: 19 },
  { name: 'pad_axes_int64', op: 'Pad', inputs: [ints([2, 3, 4], -9, 9), i64([4], [1, 0, 0, 3]), i64([], [-1]), i64([2], [0, -1])], opset: 18 },
  { name: 'gathernd_batch2', op: 'GatherND', inputs: [floats([2, 3, 5, 4]), ints([2, 3, 6, 1], -5, 5)], attrs: { batch_dims: intAttr(2) } },
  { name: 'gathernd_tuples', op: 'GatherND', inputs: [floats([3, 4, 5]), ints([2, 3, 2], 0, 3)] },
  { name: 'scatterelements_inverse_perm', op: 'ScatterElements', inputs: [ints([3, 7], 0, 1), perms(3, 7), i64([3, 7], Array.from({ length: 21 }, (_, k) => k % 7))], attrs: { axis: intAttr(-1) } },
  { name: 'scatterelements_add_axis0', op: 'ScatterElements', inputs: [floats([4, 3]), ints([6, 3], 0, 4), floats([6, 3])], attrs: { axis: intAttr(0), reduction: stringAttr('add') }, opset: 18 },
  { name: 'scatterelements_min', op: 'ScatterElements', inputs: [floats([3, 5]), ints([3, 4], -5, 5), floats([3, 4])], attrs: { axis: intAttr(1), reduction: stringAttr('min') }, opset: 18 },
  { name: 'scatternd_slices', op: 'ScatterND', inputs: [floats([5, 3, 2]), i64([3, 1], [4, 0, 2]), floats([3, 3, 2])] },
  { name: 'scatternd_elements_max', op: 'ScatterND', inputs: [floats([4, 4]), ints([6, 2], 0, 4), floats([6])], attrs: { reduction: stringAttr('max') }, opset: 18 },
  { name: 'topk_largest_ties', op: 'TopK', inputs: [ties([3, 4, 9]), i64([1], [5])], outputs: 2 },
  { name: 'topk_smallest_axis1', op: 'TopK', inputs: [ties([3, 8, 2]), i64([1], [8])], attrs: { axis: intAttr(1), largest: intAttr(0) }, outputs: 2 },
  { name: 'topk_int64', op: 'TopK', inputs: [ints([2, 10], -50, 50), i64([1], [4])], attrs: { largest: intAttr(0) }, outputs: 2 },
  { name: 'argmax_ties', op: 'ArgMax', inputs: [ties([4, 6, 3])], attrs: { axis: intAttr(1), keepdims: intAttr(0) } },
  { name: 'argmax_last', op: 'ArgMax', inputs: [ties([4, 6])], attrs: { axis: intAttr(-1), select_last_index: intAttr(1) } },
  { name: 'argmin', op: 'ArgMin', inputs: [ties([5, 3])], attrs: { axis: intAttr(0) } },
  { name: 'isnan', op: 'IsNaN', inputs: [f32([6], [0, NaN, 1, -Infinity, NaN, Infinity])] },
  { name: 'isinf_negative', op: 'IsInf', inputs: [f32([6], [0, NaN, 1, -Infinity, NaN, Infinity])], attrs: { detect_positive: intAttr(0) } },
];

describe('indexing ops match onnxruntime exactly', () => {
  it.each(ORT_CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    await expectSameAsOrt(c);
  });
});
