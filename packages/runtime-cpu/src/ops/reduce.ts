// Reductions ReduceSum/Mean/Max/Min/Prod/SumSquare/L2 (axes an attribute before opset 18, 13 for
// ReduceSum; an optional input from then on; keepdims, noop_with_empty_axes) and the scan CumSum
// (exclusive, reverse). float64 accumulation; integer tensors reduce exactly within 2^53.

import { elementCount } from '@attnopt/ir';
import { attrInt, attrInts } from '../attrs.js';
import { normalizeAxis, stridesOf } from '../broadcast.js';
import { input, type OpContext, type OpKernel, type OpTable } from '../kernel.js';
import { allocTensor, type ExecTensor, fromFloats, intValues, isFloat, numberData, toNumbers } from '../tensor.js';

interface Reducer {
  readonly init: number;
  readonly step: (acc: number, x: number) => number;
  readonly finish: (acc: number, count: number) => number;
}

const REDUCERS: Record<string, Reducer> = {
  ReduceSum: { init: 0, step: (a, x) => a + x, finish: (a) => a },
  ReduceMean: { init: 0, step: (a, x) => a + x, finish: (a, n) => a / n },
  ReduceMax: { init: -Infinity, step: (a, x) => (x > a || x !== x ? x : a), finish: (a) => a },
  ReduceMin: { init: Infinity, step: (a, x) => (x < a || x !== x ? x : a), finish: (a) => a },
  ReduceProd: { init: 1, step: (a, x) => a * x, finish: (a) => a },
  ReduceSumSquare: { init: 0, step: (a, x) => a + x * x, finish: (a) => a },
  ReduceL2: { init: 0, step: (a, x) => a + x * x, finish: (a) => Math.sqrt(a) },
};

/** Reduces `x` over `axes` (all when empty). */
export function reduce(x: ExecTensor, axes: readonly number[], keepdims: boolean, r: Reducer): ExecTensor {
  const rank = x.shape.length;
  const set = new Set(axes.length === 0 ? x.shape.map((_, k) => k) : axes.map((a) => normalizeAxis(a, rank)));
  const kept = x.shape.map((d, k) => (set.has(k) ? 1 : d));
  const outStrides = stridesOf(kept).map((s, k) => (set.has(k) ? 0 : s));
  const n = elementCount(kept);
  const acc = new Float64Array(n).fill(r.init);
  const xd = numberData(x);
  const counter = new Array<number>(rank).fill(0);
  let at = 0;
  for (let k = 0; k < xd.length; k++) {
    acc[at] = r.step(acc[at]!, xd[k]!);
    for (let a = rank - 1; a >= 0; a--) {
      counter[a]!++;
      at += outStrides[a]!;
      if (counter[a]! < x.shape[a]!) break;
      at -= outStrides[a]! * counter[a]!;
      counter[a] = 0;
    }
  }
  const count = xd.length / Math.max(1, n);
  for (let k = 0; k < n; k++) acc[k] = r.finish(acc[k]!, count);
  const shape = keepdims ? kept : x.shape.filter((_, k) => !set.has(k));
  if (isFloat(x.dtype)) return fromFloats(x.dtype, shape, acc);
  const out = allocTensor(x.dtype, shape);
  if (out.dtype === 'i64') (out.data as BigInt64Array).set(Array.from(acc, (v) => BigInt(Math.trunc(v))));
  else (out.data as Int32Array).set(acc);
  return out;
}

/** The opset from which `op` takes its axes as an input. */
const axesInputSince = (op: string) => (op === 'ReduceSum' ? 13 : 18);

function reduceKernel(op: string): OpKernel {
  const r = REDUCERS[op]!;
  return {
    minInputs: 1,
    run: (ctx: OpContext) => {
      const x = input(ctx, 0);
      const keepdims = attrInt(ctx.node, 'keepdims', 1) !== 0;
      const fromInput = ctx.opset >= axesInputSince(op) || (ctx.inputs[1] !== undefined && !ctx.node.attrs.has('axes'));
      const axes = fromInput ? (ctx.inputs[1] ? intValues(ctx.inputs[1]) : []) : (attrInts(ctx.node, 'axes') ?? []);
      if (axes.length === 0 && fromInput && attrInt(ctx.node, 'noop_with_empty_axes', 0) !== 0) return [x];
      return [reduce(x, axes, keepdims, r)];
    },
  };
}

/** CumSum(x, axis): running sums along the axis; exclusive leaves out the current element, reverse runs backward. */
const cumSum: OpKernel = {
  minInputs: 2,
  run: (ctx) => {
    const x = input(ctx, 0);
    const axis = normalizeAxis(toNumbers(input(ctx, 1))[0]!, x.shape.length);
    const exclusive = attrInt(ctx.node, 'exclusive', 0) !== 0;
    const reverse = attrInt(ctx.node, 'reverse', 0) !== 0;
    const len = x.shape[axis]!;
    const inner = elementCount(x.shape.slice(axis + 1));
    const outer = elementCount(x.shape.slice(0, axis));
    const xd = numberData(x);
    const out = new Float64Array(xd.length);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let sum = 0;
        for (let s = 0; s < len; s++) {
          const k = o * len * inner + (reverse ? len - 1 - s : s) * inner + i;
          if (exclusive) {
            out[k] = sum;
            sum += xd[k]!;
          } else {
            sum += xd[k]!;
            out[k] = sum;
          }
        }
      }
    }
    if (isFloat(x.dtype)) return [fromFloats(x.dtype, x.shape, out)];
    const t = allocTensor(x.dtype, x.shape);
    if (t.dtype === 'i64') (t.data as BigInt64Array).set(Array.from(out, (v) => BigInt(v)));
    else (t.data as Int32Array).set(out);
    return [t];
  },
};

export const REDUCE_OPS: OpTable = {
  ...Object.fromEntries(Object.keys(REDUCERS).map((op) => [`::${op}`, reduceKernel(op)])),
  '::CumSum': cumSum,
};
