// TopK (k from input 1 from opset 10, the attribute before; largest and sorted from 11) and ArgMax/ArgMin
// (keepdims, select_last_index). Equal values keep index order: TopK puts the lower index first and ArgMax/
// ArgMin pick the first extreme (the last with select_last_index), as ONNX specifies. NaN ranks above every
// number (first for largest, last for smallest). TopK always returns its k elements sorted (any order is
// allowed when sorted = 0). int64 compares exactly.

import { elementCount } from '@attnopt/ir';
import { attrInt } from '../attrs.js';
import { normalizeAxis } from '../broadcast.js';
import { input, type OpKernel, type OpTable } from '../kernel.js';
import { allocTensor, type ExecTensor, intValues, numberData, shapeString } from '../tensor.js';

type Elements = ArrayLike<number | bigint>;
type Writable = { [k: number]: number | bigint };

/** Ascending order of a and b (NaN above everything): < 0, 0 or > 0. */
function order(a: number | bigint, b: number | bigint): number {
  if (typeof a === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
  const an = a !== a;
  const bn = b !== b;
  if (an || bn) return an === bn ? 0 : an ? 1 : -1;
  return a < (b as number) ? -1 : a > (b as number) ? 1 : 0;
}

/** The elements to compare: int64 as bigints, float16 decoded, the rest as stored. */
function comparable(x: ExecTensor): Elements {
  return x.dtype === 'i64' ? (x.data as BigInt64Array) : numberData(x);
}

/** The lane geometry of `axis`: outer count, its length, inner count. */
function lanes(x: ExecTensor, axis: number): { outer: number; len: number; inner: number } {
  return { outer: elementCount(x.shape.slice(0, axis)), len: x.shape[axis]!, inner: elementCount(x.shape.slice(axis + 1)) };
}

export function topK(x: ExecTensor, k: number, axisAttr: number, largest: boolean): [ExecTensor, ExecTensor] {
  const axis = normalizeAxis(axisAttr, x.shape.length);
  const { outer, len, inner } = lanes(x, axis);
  if (!Number.isInteger(k) || k < 0 || k > len) throw new Error(`k = ${k} is out of range for axis ${axis} of ${shapeString(x.shape)}`);
  const shape = x.shape.map((d, a) => (a === axis ? k : d));
  const values = allocTensor(x.dtype, shape);
  const indices = allocTensor('i64', shape);
  const v = comparable(x);
  const raw = x.data as Elements;
  const ov = values.data as Writable;
  const oi = indices.data;
  const sign = largest ? -1 : 1;
  const lane = new Array<number>(len);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * len * inner + i;
      for (let j = 0; j < len; j++) lane[j] = j;
      lane.sort((a, b) => sign * order(v[base + a * inner]!, v[base + b * inner]!) || a - b);
      const outBase = o * k * inner + i;
      for (let j = 0; j < k; j++) {
        ov[outBase + j * inner] = raw[base + lane[j]! * inner]!;
        oi[outBase + j * inner] = BigInt(lane[j]!);
      }
    }
  }
  return [values, indices];
}

/** Index of the largest (or smallest) element per lane of `axis`; ties to the first, or the last. */
export function argExtreme(x: ExecTensor, axisAttr: number, keepdims: boolean, largest: boolean, last: boolean): ExecTensor {
  const axis = normalizeAxis(axisAttr, x.shape.length);
  const { outer, len, inner } = lanes(x, axis);
  if (len === 0) throw new Error(`axis ${axis} of ${shapeString(x.shape)} is empty`);
  const shape = keepdims ? x.shape.map((d, a) => (a === axis ? 1 : d)) : x.shape.filter((_, a) => a !== axis);
  const out = allocTensor('i64', shape);
  const v = comparable(x);
  const sign = largest ? 1 : -1;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * len * inner + i;
      let best = 0;
      for (let j = 1; j < len; j++) {
        const c = sign * order(v[base + j * inner]!, v[base + best * inner]!);
        if (c > 0 || (c === 0 && last)) best = j;
      }
      out.data[o * inner + i] = BigInt(best);
    }
  }
  return out;
}

const topKOp: OpKernel = {
  minInputs: 1,
  run: (ctx) => {
    const x = input(ctx, 0);
    let k: number | undefined;
    if (ctx.opset < 10) k = attrInt(ctx.node, 'k');
    else {
      const kt = input(ctx, 1);
      if (kt.data.length !== 1) throw new Error(`K must hold one element, got ${shapeString(kt.shape)}`);
      k = intValues(kt)[0];
    }
    if (k === undefined) throw new Error('TopK needs k');
    return topK(x, k, attrInt(ctx.node, 'axis', -1), attrInt(ctx.node, 'largest', 1) !== 0);
  },
};

function argKernel(largest: boolean): OpKernel {
  return {
    minInputs: 1,
    run: (ctx) => [
      argExtreme(input(ctx, 0), attrInt(ctx.node, 'axis', 0), attrInt(ctx.node, 'keepdims', 1) !== 0, largest, attrInt(ctx.node, 'select_last_index', 0) !== 0),
    ],
  };
}

export const TOPK_OPS: OpTable = {
  '::TopK': topKOp,
  '::ArgMax': argKernel(true),
  '::ArgMin': argKernel(false),
};
