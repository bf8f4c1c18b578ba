// Shape ops and constants: Shape (start/end), Size, Reshape (0 copies a dim unless allowzero, -1 is
// inferred), Unsqueeze/Squeeze (axes an attribute before opset 13, an input from 13), Flatten, Expand
// (bidirectional broadcast), ConstantOfShape, Range, Constant, Identity, Dropout (inference: the input
// and an all-true mask), NonZero. Views share their input's elements.

import { elementCount } from '@attnopt/ir';
import { attrFloat, attrInt, attrInts, attrTensor } from '../attrs.js';
import { broadcastIndex, broadcastShapes, normalizeAxis } from '../broadcast.js';
import { input, type OpContext, type OpKernel, type OpTable } from '../kernel.js';
import {
  allocTensor,
  type ExecTensor,
  execTensor,
  fromIrTensor,
  int64Tensor,
  intValues,
  numberData,
  shapeString,
  toNumbers,
  withShape,
} from '../tensor.js';

const shapeOp: OpKernel = {
  minInputs: 1,
  run: (ctx) => {
    const x = input(ctx, 0);
    const r = x.shape.length;
    const clamp = (v: number) => Math.min(r, Math.max(0, v < 0 ? v + r : v));
    const start = clamp(attrInt(ctx.node, 'start', 0));
    const end = clamp(attrInt(ctx.node, 'end', r));
    const dims = x.shape.slice(start, Math.max(start, end));
    return [int64Tensor([dims.length], dims)];
  },
};

/** The output shape of Reshape(x, shape). */
export function reshapeTarget(inShape: readonly number[], spec: readonly number[], allowzero: boolean): number[] {
  const out = spec.map((d, k) => (d === 0 && !allowzero ? (k < inShape.length ? inShape[k]! : NaN) : d));
  const fail = (why: string): never => {
    throw new Error(`cannot reshape ${shapeString(inShape)} to ${shapeString(spec)}: ${why}`);
  };
  if (out.some((d) => Number.isNaN(d))) fail('a 0 copies a dimension the input does not have');
  const unknown = out.filter((d) => d === -1).length;
  if (unknown > 1) fail('more than one -1');
  if (out.some((d) => d < -1)) fail('negative dimension');
  const total = elementCount(inShape);
  if (unknown === 1) {
    const known = out.reduce((p, d) => (d === -1 ? p : p * d), 1);
    if (known === 0 || total % known !== 0) fail(`${total} elements do not divide into ${known}`);
    out[out.indexOf(-1)] = total / known;
  }
  if (elementCount(out) !== total) fail(`${total} elements vs ${elementCount(out)}`);
  return out;
}

/** Axes of Unsqueeze/Squeeze: the attribute before opset 13, input 1 from then on. */
function axesOf(ctx: OpContext): number[] | undefined {
  if (ctx.opset < 13 || ctx.node.attrs.has('axes')) return attrInts(ctx.node, 'axes');
  return ctx.inputs[1] ? intValues(ctx.inputs[1]) : undefined;
}

const unsqueeze: OpKernel = {
  minInputs: 1,
  run: (ctx) => {
    const x = input(ctx, 0);
    const axes = axesOf(ctx);
    if (!axes) throw new Error('Unsqueeze needs axes');
    const rank = x.shape.length + axes.length;
    const at = new Set(axes.map((a) => normalizeAxis(a, rank)));
    if (at.size !== axes.length) throw new Error(`Unsqueeze axes [${axes.join(', ')}] repeat an axis`);
    const shape: number[] = [];
    let j = 0;
    for (let k = 0; k < rank; k++) shape.push(at.has(k) ? 1 : x.shape[j++]!);
    return [withShape(x, shape)];
  },
};

const squeeze: OpKernel = {
  minInputs: 1,
  run: (ctx) => {
    const x = input(ctx, 0);
    const axes = axesOf(ctx);
    const drop = new Set(axes === undefined ? x.shape.flatMap((d, k) => (d === 1 ? [k] : [])) : axes.map((a) => normalizeAxis(a, x.shape.length)));
    for (const a of drop) if (x.shape[a] !== 1) throw new Error(`cannot squeeze axis ${a} of ${shapeString(x.shape)}: its size is not 1`);
    return [withShape(x, x.shape.filter((_, k) => !drop.has(k)))];
  },
};

const flatten: OpKernel = {
  minInputs: 1,
  run: (ctx) => {
    const x = input(ctx, 0);
    const r = x.shape.length;
    const a = attrInt(ctx.node, 'axis', 1);
    if (a < -r || a > r) throw new Error(`axis ${a} is out of range for rank ${r}`);
    const axis = a < 0 ? a + r : a;
    return [withShape(x, [elementCount(x.shape.slice(0, axis)), elementCount(x.shape.slice(axis))])];
  },
};

/** x broadcast to `shape` (copied). */
export function expandTo(x: ExecTensor, shape: readonly number[]): ExecTensor {
  const idx = broadcastIndex(x.shape, shape);
  if (!idx) return withShape(x, shape);
  const out = allocTensor(x.dtype, shape);
  const s = x.data as ArrayLike<number | bigint>;
  const o = out.data as { [k: number]: number | bigint };
  for (let k = 0; k < idx.length; k++) o[k] = s[idx[k]!]!;
  return out;
}

const expand: OpKernel = {
  minInputs: 2,
  run: (ctx) => {
    const x = input(ctx, 0);
    const shape = broadcastShapes([x.shape, intValues(input(ctx, 1))]);
    return [expandTo(x, shape)];
  },
};

const constantOfShape: OpKernel = {
  minInputs: 1,
  run: (ctx) => {
    const shape = intValues(input(ctx, 0));
    const v = attrTensor(ctx.node, 'value');
    if (v === undefined) return [allocTensor('f32', shape)];
    const value = fromIrTensor(v, 'attribute value');
    if (value.data.length !== 1) throw new Error(`value must hold one element, got ${shapeString(value.shape)}`);
    const out = allocTensor(value.dtype, shape);
    (out.data as { fill(v: number | bigint): unknown }).fill(value.data[0]!);
    return [out];
  },
};

const range: OpKernel = {
  minInputs: 3,
  run: (ctx) => {
    const [start, limit, delta] = [0, 1, 2].map((k) => input(ctx, k));
    if (start!.dtype !== limit!.dtype || start!.dtype !== delta!.dtype) throw new Error(`start, limit and delta must have one dtype, got ${start!.dtype}, ${limit!.dtype}, ${delta!.dtype}`);
    if (start!.dtype === 'i64') {
      const [s, l, d] = [start!, limit!, delta!].map((t) => (t.data as BigInt64Array)[0]!) as [bigint, bigint, bigint];
      if (d === 0n) throw new Error('delta is 0');
      const n = Number(d > 0n ? (l - s + d - 1n) / d : (s - l - d - 1n) / -d);
      const count = Math.max(0, n);
      const out = allocTensor('i64', [count]);
      for (let k = 0; k < count; k++) out.data[k] = s + BigInt(k) * d;
      return [out];
    }
    const [s, l, d] = [start!, limit!, delta!].map((t) => toNumbers(t)[0]!) as [number, number, number];
    if (d === 0) throw new Error('delta is 0');
    const count = Math.max(0, Math.ceil((l - s) / d));
    const out = allocTensor(start!.dtype, [count]);
    const o = out.data as { [k: number]: number };
    for (let k = 0; k < count; k++) o[k] = s + k * d;
    return [out];
  },
};

const CONSTANT_ATTRS = ['value', 'value_float', 'value_floats', 'value_int', 'value_ints'];

const constant: OpKernel = {
  minInputs: 0,
  check: (node) => {
    const present = [...node.attrs.keys()];
    const known = present.filter((k) => CONSTANT_ATTRS.includes(k));
    if (known.length !== 1) return `Constant with attribute(s) ${present.join(', ') || 'none'} is not supported (one of ${CONSTANT_ATTRS.join(', ')})`;
    const t = attrTensor(node, 'value');
    if (t && t.dtype === 'string') return 'Constant of strings is not supported';
    return undefined;
  },
  run: (ctx) => {
    const n = ctx.node;
    const t = attrTensor(n, 'value');
    if (t) return [fromIrTensor(t, 'attribute value')];
    if (n.attrs.has('value_float')) return [execTensor('f32', [], Float32Array.of(attrFloat(n, 'value_float', 0)))];
    if (n.attrs.has('value_int')) return [int64Tensor([], [attrInt(n, 'value_int', 0)])];
    const ints = attrInts(n, 'value_ints');
    if (ints) return [int64Tensor([ints.length], ints)];
    const a = n.attrs.get('value_floats');
    if (a?.type === 'floats') return [execTensor('f32', [a.value.length], Float32Array.from(a.value))];
    throw new Error('Constant has no value');
  },
};

const dropout: OpKernel = {
  minInputs: 1,
  run: (ctx) => {
    const x = input(ctx, 0);
    const training = ctx.inputs[2];
    if (training && numberData(training)[0]) throw new Error('training_mode is true: the executor runs inference only');
    const mask = allocTensor('bool', x.shape);
    mask.data.fill(1);
    return [x, mask];
  },
};

const nonZero: OpKernel = {
  minInputs: 1,
  run: (ctx) => {
    const x = input(ctx, 0);
    const d: ArrayLike<number | bigint> = x.dtype === 'i64' ? (x.data as BigInt64Array) : numberData(x);
    const hits: number[] = [];
    for (let k = 0; k < d.length; k++) if (d[k]) hits.push(k);
    const r = x.shape.length;
    const out = allocTensor('i64', [r, hits.length]);
    hits.forEach((flat, j) => {
      let rest = flat;
      for (let a = r - 1; a >= 0; a--) {
        out.data[a * hits.length + j] = BigInt(rest % x.shape[a]!);
        rest = Math.floor(rest / x.shape[a]!);
      }
    });
    return [out];
  },
};

export const SHAPE_OPS: OpTable = {
  '::Shape': shapeOp,
  '::Size': { minInputs: 1, run: (ctx) => [int64Tensor([], [input(ctx, 0).data.length])] },
  '::Reshape': {
    minInputs: 2,
    run: (ctx) => {
      const x = input(ctx, 0);
      return [withShape(x, reshapeTarget(x.shape, intValues(input(ctx, 1)), attrInt(ctx.node, 'allowzero', 0) !== 0))];
    },
  },
  '::Unsqueeze': unsqueeze,
  '::Squeeze': squeeze,
  '::Flatten': flatten,
  '::Expand': expand,
  '::ConstantOfShape': constantOfShape,
  '::Range': range,
  '::Constant': constant,
  '::Identity': { minInputs: 1, run: (ctx) => [input(ctx, 0)] },
  '::Dropout': dropout,
  '::NonZero': nonZero,
};
