// Pad: modes constant, reflect, edge, wrap (opset 19). Pads and the constant come from inputs from opset 11
// (the `axes` input from 18), from attributes before. Negative pads remove elements first; the remaining
// elements are then padded, so reflect/edge/wrap read the cropped tensor (as ONNX's reference does).

import { elementCount } from '@attnopt/ir';
import { attrFloat, attrInts, attrString } from '../attrs.js';
import { normalizeAxis } from '../broadcast.js';
import { input, type OpContext, type OpKernel, type OpTable } from '../kernel.js';
import { allocTensor, type ExecTensor, fromFloats, intValues, shapeString } from '../tensor.js';

type Elements = ArrayLike<number | bigint>;
type Writable = { [k: number]: number | bigint };

export type PadMode = 'constant' | 'reflect' | 'edge' | 'wrap';
const MODES: readonly string[] = ['constant', 'reflect', 'edge', 'wrap'];

/** Source coordinate of padded position c (c < 0 or c >= n lie in the padding), or -1 for the constant. */
function sourceOf(c: number, n: number, mode: PadMode): number {
  if (c >= 0 && c < n) return c;
  switch (mode) {
    case 'constant':
      return -1;
    case 'edge':
      return c < 0 ? 0 : n - 1;
    case 'wrap':
      return ((c % n) + n) % n;
    case 'reflect': {
      if (n === 1) return 0;
      const period = 2 * (n - 1);
      const m = ((c % period) + period) % period;
      return m < n ? m : period - m;
    }
  }
}

/**
 * x padded by `begins`/`ends` per axis (negative: cropped) with `mode`; `value` fills constant padding (a
 * one-element tensor of x's dtype, or undefined for 0).
 */
export function pad(x: ExecTensor, begins: readonly number[], ends: readonly number[], mode: PadMode, value: ExecTensor | undefined): ExecTensor {
  const r = x.shape.length;
  // per axis: output position -> source coordinate in x (-1: the constant)
  const maps: Int32Array[] = [];
  const shape: number[] = [];
  for (let a = 0; a < r; a++) {
    const d = x.shape[a]!;
    const b = begins[a]!;
    const e = ends[a]!;
    const lo = Math.max(0, -b);
    const kept = d - lo - Math.max(0, -e);
    if (kept < 0) throw new Error(`pads ${b}, ${e} remove more than the ${d} elements of axis ${a}`);
    const out = kept + Math.max(0, b) + Math.max(0, e);
    if (mode !== 'constant' && kept === 0 && out > 0) throw new Error(`${mode} padding of axis ${a}: there are no elements to read`);
    const map = new Int32Array(out);
    for (let o = 0; o < out; o++) {
      const s = sourceOf(o - Math.max(0, b), kept, mode);
      map[o] = s < 0 ? -1 : lo + s;
    }
    maps.push(map);
    shape.push(out);
  }
  const result = allocTensor(x.dtype, shape);
  const n = elementCount(shape);
  if (n === 0) return result;
  const fill = value === undefined ? undefined : value.data[0];
  const src = x.data as Elements;
  const dst = result.data as Writable;
  const strides = new Array<number>(r);
  let s = 1;
  for (let a = r - 1; a >= 0; a--) {
    strides[a] = s;
    s *= x.shape[a]!;
  }
  const counter = new Array<number>(r).fill(0);
  for (let k = 0; k < n; k++) {
    let at = 0;
    for (let a = 0; a < r; a++) {
      const c = maps[a]![counter[a]!]!;
      if (c < 0) {
        at = -1;
        break;
      }
      at += c * strides[a]!;
    }
    if (at >= 0) dst[k] = src[at]!;
    else if (fill !== undefined) dst[k] = fill;
    for (let a = r - 1; a >= 0; a--) {
      if (++counter[a]! < shape[a]!) break;
      counter[a] = 0;
    }
  }
  return result;
}

/** The constant of opset < 11 (the float attribute `value`) as a tensor of x's dtype. */
function attributeValue(ctx: OpContext, x: ExecTensor): ExecTensor | undefined {
  const v = attrFloat(ctx.node, 'value', 0);
  if (v === 0) return undefined;
  if (x.dtype === 'f32' || x.dtype === 'f64' || x.dtype === 'f16') return fromFloats(x.dtype, [], Float64Array.of(v));
  const t = allocTensor(x.dtype, []);
  (t.data as Writable)[0] = x.dtype === 'i64' ? BigInt(Math.trunc(v)) : v;
  return t;
}

const padOp: OpKernel = {
  minInputs: 1,
  check: (node) => {
    const mode = attrString(node, 'mode', 'constant');
    return MODES.includes(mode) ? undefined : `Pad mode "${mode}" is not one of ${MODES.join(', ')}`;
  },
  run: (ctx) => {
    const x = input(ctx, 0);
    const r = x.shape.length;
    const mode = attrString(ctx.node, 'mode', 'constant') as PadMode;
    let pads: number[];
    let value: ExecTensor | undefined;
    let axes = x.shape.map((_, a) => a);
    if (ctx.opset < 11) {
      pads = attrInts(ctx.node, 'pads') ?? [];
      value = attributeValue(ctx, x);
    } else {
      pads = intValues(input(ctx, 1));
      value = ctx.inputs[2];
      if (value !== undefined) {
        if (value.data.length !== 1) throw new Error(`constant_value must hold one element, got ${shapeString(value.shape)}`);
        if (value.dtype !== x.dtype) throw new Error(`constant_value is ${value.dtype}, data is ${x.dtype}`);
      }
      if (ctx.inputs[3] !== undefined) axes = intValues(ctx.inputs[3]).map((a) => normalizeAxis(a, r, 'pad axis'));
    }
    if (pads.length !== 2 * axes.length) throw new Error(`pads has ${pads.length} entries, expected ${2 * axes.length} (begin and end for ${axes.length} axes)`);
    const begins = new Array<number>(r).fill(0);
    const ends = new Array<number>(r).fill(0);
    axes.forEach((a, k) => {
      begins[a] = pads[k]!;
      ends[a] = pads[k + axes.length]!;
    });
    return [pad(x, begins, ends, mode, value)];
  },
};

export const PAD_OPS: OpTable = { '::Pad': padOp };
