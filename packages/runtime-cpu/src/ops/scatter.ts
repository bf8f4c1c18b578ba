// ScatterElements(data, indices, updates) along `axis` and ScatterND(data, indices, updates): a copy of data
// with the addressed elements (ScatterElements) or slices (ScatterND) replaced by updates, or combined with
// them by `reduction` (add, mul from opset 16; max, min from 18). Updates are applied in row-major order, so
// with reduction none a repeated index keeps the last update. Negative indices wrap.

import { floatToHalf, halfToFloat, type Node } from '@attnopt/ir';
import { attrInt, attrString } from '../attrs.js';
import { normalizeAxis, stridesOf } from '../broadcast.js';
import { input, type OpTable } from '../kernel.js';
import { type ExecTensor, intValues, isFloat, shapeString } from '../tensor.js';
import { tupleOffsets } from './gather-nd.js';

type Reduction = 'none' | 'add' | 'mul' | 'max' | 'min';
const REDUCTIONS: readonly string[] = ['none', 'add', 'mul', 'max', 'min'];

type Combine = (out: ExecTensor['data'], at: number, from: ExecTensor['data'], k: number) => void;

const NUMBER: Record<Exclude<Reduction, 'none'>, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  mul: (a, b) => a * b,
  max: (a, b) => (a !== a || b !== b ? NaN : Math.max(a, b)),
  min: (a, b) => (a !== a || b !== b ? NaN : Math.min(a, b)),
};
const BIG: Record<Exclude<Reduction, 'none'>, (a: bigint, b: bigint) => bigint> = {
  add: (a, b) => BigInt.asIntN(64, a + b),
  mul: (a, b) => BigInt.asIntN(64, a * b),
  max: (a, b) => (a > b ? a : b),
  min: (a, b) => (a < b ? a : b),
};

/** How one update element lands on one output element, for the dtype. */
function combiner(dtype: ExecTensor['dtype'], reduction: Reduction): Combine {
  if (reduction === 'none') return (out, at, from, k) => ((out as Writable)[at] = from[k]!);
  if (dtype === 'i64') {
    const f = BIG[reduction];
    return (out, at, from, k) => ((out as BigInt64Array)[at] = f((out as BigInt64Array)[at]!, (from as BigInt64Array)[k]!));
  }
  const f = NUMBER[reduction];
  if (dtype === 'f16') {
    return (out, at, from, k) => ((out as Uint16Array)[at] = floatToHalf(f(halfToFloat((out as Uint16Array)[at]!), halfToFloat((from as Uint16Array)[k]!))));
  }
  return (out, at, from, k) => ((out as Writable)[at] = f((out as ArrayLike<number>)[at]!, (from as ArrayLike<number>)[k]!));
}
type Writable = { [k: number]: number | bigint };

function copyOf(t: ExecTensor): ExecTensor {
  return { dtype: t.dtype, shape: [...t.shape], data: t.data.slice() as ExecTensor['data'] };
}

function checkCommon(data: ExecTensor, indices: ExecTensor, updates: ExecTensor): void {
  if (updates.dtype !== data.dtype) throw new Error(`updates are ${updates.dtype}, data is ${data.dtype}`);
  if (isFloat(indices.dtype)) throw new Error(`indices must be an integer tensor, got ${indices.dtype}`);
}

export function scatterElements(data: ExecTensor, indices: ExecTensor, updates: ExecTensor, axisAttr: number, reduction: Reduction): ExecTensor {
  checkCommon(data, indices, updates);
  const r = data.shape.length;
  const axis = normalizeAxis(axisAttr, r);
  if (indices.shape.length !== r || indices.shape.join() !== updates.shape.join()) {
    throw new Error(`indices ${shapeString(indices.shape)} and updates ${shapeString(updates.shape)} must have one shape, of the rank of data ${shapeString(data.shape)}`);
  }
  const out = copyOf(data);
  const combine = combiner(data.dtype, reduction);
  const ds = stridesOf(data.shape);
  const is = stridesOf(indices.shape);
  const idx = intValues(indices);
  const dim = data.shape[axis]!;
  for (let k = 0; k < idx.length; k++) {
    let rest = k;
    let at = 0;
    for (let a = 0; a < r; a++) {
      const c = Math.floor(rest / is[a]!);
      rest -= c * is[a]!;
      let j = c;
      if (a === axis) {
        j = idx[k]!;
        if (j < -dim || j >= dim) throw new Error(`index ${j} is out of range for axis ${axis} of size ${dim}`);
        if (j < 0) j += dim;
      } else if (c >= data.shape[a]!) {
        throw new Error(`indices ${shapeString(indices.shape)} exceed data ${shapeString(data.shape)} on axis ${a}`);
      }
      at += j * ds[a]!;
    }
    combine(out.data, at, updates.data, k);
  }
  return out;
}

export function scatterND(data: ExecTensor, indices: ExecTensor, updates: ExecTensor, reduction: Reduction): ExecTensor {
  checkCommon(data, indices, updates);
  const { offsets, k, slice } = tupleOffsets(data, indices, 0);
  const want = [...indices.shape.slice(0, -1), ...data.shape.slice(k)];
  if (want.join() !== updates.shape.join()) throw new Error(`updates ${shapeString(updates.shape)} must have shape ${shapeString(want)} (indices.shape[:-1] ++ data.shape[${k}:])`);
  const out = copyOf(data);
  const combine = combiner(data.dtype, reduction);
  let u = 0;
  for (const base of offsets) for (let c = 0; c < slice; c++) combine(out.data, base + c, updates.data, u++);
  return out;
}

const checkReduction = (node: Node): string | undefined => {
  const r = attrString(node, 'reduction', 'none');
  return REDUCTIONS.includes(r) ? undefined : `reduction "${r}" is not one of ${REDUCTIONS.join(', ')}`;
};

export const SCATTER_OPS: OpTable = {
  '::ScatterElements': {
    minInputs: 3,
    check: checkReduction,
    run: (ctx) => [scatterElements(input(ctx, 0), input(ctx, 1), input(ctx, 2), attrInt(ctx.node, 'axis', 0), attrString(ctx.node, 'reduction', 'none') as Reduction)],
  },
  '::ScatterND': {
    minInputs: 3,
    check: checkReduction,
    run: (ctx) => [scatterND(input(ctx, 0), input(ctx, 1), input(ctx, 2), attrString(ctx.node, 'reduction', 'none') as Reduction)],
  },
};
