// Softmax and LogSoftmax (opset 13+: along one axis; before 13: over the input flattened to 2-D at the
// axis, default axis 1), LayerNormalization (opset 17: over the dims from `axis` on, optional Mean and
// InvStdDev outputs) and com.microsoft SkipLayerNormalization. float64 compute, NaN and +-Inf propagate.

import { elementCount } from '@attnopt/ir';
import { attrFloat, attrInt } from '../attrs.js';
import { broadcastIndex, broadcastShapes, normalizeAxis } from '../broadcast.js';
import { input, type OpContext, type OpKernel, type OpTable } from '../kernel.js';
import { type ExecTensor, fromFloats, isFloat, numberData, shapeString } from '../tensor.js';
import { arithmetic } from './binary.js';

/** Softmax (or log-softmax) of rows of `len` elements `inner` apart, `outer * inner` of them. */
export function softmaxRows(x: ArrayLike<number>, outer: number, len: number, inner: number, log: boolean): Float64Array {
  const out = new Float64Array(outer * len * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * len * inner + i;
      let max = -Infinity;
      for (let k = 0; k < len; k++) {
        const v = x[base + k * inner]!;
        if (v > max || v !== v) max = v;
        if (max !== max) break;
      }
      let sum = 0;
      for (let k = 0; k < len; k++) sum += Math.exp(x[base + k * inner]! - max);
      if (log) {
        const lse = Math.log(sum);
        for (let k = 0; k < len; k++) out[base + k * inner] = x[base + k * inner]! - max - lse;
      } else {
        for (let k = 0; k < len; k++) out[base + k * inner] = Math.exp(x[base + k * inner]! - max) / sum;
      }
    }
  }
  return out;
}

function softmaxKernel(log: boolean): OpKernel {
  return {
    minInputs: 1,
    run: (ctx: OpContext) => {
      const x = input(ctx, 0);
      if (!isFloat(x.dtype)) throw new Error(`input must be a float tensor, got ${x.dtype}`);
      const rank = x.shape.length;
      const legacy = ctx.opset < 13;
      if (rank === 0) return [fromFloats(x.dtype, x.shape, Float64Array.of(log ? 0 : 1))];
      const axis = normalizeAxis(attrInt(ctx.node, 'axis', legacy ? 1 : -1), rank);
      const outer = elementCount(x.shape.slice(0, axis));
      const len = legacy ? elementCount(x.shape.slice(axis)) : x.shape[axis]!;
      const inner = legacy ? 1 : elementCount(x.shape.slice(axis + 1));
      return [fromFloats(x.dtype, x.shape, softmaxRows(numberData(x), outer, len, inner, log))];
    },
  };
}

interface Normalized {
  readonly y: ExecTensor;
  readonly mean: ExecTensor;
  readonly invStdDev: ExecTensor;
}

/** (x - mean) / sqrt(var + eps) * scale + bias over the trailing dims from `axis`. */
export function layerNorm(x: ExecTensor, scale: ExecTensor, bias: ExecTensor | undefined, axis: number, epsilon: number, rms = false): Normalized {
  if (!isFloat(x.dtype)) throw new Error(`input must be a float tensor, got ${x.dtype}`);
  const a = normalizeAxis(axis, x.shape.length);
  const normShape = x.shape.slice(a);
  const outer = elementCount(x.shape.slice(0, a));
  const len = elementCount(normShape);
  const reader = (t: ExecTensor, name: string) => {
    if (broadcastShapes([t.shape, normShape]).join() !== normShape.join()) {
      throw new Error(`${name} ${shapeString(t.shape)} does not broadcast to the normalized shape ${shapeString(normShape)}`);
    }
    const idx = broadcastIndex(t.shape, normShape);
    const d = numberData(t);
    return (k: number) => d[idx ? idx[k]! : k]!;
  };
  const s = reader(scale, 'Scale');
  const b = bias ? reader(bias, 'B') : () => 0;
  const xd = numberData(x);
  const y = new Float64Array(xd.length);
  const means = new Float64Array(outer);
  const inv = new Float64Array(outer);
  for (let o = 0; o < outer; o++) {
    const base = o * len;
    let mean = 0;
    if (!rms) {
      for (let k = 0; k < len; k++) mean += xd[base + k]!;
      mean /= len;
    }
    let variance = 0;
    for (let k = 0; k < len; k++) variance += (xd[base + k]! - mean) ** 2;
    variance /= len;
    const r = 1 / Math.sqrt(variance + epsilon);
    means[o] = mean;
    inv[o] = r;
    for (let k = 0; k < len; k++) y[base + k] = (xd[base + k]! - mean) * r * s(k) + b(k);
  }
  const statShape = [...x.shape.slice(0, a), ...normShape.map(() => 1)];
  const statType = x.dtype === 'f16' ? 'f32' : x.dtype;
  return { y: fromFloats(x.dtype, x.shape, y), mean: fromFloats(statType, statShape, means), invStdDev: fromFloats(statType, statShape, inv) };
}

const layerNormalization: OpKernel = {
  minInputs: 2,
  check: (node) => (attrInt(node, 'stash_type', 1) === 1 ? undefined : `LayerNormalization stash_type=${attrInt(node, 'stash_type')} is not supported (only 1, float32)`),
  run: (ctx) => {
    const r = layerNorm(input(ctx, 0), input(ctx, 1), ctx.inputs[2], attrInt(ctx.node, 'axis', -1), attrFloat(ctx.node, 'epsilon', 1e-5));
    return [r.y, r.mean, r.invStdDev];
  },
};

const add = { float: (a: number, b: number) => a + b, int: (a: number, b: number) => a + b, big: (a: bigint, b: bigint) => a + b };

/** com.microsoft SkipLayerNormalization(input, skip, gamma, beta?, bias?): LayerNorm(input + skip + bias) over the last axis. */
const skipLayerNormalization: OpKernel = {
  minInputs: 3,
  run: (ctx) => {
    let sum = arithmetic(input(ctx, 0), input(ctx, 1), add);
    const bias = ctx.inputs[4];
    if (bias) sum = arithmetic(sum, bias, add);
    const r = layerNorm(sum, input(ctx, 2), ctx.inputs[3], -1, attrFloat(ctx.node, 'epsilon', 1e-12));
    return [r.y, r.mean, r.invStdDev, sum];
  },
};

export const NORMALIZATION_OPS: OpTable = {
  '::Softmax': softmaxKernel(false),
  '::LogSoftmax': softmaxKernel(true),
  '::LayerNormalization': layerNormalization,
  'com.microsoft::SkipLayerNormalization': skipLayerNormalization,
};
