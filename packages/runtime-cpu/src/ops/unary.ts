// Elementwise ops of one input: Abs, Neg, Sqrt, Reciprocal, Exp, Log, Erf, Tanh, Relu, Sigmoid, Floor,
// Ceil, Round, Sin, Cos, Sign, Softplus, Not, Gelu (opset 20, exact or tanh form), Clip, and the
// com.microsoft activations Gelu, FastGelu and BiasGelu. Floats compute in float64 and round to the input's
// dtype; Abs, Neg, Relu, Sign also take integers (int64 exactly).

import type { Node } from '@attnopt/ir';
import { attrFloat, attrString } from '../attrs.js';
import { input, type OpContext, type OpKernel, type OpTable } from '../kernel.js';
import { allocTensor, computeArray, type ExecTensor, fromFloats, isFloat, numberData, toNumbers } from '../tensor.js';
import { arithmetic } from './binary.js';
import { erf } from './erf.js';

type Fn = (x: number) => number;

/** f over a float tensor, in its dtype. */
export function mapFloat(x: ExecTensor, f: Fn): ExecTensor {
  if (!isFloat(x.dtype)) throw new Error(`input must be a float tensor, got ${x.dtype}`);
  const src = numberData(x);
  const out = computeArray(x.dtype, src.length);
  for (let k = 0; k < src.length; k++) out[k] = f(src[k]!);
  return fromFloats(x.dtype, x.shape, out);
}

/** f over an integer tensor (int64 through `big`). */
function mapInt(x: ExecTensor, f: Fn, big: (x: bigint) => bigint): ExecTensor {
  const out = allocTensor(x.dtype, x.shape);
  if (x.dtype === 'i64') {
    const s = x.data as BigInt64Array;
    const o = out.data as BigInt64Array;
    for (let k = 0; k < s.length; k++) o[k] = big(s[k]!);
  } else {
    const s = numberData(x);
    const o = out.data as Int32Array;
    for (let k = 0; k < s.length; k++) o[k] = f(s[k]!);
  }
  return out;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
export const geluErf: Fn = (x) => 0.5 * x * (1 + erf(x / Math.SQRT2));
export const geluTanh: Fn = (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
const sigmoid: Fn = (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));
/** Rounds half to even, as ONNX Round does. */
const roundHalfEven: Fn = (x) => {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};
const signOf: Fn = (x) => (x > 0 ? 1 : x < 0 ? -1 : x);

function floatKernel(f: Fn): OpKernel {
  return { minInputs: 1, run: (ctx) => [mapFloat(input(ctx, 0), f)] };
}

function numericKernel(f: Fn, big: (x: bigint) => bigint): OpKernel {
  return {
    minInputs: 1,
    run: (ctx) => {
      const x = input(ctx, 0);
      return [isFloat(x.dtype) ? mapFloat(x, f) : mapInt(x, f, big)];
    },
  };
}

const gelu: OpKernel = {
  minInputs: 1,
  check: (node: Node) => {
    const a = attrString(node, 'approximate', 'none');
    return a === 'none' || a === 'tanh' ? undefined : `Gelu approximate="${a}" is not defined`;
  },
  run: (ctx) => [mapFloat(input(ctx, 0), attrString(ctx.node, 'approximate', 'none') === 'tanh' ? geluTanh : geluErf)],
};

/** Clip: bounds from inputs 1 and 2 (opset 11+) or from the min/max attributes (before). */
const clip: OpKernel = {
  minInputs: 1,
  run: (ctx: OpContext) => {
    const x = input(ctx, 0);
    const bound = (k: number, name: string, fallback: number): number => {
      if (ctx.opset < 11) return attrFloat(ctx.node, name, fallback);
      const t = ctx.inputs[k];
      return t === undefined ? fallback : toNumbers(t)[0]!;
    };
    const lo = bound(1, 'min', -Infinity);
    const hi = bound(2, 'max', Infinity);
    const f: Fn = (v) => (v !== v ? v : Math.min(hi, Math.max(lo, v)));
    if (isFloat(x.dtype)) return [mapFloat(x, f)];
    return [mapInt(x, f, (v) => (v < BigInt(lo) ? BigInt(lo) : hi !== Infinity && v > BigInt(hi) ? BigInt(hi) : v))];
  },
};

/** com.microsoft FastGelu(X, bias?) and BiasGelu(X, bias): the activation of X + bias. */
function biasActivation(f: Fn, biasRequired: boolean): OpKernel {
  const add = { float: (a: number, b: number) => a + b, int: (a: number, b: number) => a + b, big: (a: bigint, b: bigint) => a + b };
  return {
    minInputs: biasRequired ? 2 : 1,
    run: (ctx) => {
      const bias = ctx.inputs[1];
      const x = bias ? arithmetic(input(ctx, 0), bias, add) : input(ctx, 0);
      return [mapFloat(x, f)];
    },
  };
}

export const UNARY_OPS: OpTable = {
  '::Abs': numericKernel(Math.abs, (x) => (x < 0n ? -x : x)),
  '::Neg': numericKernel((x) => -x, (x) => -x),
  '::Relu': numericKernel((x) => (x > 0 ? x : x !== x ? x : 0), (x) => (x > 0n ? x : 0n)),
  '::Sign': numericKernel(signOf, (x) => (x > 0n ? 1n : x < 0n ? -1n : 0n)),
  '::Sqrt': floatKernel(Math.sqrt),
  '::Reciprocal': floatKernel((x) => 1 / x),
  '::Exp': floatKernel(Math.exp),
  '::Log': floatKernel(Math.log),
  '::Erf': floatKernel(erf),
  '::Tanh': floatKernel(Math.tanh),
  '::Sigmoid': floatKernel(sigmoid),
  '::Softplus': floatKernel((x) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)))),
  '::Floor': floatKernel(Math.floor),
  '::Ceil': floatKernel(Math.ceil),
  '::Round': floatKernel(roundHalfEven),
  '::Sin': floatKernel(Math.sin),
  '::Cos': floatKernel(Math.cos),
  '::Gelu': gelu,
  '::Clip': clip,
  '::Not': {
    minInputs: 1,
    run: (ctx) => {
      const x = input(ctx, 0);
      if (x.dtype !== 'bool') throw new Error(`input must be bool, got ${x.dtype}`);
      const out = allocTensor('bool', x.shape);
      const s = x.data as Uint8Array;
      for (let k = 0; k < s.length; k++) out.data[k] = s[k] ? 0 : 1;
      return [out];
    },
  },
  'com.microsoft::Gelu': floatKernel(geluErf),
  'com.microsoft::FastGelu': biasActivation(geluTanh, false),
  'com.microsoft::BiasGelu': biasActivation(geluErf, true),
};
