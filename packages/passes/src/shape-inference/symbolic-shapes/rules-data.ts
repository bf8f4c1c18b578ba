// Shape and value rules of the ops exporters build shape tensors with: Shape, Size, Gather, Slice, Concat,
// Unsqueeze, Squeeze, Reshape, Flatten, Cast, arithmetic, comparisons, Where, Range, ConstantOfShape, Expand,
// Tile, Reduce*. Values are propagated as expressions for small integer tensors and as numbers for float
// scalars (so `1 / sqrt(Cast(Shape(q)[-1]))` is a static number).

import { dtypeFromOnnx, type Node } from '@attnopt/ir';
import { add, constant, div, type Expr, exactDiv, isNonneg, max, min, mod, mul, neg, product, sub } from './expr.js';
import {
  atLeastZero,
  broadcastShapes,
  constants,
  elementwiseValues,
  HUGE,
  type Info,
  INTEGRAL,
  intAttr,
  intsAttr,
  normAxis,
  numel,
  ONE,
  type RuleContext,
  small,
  staticShape,
  ZERO,
} from './info.js';

export type Rule = (n: Node, ctx: RuleContext) => (Info | undefined)[] | undefined;

const fnum = (f: (...xs: number[]) => number) => (...xs: Expr[]) => {
  const cs = xs.map((x) => x.constant);
  return cs.every((c) => c !== undefined) ? constant(f(...(cs as number[]))) : undefined;
};

const isInt = (i: Info | undefined) => i?.dtype !== undefined && INTEGRAL.has(i.dtype);

/** Binary (or variadic) numpy-broadcast ops: shape by broadcasting, values elementwise. */
function broadcastOp(f: (n: Node, ins: (Info | undefined)[]) => ((...xs: Expr[]) => Expr | undefined) | undefined, dtype?: 'bool'): Rule {
  return (n, ctx) => {
    const ins = n.inputs.map((v) => ctx.info(v));
    const first = n.op === 'Where' ? ins[1] : ins[0];
    const dt = dtype ?? first?.dtype ?? ins.find((i) => i?.dtype)?.dtype;
    if (ins.some((i) => i?.shape === undefined)) return [{ dtype: dt }];
    const shape = broadcastShapes(ctx, ins.map((i) => i!.shape!));
    const fn = f(n, ins);
    return [{ shape, dtype: dt, value: fn && elementwiseValues(shape, ins, fn) }];
  };
}

const integerDiv = (a: Expr, b: Expr) => div(a, b);
const floatDiv = (a: Expr, b: Expr) => {
  const [ca, cb] = [a.constant, b.constant];
  if (ca !== undefined && cb !== undefined) return constant(ca / cb);
  return exactDiv(a, b);
};

const boolOf = (x: boolean) => constant(x ? 1 : 0);
/**
 * A comparison where both sides are known, or one is a non-negative expression (a dim) and the other a negative
 * constant: every x >= 0 compares with c < 0 as 0 does (torch's expand(..., -1, ...) writes the shape as
 * Where(Equal(shape, -1), 1, shape), with dims in the shape).
 */
const compare = (f: (x: number, y: number) => boolean, same?: boolean) => (a: Expr, b: Expr) => {
  if (a === b && same !== undefined) return boolOf(same);
  const [ca, cb] = [a.constant, b.constant];
  if (ca !== undefined && cb !== undefined) return boolOf(f(ca, cb));
  if (cb !== undefined && cb < 0 && isNonneg(a)) return boolOf(f(0, cb));
  if (ca !== undefined && ca < 0 && isNonneg(b)) return boolOf(f(ca, 0));
  return undefined;
};

export const ARITHMETIC: Record<string, Rule> = {
  Add: broadcastOp(() => add),
  Sub: broadcastOp(() => sub),
  Mul: broadcastOp(() => mul),
  Div: broadcastOp((_n, [a, b]) => (isInt(a) && isInt(b) ? integerDiv : floatDiv)),
  Mod: broadcastOp((n, [a, b]) => (isInt(a) && isInt(b) && !intAttr(n, 'fmod') ? mod : fnum((x, y) => (intAttr(n, 'fmod') ? x % y : x - y * Math.floor(x / y))))),
  Pow: broadcastOp(() => fnum((x, y) => x ** y)),
  Max: broadcastOp(() => (...xs) => xs.reduce((a, b) => max(a, b))),
  Min: broadcastOp(() => (...xs) => xs.reduce((a, b) => min(a, b))),
  Sum: broadcastOp(() => (...xs) => xs.reduce(add)),
  Mean: broadcastOp(() => undefined),
  BitShift: broadcastOp(() => undefined),
  PRelu: broadcastOp(() => undefined),
  Equal: broadcastOp(() => compare((x, y) => x === y, true), 'bool'),
  Less: broadcastOp(() => compare((x, y) => x < y, false), 'bool'),
  Greater: broadcastOp(() => compare((x, y) => x > y, false), 'bool'),
  LessOrEqual: broadcastOp(() => compare((x, y) => x <= y, true), 'bool'),
  GreaterOrEqual: broadcastOp(() => compare((x, y) => x >= y, true), 'bool'),
  And: broadcastOp(() => fnum((x, y) => Number(x !== 0 && y !== 0)), 'bool'),
  Or: broadcastOp(() => fnum((x, y) => Number(x !== 0 || y !== 0)), 'bool'),
  Xor: broadcastOp(() => fnum((x, y) => Number((x !== 0) !== (y !== 0))), 'bool'),
  Where: broadcastOp(() => (c, a, b) => {
    const cc = c.constant;
    return cc === undefined ? (a === b ? a : undefined) : cc !== 0 ? a : b;
  }),
};

/** Elementwise ops of one input: same shape, values where the function is known. */
function unary(f?: (x: Expr) => Expr | undefined, dtype?: (n: Node, i: Info | undefined) => Info['dtype']): Rule {
  return (n, ctx) => {
    const i = ctx.info(n.inputs[0]);
    const dt = dtype ? dtype(n, i) : i?.dtype;
    const value = f && i?.value ? mapAll(i.value, f) : undefined;
    return [{ shape: i?.shape, dtype: dt, value }];
  };
}

function mapAll(xs: readonly Expr[], f: (x: Expr) => Expr | undefined): Expr[] | undefined {
  const out: Expr[] = [];
  for (const x of xs) {
    const y = f(x);
    if (y === undefined) return undefined;
    out.push(y);
  }
  return out;
}

function castTo(n: Node, i: Info | undefined): Info['dtype'] {
  const to = intAttr(n, 'to');
  return to === undefined ? undefined : dtypeFromOnnx(to);
}

/**
 * Clip: the input's shape, values clamped where the bounds are known (inputs min and max from opset 11, either
 * absent for no bound; attributes before): a clamped learned scale (Swin v2's clamp(logit_scale).exp()) is static.
 */
const clip: Rule = (n, ctx) => {
  const i = ctx.info(n.inputs[0]);
  // the bound: an expression, null when there is none, undefined when not known
  const bound = (index: 1 | 2, name: 'min' | 'max'): Expr | null | undefined => {
    const a = n.attrs.get(name);
    if (a?.type === 'float') return constant(a.value);
    const v = n.inputs[index];
    if (v === undefined || v.name === '') return null;
    const b = ctx.info(v)?.value;
    return b?.length === 1 ? b[0] : undefined;
  };
  const [lo, hi] = [bound(1, 'min'), bound(2, 'max')];
  const value =
    i?.value && lo !== undefined && hi !== undefined
      ? mapAll(i.value, (x) => {
          const below = hi === null ? x : fnum(Math.min)(x, hi);
          return below && (lo === null ? below : fnum(Math.max)(below, lo));
        })
      : undefined;
  return [{ shape: i?.shape, dtype: i?.dtype, value }];
};

export const UNARY: Record<string, Rule> = {
  Clip: clip,
  Identity: unary((x) => x),
  Neg: unary(neg),
  Abs: unary((x) => (isNonneg(x) ? x : fnum(Math.abs)(x))),
  Sqrt: unary(fnum(Math.sqrt)),
  Reciprocal: unary(fnum((x) => 1 / x)),
  Exp: unary(fnum(Math.exp)),
  Log: unary(fnum(Math.log)),
  Floor: unary((x) => (x.terms.every((t) => Number.isInteger(t.coef)) ? x : fnum(Math.floor)(x))),
  Ceil: unary((x) => (x.terms.every((t) => Number.isInteger(t.coef)) ? x : fnum(Math.ceil)(x))),
  Round: unary(fnum((x) => {
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r; // half to even
  })),
  Sign: unary(fnum(Math.sign)),
  Not: unary(fnum((x) => Number(x === 0)), () => 'bool'),
  IsNaN: unary(undefined, () => 'bool'),
  IsInf: unary(undefined, () => 'bool'),
  Cast: (n, ctx) => {
    const i = ctx.info(n.inputs[0]);
    const to = castTo(n, i);
    return [{ shape: i?.shape, dtype: to, value: castValues(i, to) }];
  },
  CastLike: (n, ctx) => {
    const i = ctx.info(n.inputs[0]);
    const to = ctx.info(n.inputs[1])?.dtype;
    return [{ shape: i?.shape, dtype: to, value: castValues(i, to) }];
  },
};

/**
 * The values of `i` cast to `to`: float32 rounds (symbolic integers stay: sizes are exact in float32), integers
 * truncate, bool tests for nonzero. Casts to float16 / bfloat16 keep the float64 number: a scale read from
 * them (`1 / sqrt(Cast<f16>(d))`) is the one the model means, not its half-precision rounding.
 */
function castValues(i: Info | undefined, to: Info['dtype']): Expr[] | undefined {
  if (!i?.value || to === undefined) return undefined;
  if (to === 'f32') return mapAll(i.value, (x) => (x.constant !== undefined ? constant(Math.fround(x.constant)) : isInt(i) ? x : undefined));
  if (to === 'f16' || to === 'bf16') return mapAll(i.value, (x) => (x.constant !== undefined ? x : undefined));
  if (to === 'bool') return mapAll(i.value, fnum((x) => Number(x !== 0)));
  if (INTEGRAL.has(to)) return mapAll(i.value, (x) => (x.constant !== undefined ? constant(Math.trunc(x.constant)) : isInt(i) || i.dtype === 'bool' ? x : undefined));
  if (to === 'f64') return [...i.value];
  return undefined;
}

function shapeRule(n: Node, ctx: RuleContext): Info[] {
  const s = ctx.info(n.inputs[0])?.shape;
  if (!s) return [{ dtype: 'i64', shape: [ctx.fresh()] }];
  const r = s.length;
  const clamp = (x: number) => Math.min(Math.max(normAxis(x, r), 0), r);
  const [lo, hi] = [clamp(intAttr(n, 'start') ?? 0), clamp(intAttr(n, 'end') ?? r)];
  const value = s.slice(lo, Math.max(lo, hi));
  return [{ dtype: 'i64', shape: [constant(value.length)], value }];
}

function sizeRule(n: Node, ctx: RuleContext): Info[] {
  const s = ctx.info(n.inputs[0])?.shape;
  return [{ dtype: 'i64', shape: [], value: s ? [numel(s)] : undefined }];
}

function gather(n: Node, ctx: RuleContext): Info[] {
  const data = ctx.info(n.inputs[0]);
  const idx = ctx.info(n.inputs[1]);
  if (!data?.shape || !idx?.shape) return [{ dtype: data?.dtype }];
  const axis = normAxis(intAttr(n, 'axis') ?? 0, data.shape.length);
  const shape = [...data.shape.slice(0, axis), ...idx.shape, ...data.shape.slice(axis + 1)];
  let value: Expr[] | undefined;
  const ds = staticShape(data.shape);
  const is = constants(idx);
  if (data.value && ds && is && small(shape)) {
    // out[pre, i..., post] = data[pre, idx[i...], post]
    const pre = ds.slice(0, axis).reduce((a, b) => a * b, 1);
    const post = ds.slice(axis + 1).reduce((a, b) => a * b, 1);
    const len = ds[axis]!;
    value = [];
    for (let p = 0; p < pre; p++) {
      for (const raw of is) {
        const i = raw < 0 ? raw + len : raw;
        if (i < 0 || i >= len) return [{ shape, dtype: data.dtype }];
        for (let q = 0; q < post; q++) value.push(data.value[(p * len + i) * post + q]!);
      }
    }
  }
  return [{ shape, dtype: data.dtype, value }];
}

/** The size of one sliced axis of size d, or undefined when it cannot be expressed. */
export function sliceSize(d: Expr, start: Expr, end: Expr, step: number): Expr | undefined {
  const [s, e] = [start.constant, end.constant];
  if (step > 0) {
    const lo = s === undefined ? (isNonneg(start) ? min(start, d) : undefined) : s < 0 ? atLeastZero(add(d, start)) : s >= HUGE ? d : min(start, d);
    const hi = e === undefined ? (isNonneg(end) ? min(end, d) : undefined) : e < 0 ? atLeastZero(add(d, end)) : e >= HUGE ? d : min(end, d);
    if (!lo || !hi) return undefined;
    const span = atLeastZero(sub(hi, lo));
    return step === 1 ? span : div(add(span, constant(step - 1)), constant(step));
  }
  const dc = d.constant;
  if (dc !== undefined && s !== undefined && e !== undefined) {
    const lo = s < 0 ? Math.max(s + dc, -1) : Math.min(s, dc - 1);
    const hi = e < 0 ? Math.max(e + dc, -1) : Math.min(e, dc - 1);
    return constant(Math.max(0, Math.ceil((lo - hi) / -step)));
  }
  if ((s === -1 || (s !== undefined && s >= HUGE)) && e !== undefined && e <= -HUGE) return div(add(d, constant(-step - 1)), constant(-step));
  return undefined;
}

function slice(n: Node, ctx: RuleContext): Info[] {
  const x = ctx.info(n.inputs[0]);
  if (!x?.shape) return [{ dtype: x?.dtype }];
  const r = x.shape.length;
  const read = (attr: string, k: number): readonly Expr[] | undefined => {
    const a = intsAttr(n, attr);
    if (a) return a.map(constant);
    return n.inputs[k] ? ctx.info(n.inputs[k])?.value : undefined;
  };
  const starts = read('starts', 1);
  const ends = read('ends', 2);
  const axesE = n.inputs[3] || intsAttr(n, 'axes') ? read('axes', 3) : x.shape.map((_, k) => constant(k));
  const stepsE = n.inputs[4] ? read('steps', 4) : undefined;
  const axes = axesE && axesE.map((a) => a.constant);
  const steps = stepsE ? stepsE.map((a) => a.constant) : axes?.map(() => 1);
  if (!axes || axes.some((a) => a === undefined)) return [{ shape: x.shape.map(() => ctx.fresh()), dtype: x.dtype }];
  const shape = [...x.shape];
  const sliced = new Set<number>();
  axes.forEach((a, j) => {
    const ax = normAxis(a!, r);
    sliced.add(ax);
    const step = steps?.[j];
    const size = starts?.[j] && ends?.[j] && step ? sliceSize(x.shape![ax]!, starts[j]!, ends[j]!, step) : undefined;
    shape[ax] = size ?? ctx.fresh();
  });
  let value: Expr[] | undefined;
  // values: a piece of a 1-D vector with static bounds
  const xs = staticShape(x.shape);
  const st = starts && constants({ value: starts });
  const en = ends && constants({ value: ends });
  if (x.value && xs?.length === 1 && st?.length === 1 && en?.length === 1 && steps?.[0] !== undefined) {
    const len = xs[0]!;
    const step = steps[0]!;
    const out: Expr[] = [];
    if (step > 0) {
      const c = (v: number) => Math.min(len, Math.max(0, v < 0 ? v + len : v));
      for (let i = c(st[0]!); i < c(en[0]!); i += step) out.push(x.value[i]!);
    } else {
      const c = (v: number) => Math.min(len - 1, Math.max(-1, v < 0 ? v + len : v));
      for (let i = c(st[0]!); i > c(en[0]!); i += step) out.push(x.value[i]!);
    }
    value = out;
    shape[0] = constant(out.length);
  }
  return [{ shape, dtype: x.dtype, value }];
}

function concat(n: Node, ctx: RuleContext): Info[] {
  const ins = n.inputs.map((v) => ctx.info(v));
  const dtype = ins.find((i) => i?.dtype)?.dtype;
  const known = ins.filter((i): i is Info => i?.shape !== undefined);
  if (known.length === 0) return [{ dtype }];
  const r = known[0]!.shape!.length;
  const axis = normAxis(intAttr(n, 'axis') ?? 0, r);
  const shape = [...known[0]!.shape!];
  for (let k = 0; k < r; k++) {
    if (k === axis) continue;
    // every input shares the other dims: unify across inputs
    for (const i of known.slice(1)) shape[k] = ctx.unify(shape[k]!, i.shape![k]!);
  }
  shape[axis] = known.length === ins.length ? known.reduce((a, i) => add(a, i.shape![axis]!), ZERO) : ctx.fresh();
  let value: Expr[] | undefined;
  if (r === 1 && ins.every((i) => i?.value)) value = ins.flatMap((i) => i!.value!);
  else if (r === 1 && small(shape)) {
    // a reshape target with parts computed at run time: those elements are unknown integers (of any sign)
    value = ins.flatMap((i) => i!.value ?? Array.from({ length: i!.shape![0]!.constant! }, () => ctx.fresh(false)));
  }
  return [{ shape, dtype, value }];
}

function axesOf(n: Node, ctx: RuleContext): number[] | undefined {
  return intsAttr(n, 'axes') ?? (n.inputs[1] ? constants(ctx.info(n.inputs[1])) : undefined);
}

function unsqueeze(n: Node, ctx: RuleContext): Info[] {
  const x = ctx.info(n.inputs[0]);
  const axes = axesOf(n, ctx);
  if (!x?.shape || !axes) return [{ dtype: x?.dtype }];
  const r = x.shape.length + axes.length;
  const at = new Set(axes.map((a) => normAxis(a, r)));
  const shape: Expr[] = [];
  let k = 0;
  for (let i = 0; i < r; i++) shape.push(at.has(i) ? ONE : x.shape[k++]!);
  return [{ shape, dtype: x.dtype, value: x.value }];
}

function squeeze(n: Node, ctx: RuleContext): Info[] {
  const x = ctx.info(n.inputs[0]);
  if (!x?.shape) return [{ dtype: x?.dtype }];
  const axes = axesOf(n, ctx);
  if (!axes && (intsAttr(n, 'axes') !== undefined || n.inputs[1])) return [{ dtype: x.dtype }];
  if (!axes) {
    if (x.shape.some((d) => d.constant === undefined)) return [{ dtype: x.dtype }];
    return [{ shape: x.shape.filter((d) => d.constant !== 1), dtype: x.dtype, value: x.value }];
  }
  const at = new Set(axes.map((a) => normAxis(a, x.shape!.length)));
  return [{ shape: x.shape.filter((_, k) => !at.has(k)), dtype: x.dtype, value: x.value }];
}

function reshape(n: Node, ctx: RuleContext): Info[] {
  const x = ctx.info(n.inputs[0]);
  const t = ctx.info(n.inputs[1]);
  const allowZero = (intAttr(n, 'allowzero') ?? 0) !== 0;
  if (!t?.value) {
    const len = t?.shape?.[0]?.constant;
    return [{ dtype: x?.dtype, shape: len === undefined ? undefined : Array.from({ length: len }, () => ctx.fresh()) }];
  }
  let minus = -1;
  const shape = t.value.map((d, k) => {
    const c = d.constant;
    if (c === 0 && !allowZero) return x?.shape?.[k] ?? ctx.fresh();
    if (c === -1) minus = k;
    if (c !== undefined) return c < 0 ? ONE : d;
    return isNonneg(d) ? d : ctx.fresh(); // an integer computed at run time: a size, not a code
  });
  if (minus >= 0) {
    const total = x?.shape ? numel(x.shape) : undefined;
    const rest = product(shape.filter((_, k) => k !== minus));
    shape[minus] = (total && div(total, rest)) ?? ctx.fresh();
  }
  return [{ shape, dtype: x?.dtype, value: x?.value }];
}

function flatten(n: Node, ctx: RuleContext): Info[] {
  const x = ctx.info(n.inputs[0]);
  if (!x?.shape) return [{ dtype: x?.dtype }];
  const axis = normAxis(intAttr(n, 'axis') ?? 1, x.shape.length);
  return [{ shape: [product(x.shape.slice(0, axis)), product(x.shape.slice(axis))], dtype: x.dtype, value: x.value }];
}

function range(n: Node, ctx: RuleContext): Info[] {
  const [start, limit, delta] = [0, 1, 2].map((k) => ctx.info(n.inputs[k])?.value?.[0]);
  const dtype = ctx.info(n.inputs[0])?.dtype;
  let size: Expr | undefined;
  const dc = delta?.constant;
  if (start && limit && dc !== undefined && dc !== 0) {
    const span = sub(limit, start);
    const sc = span.constant;
    if (sc !== undefined) size = constant(Math.max(0, Math.ceil(sc / dc)));
    else if (dc > 0 && Number.isInteger(dc)) size = div(atLeastZero(add(span, constant(dc - 1))), constant(dc));
  }
  if (!size) return [{ shape: [ctx.fresh()], dtype }];
  const sz = size.constant;
  const value = sz !== undefined && sz <= 64 ? Array.from({ length: sz }, (_, k) => add(start!, mul(constant(k), delta!))) : undefined;
  return [{ shape: [size], dtype, value }];
}

function constantOfShape(n: Node, ctx: RuleContext): Info[] {
  const t = ctx.info(n.inputs[0]);
  const a = n.attrs.get('value');
  const tensor = a?.type === 'tensor' ? a.value : undefined;
  const dtype = tensor?.dtype ?? 'f32';
  const shape = t?.value ? [...t.value] : t?.shape?.[0]?.constant !== undefined ? Array.from({ length: t.shape[0].constant }, () => ctx.fresh()) : undefined;
  let value: Expr[] | undefined;
  if (shape && small(shape) && (!tensor || tensor.dtype !== 'string')) {
    const fill = tensor ? tensor.toFloat64()[0]! : 0;
    value = Array.from({ length: staticShape(shape)!.reduce((x, y) => x * y, 1) }, () => constant(fill));
  }
  return [{ shape, dtype, value }];
}

function expand(n: Node, ctx: RuleContext): Info[] {
  const x = ctx.info(n.inputs[0]);
  const t = ctx.info(n.inputs[1]);
  if (!x?.shape) return [{ dtype: x?.dtype }];
  let target = t?.value;
  if (!target) {
    const len = t?.shape?.[0]?.constant;
    if (len === undefined) return [{ dtype: x.dtype }];
    target = Array.from({ length: len }, () => ctx.fresh());
  }
  const r = Math.max(target.length, x.shape.length);
  const shape: Expr[] = [];
  for (let k = 0; k < r; k++) {
    const a = x.shape[x.shape.length - r + k];
    const b = target[target.length - r + k];
    shape.push(a === undefined ? b! : b === undefined ? a : a.constant === 1 ? b : b.constant === 1 ? a : ctx.unify(a, b));
  }
  return [{ shape, dtype: x.dtype, value: elementwiseValues(shape, [x], (v) => v) }];
}

function tile(n: Node, ctx: RuleContext): Info[] {
  const x = ctx.info(n.inputs[0]);
  const reps = ctx.info(n.inputs[1])?.value;
  if (!x?.shape) return [{ dtype: x?.dtype }];
  return [{ shape: x.shape.map((d, k) => (reps?.[k] ? mul(d, reps[k]!) : ctx.fresh())), dtype: x.dtype }];
}

function reduce(n: Node, ctx: RuleContext): Info[] {
  const x = ctx.info(n.inputs[0]);
  const arg = n.op.startsWith('Arg');
  const dtype = arg ? 'i64' : x?.dtype;
  if (!x?.shape) return [{ dtype }];
  const keep = (intAttr(n, 'keepdims') ?? 1) !== 0;
  let axes: number[] | undefined = intsAttr(n, 'axes') ?? (intAttr(n, 'axis') !== undefined ? [intAttr(n, 'axis')!] : undefined);
  if (axes === undefined && n.inputs[1]) {
    axes = constants(ctx.info(n.inputs[1]));
    if (axes === undefined) return [{ dtype }];
  }
  if (axes === undefined || axes.length === 0) {
    if (arg) axes = [0];
    else if ((intAttr(n, 'noop_with_empty_axes') ?? 0) !== 0) return [{ ...x }];
    else axes = x.shape.map((_, k) => k);
  }
  const at = new Set(axes.map((a) => normAxis(a, x.shape!.length)));
  const shape = keep ? x.shape.map((d, k) => (at.has(k) ? ONE : d)) : x.shape.filter((_, k) => !at.has(k));
  let value: Expr[] | undefined;
  if (x.value && x.shape.length === 1 && at.size === 1) {
    const f = { ReduceProd: mul, ReduceSum: add, ReduceMax: max, ReduceMin: min }[n.op];
    if (f && x.value.length > 0) value = [x.value.reduce((a, b) => f(a, b))];
  }
  return [{ shape, dtype, value }];
}

export const DATA_RULES: Record<string, Rule> = {
  ...ARITHMETIC,
  ...UNARY,
  Shape: shapeRule,
  Size: sizeRule,
  Gather: gather,
  Slice: slice,
  Concat: concat,
  Unsqueeze: unsqueeze,
  Squeeze: squeeze,
  Reshape: reshape,
  Flatten: flatten,
  Range: range,
  ConstantOfShape: constantOfShape,
  Expand: expand,
  Tile: tile,
  ReduceSum: reduce,
  ReduceMean: reduce,
  ReduceMax: reduce,
  ReduceMin: reduce,
  ReduceProd: reduce,
  ReduceL2: reduce,
  ReduceL1: reduce,
  ReduceLogSumExp: reduce,
  ReduceSumSquare: reduce,
  ArgMax: reduce,
  ArgMin: reduce,
};
