// Elementwise ops of two or more inputs with numpy broadcasting: arithmetic (Add, Sub, Mul, Div, Pow, Mod,
// Max, Min, Sum, Mean), comparisons (Equal, Less, Greater, LessOrEqual, GreaterOrEqual), logic (And, Or, Xor)
// and Where. Floats compute in float64 and round to the output dtype (float16 through float32); int64
// computes in bigint with two's-complement wrap, like the C++ kernels of onnxruntime.

import { elementCount } from '@attnopt/ir';
import { attrInt } from '../attrs.js';
import { broadcastIndex, broadcastShapes } from '../broadcast.js';
import { input, type OpContext, type OpKernel, type OpTable } from '../kernel.js';
import { allocTensor, computeArray, type ExecDType, type ExecTensor, fromFloats, isFloat, numberData } from '../tensor.js';

type NumFn = (a: number, b: number) => number;
type BigFn = (a: bigint, b: bigint) => bigint;
type Writable<T> = { [k: number]: T; readonly length: number };

interface Arith {
  readonly float: NumFn;
  /** int32/int8/uint8 (stored with the typed array's wrap). */
  readonly int: NumFn;
  readonly big: BigFn;
}

function sameDtype(a: ExecTensor, b: ExecTensor): void {
  if (a.dtype !== b.dtype) throw new Error(`inputs have different dtypes ${a.dtype} and ${b.dtype}`);
}

function loop<T, U>(a: ArrayLike<T>, b: ArrayLike<T>, out: Writable<U>, ia: Int32Array | undefined, ib: Int32Array | undefined, f: (x: T, y: T) => U): void {
  const n = out.length;
  if (!ia && !ib) for (let k = 0; k < n; k++) out[k] = f(a[k]!, b[k]!);
  else if (!ia) for (let k = 0; k < n; k++) out[k] = f(a[k]!, b[ib![k]!]!);
  else if (!ib) for (let k = 0; k < n; k++) out[k] = f(a[ia[k]!]!, b[k]!);
  else for (let k = 0; k < n; k++) out[k] = f(a[ia[k]!]!, b[ib[k]!]!);
}

/** a op b, broadcast, in a's dtype (b converted for Pow's exponent when `mixed`). */
export function arithmetic(a: ExecTensor, b: ExecTensor, op: Arith, mixed = false): ExecTensor {
  if (!mixed) sameDtype(a, b);
  if (a.dtype === 'bool') throw new Error('arithmetic on bool tensors is not defined');
  const shape = broadcastShapes([a.shape, b.shape]);
  const ia = broadcastIndex(a.shape, shape);
  const ib = broadcastIndex(b.shape, shape);
  const n = elementCount(shape);
  if (isFloat(a.dtype)) {
    const out = computeArray(a.dtype, n);
    loop(numberData(a), numberData(b), out, ia, ib, op.float);
    return fromFloats(a.dtype, shape, out);
  }
  if (a.dtype === 'i64' && !mixed) {
    const out = allocTensor('i64', shape);
    loop(a.data as BigInt64Array, b.data as BigInt64Array, out.data, ia, ib, op.big);
    return out;
  }
  if (a.dtype === 'i64') {
    const out = allocTensor('i64', shape);
    loop(numberData(a), numberData(b), out.data, ia, ib, (x, y) => BigInt(Math.trunc(op.int(x, y))));
    return out;
  }
  const out = allocTensor(a.dtype, shape);
  loop(numberData(a), numberData(b), out.data as Writable<number>, ia, ib, op.int);
  return out;
}

const intDiv: NumFn = (x, y) => {
  if (y === 0) throw new Error('integer division by zero');
  return Math.trunc(x / y);
};
const bigDiv: BigFn = (x, y) => {
  if (y === 0n) throw new Error('integer division by zero');
  return x / y;
};
const nanMax: NumFn = (x, y) => (x !== x || y !== y ? NaN : x > y ? x : y);
const nanMin: NumFn = (x, y) => (x !== x || y !== y ? NaN : x < y ? x : y);

const ARITH: Record<string, Arith> = {
  Add: { float: (x, y) => x + y, int: (x, y) => x + y, big: (x, y) => x + y },
  Sub: { float: (x, y) => x - y, int: (x, y) => x - y, big: (x, y) => x - y },
  Mul: { float: (x, y) => x * y, int: (x, y) => Math.imul(x, y), big: (x, y) => x * y },
  Div: { float: (x, y) => x / y, int: intDiv, big: bigDiv },
  Max: { float: nanMax, int: nanMax, big: (x, y) => (x > y ? x : y) },
  Min: { float: nanMin, int: nanMin, big: (x, y) => (x < y ? x : y) },
  Sum: { float: (x, y) => x + y, int: (x, y) => x + y, big: (x, y) => x + y },
};

const POW: Arith = {
  float: Math.pow,
  int: (x, y) => Math.trunc(Math.pow(x, y)),
  big: (x, y) => (y >= 0n ? x ** y : BigInt(Math.trunc(Math.pow(Number(x), Number(y))))),
};

/** Mod with fmod=0: the remainder takes the divisor's sign (integers only); fmod=1: C fmod, the dividend's sign. */
const MOD_INT: Arith = {
  float: (x, y) => x % y,
  int: (x, y) => {
    if (y === 0) throw new Error('integer modulo by zero');
    const r = x % y;
    return r !== 0 && r < 0 !== y < 0 ? r + y : r;
  },
  big: (x, y) => {
    if (y === 0n) throw new Error('integer modulo by zero');
    const r = x % y;
    return r !== 0n && r < 0n !== y < 0n ? r + y : r;
  },
};
const MOD_FMOD: Arith = { ...MOD_INT, int: (x, y) => MOD_INT.float(x, y), big: (x, y) => (y === 0n ? MOD_INT.big(x, y) : x % y) };

const mod: OpKernel = {
  minInputs: 2,
  run: (ctx) => {
    const a = input(ctx, 0);
    const fmod = attrInt(ctx.node, 'fmod', 0) !== 0;
    if (isFloat(a.dtype) && !fmod) throw new Error('Mod of floats needs fmod=1');
    return [arithmetic(a, input(ctx, 1), fmod ? MOD_FMOD : MOD_INT)];
  },
};

function binaryKernel(op: Arith): OpKernel {
  return { minInputs: 2, run: (ctx) => [arithmetic(input(ctx, 0), input(ctx, 1), op)] };
}

/** Max, Min, Sum, Mean of one or more inputs. */
function variadicKernel(name: string, op: Arith, mean = false): OpKernel {
  return {
    minInputs: 1,
    run: (ctx: OpContext) => {
      const xs = ctx.inputs.map((t, k) => t ?? input(ctx, k));
      let acc = xs[0]!;
      for (const x of xs.slice(1)) acc = arithmetic(acc, x, op);
      if (!mean) return [acc];
      if (!isFloat(acc.dtype)) throw new Error(`${name} needs float inputs, got ${acc.dtype}`);
      const n = xs.length;
      return [fromFloats(acc.dtype, acc.shape, Float64Array.from(numberData(acc), (v) => v / n))];
    },
  };
}

type Compare = { readonly num: (a: number, b: number) => boolean; readonly big: (a: bigint, b: bigint) => boolean };

function compare(a: ExecTensor, b: ExecTensor, op: Compare): ExecTensor {
  sameDtype(a, b);
  const shape = broadcastShapes([a.shape, b.shape]);
  const out = allocTensor('bool', shape);
  const ia = broadcastIndex(a.shape, shape);
  const ib = broadcastIndex(b.shape, shape);
  if (a.dtype === 'i64') loop(a.data as BigInt64Array, b.data as BigInt64Array, out.data, ia, ib, (x, y) => (op.big(x, y) ? 1 : 0));
  else loop(numberData(a), numberData(b), out.data, ia, ib, (x, y) => (op.num(x, y) ? 1 : 0));
  return out;
}

function compareKernel(op: Compare): OpKernel {
  return { minInputs: 2, run: (ctx) => [compare(input(ctx, 0), input(ctx, 1), op)] };
}

function logicKernel(f: (a: number, b: number) => number): OpKernel {
  return {
    minInputs: 2,
    run: (ctx) => {
      const a = input(ctx, 0);
      const b = input(ctx, 1);
      if (a.dtype !== 'bool' || b.dtype !== 'bool') throw new Error(`inputs must be bool, got ${a.dtype} and ${b.dtype}`);
      const shape = broadcastShapes([a.shape, b.shape]);
      const out = allocTensor('bool', shape);
      loop(a.data as Uint8Array, b.data as Uint8Array, out.data, broadcastIndex(a.shape, shape), broadcastIndex(b.shape, shape), f);
      return [out];
    },
  };
}

/** Where(cond, x, y): x where cond, else y, all three broadcast. */
export function where(cond: ExecTensor, x: ExecTensor, y: ExecTensor): ExecTensor {
  if (cond.dtype !== 'bool') throw new Error(`condition must be bool, got ${cond.dtype}`);
  sameDtype(x, y);
  const shape = broadcastShapes([cond.shape, x.shape, y.shape]);
  const ic = broadcastIndex(cond.shape, shape);
  const ix = broadcastIndex(x.shape, shape);
  const iy = broadcastIndex(y.shape, shape);
  const out = allocTensor(x.dtype as ExecDType, shape);
  const c = cond.data as Uint8Array;
  const xd = x.data as ArrayLike<number | bigint>;
  const yd = y.data as ArrayLike<number | bigint>;
  const od = out.data as Writable<number | bigint>;
  for (let k = 0; k < od.length; k++) od[k] = c[ic ? ic[k]! : k] ? xd[ix ? ix[k]! : k]! : yd[iy ? iy[k]! : k]!;
  return out;
}

export const BINARY_OPS: OpTable = {
  '::Add': binaryKernel(ARITH['Add']!),
  '::Sub': binaryKernel(ARITH['Sub']!),
  '::Mul': binaryKernel(ARITH['Mul']!),
  '::Div': binaryKernel(ARITH['Div']!),
  '::Mod': mod,
  '::Pow': { minInputs: 2, run: (ctx) => [arithmetic(input(ctx, 0), input(ctx, 1), POW, true)] },
  '::Max': variadicKernel('Max', ARITH['Max']!),
  '::Min': variadicKernel('Min', ARITH['Min']!),
  '::Sum': variadicKernel('Sum', ARITH['Sum']!),
  '::Mean': variadicKernel('Mean', ARITH['Sum']!, true),
  '::Equal': compareKernel({ num: (x, y) => x === y, big: (x, y) => x === y }),
  '::Less': compareKernel({ num: (x, y) => x < y, big: (x, y) => x < y }),
  '::Greater': compareKernel({ num: (x, y) => x > y, big: (x, y) => x > y }),
  '::LessOrEqual': compareKernel({ num: (x, y) => x <= y, big: (x, y) => x <= y }),
  '::GreaterOrEqual': compareKernel({ num: (x, y) => x >= y, big: (x, y) => x >= y }),
  '::And': logicKernel((x, y) => x & y),
  '::Or': logicKernel((x, y) => x | y),
  '::Xor': logicKernel((x, y) => x ^ y),
  '::Where': { minInputs: 3, run: (ctx) => [where(input(ctx, 0), input(ctx, 1), input(ctx, 2))] },
};
