// Numpy-style (multidirectional) broadcasting: the common shape of several inputs and, per input, the
// element each output position reads.

import { elementCount } from '@attnopt/ir';
import { shapeString } from './tensor.js';

/** The broadcast shape of `shapes`; throws a message naming the shapes when they do not broadcast. */
export function broadcastShapes(shapes: readonly (readonly number[])[]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let k = 0; k < s.length; k++) {
      const at = rank - s.length + k;
      const d = s[k]!;
      const o = out[at]!;
      if (d === o || d === 1) continue;
      if (o === 1) out[at] = d;
      else throw new Error(`shapes ${shapes.map(shapeString).join(', ')} do not broadcast`);
    }
  }
  return out;
}

/** Row-major strides of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let s = 1;
  for (let k = shape.length - 1; k >= 0; k--) {
    st[k] = s;
    s *= shape[k]!;
  }
  return st;
}

/**
 * For every element of `outShape` (row-major), the index into a tensor of `inShape` broadcast to it;
 * undefined when the input already has the output's layout (read element k at k).
 */
export function broadcastIndex(inShape: readonly number[], outShape: readonly number[]): Int32Array | undefined {
  const n = elementCount(outShape);
  if (elementCount(inShape) === n && inShape.length <= outShape.length) return undefined;
  const rank = outShape.length;
  const inStrides = stridesOf(inShape);
  // stride of each output axis into the input: 0 where broadcast
  const st = outShape.map((_, k) => {
    const j = k - (rank - inShape.length);
    return j < 0 || inShape[j] === 1 ? 0 : inStrides[j]!;
  });
  const index = new Int32Array(n);
  if (n === 0) return index;
  const counter = new Array<number>(rank).fill(0);
  let at = 0;
  for (let k = 0; k < n; k++) {
    index[k] = at;
    for (let a = rank - 1; a >= 0; a--) {
      counter[a]!++;
      at += st[a]!;
      if (counter[a]! < outShape[a]!) break;
      at -= st[a]! * counter[a]!;
      counter[a] = 0;
    }
  }
  return index;
}

/** An axis in [-rank, rank) as an index in [0, rank); throws naming the axis otherwise. */
export function normalizeAxis(axis: number, rank: number, what = 'axis'): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) throw new Error(`${what} ${axis} is out of range for rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}
