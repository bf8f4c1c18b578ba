// What the shape engine knows of one value, and the helpers op rules share to build it.

import { type DType, type Node } from '@attnopt/ir';
import { constant, type Expr, isNonneg, max, product } from './expr.js';

/**
 * shape: one expression per dim (undefined: not even the rank is known); dtype; value: every element, row-major,
 * for small tensors whose elements the graph fixes (shape tensors, scalars computed from shapes).
 */
export interface Info {
  readonly shape?: readonly Expr[];
  readonly dtype?: DType;
  readonly value?: readonly Expr[];
}

/** What op rules may ask of the pass running them. */
export interface RuleContext {
  /** The info of an input (undefined for an omitted input or a value nothing is known of). */
  info(v: Node['inputs'][number]): Info | undefined;
  /** A new symbol for a size only known at run time (`nonneg` false: an integer of any sign). */
  fresh(nonneg?: boolean): Expr;
  /** The dim two broadcast dims (neither known to be 1) share; records equal symbols. */
  unify(a: Expr, b: Expr): Expr;
  /** Runs the pass over a subgraph (its values read the enclosing scope) and returns its outputs' info. */
  subgraph(attr: string, inputs?: readonly (Info | undefined)[]): (Info | undefined)[] | undefined;
}

/** Tensors with at most this many elements carry their values. */
export const MAX_VALUE_ELEMENTS = 64;
/** Slice bounds at or beyond this mean "to the end" (exporters write INT64_MAX or INT32_MAX). */
export const HUGE = 2 ** 31 - 1;

export const ONE = constant(1);
export const ZERO = constant(0);

export const INTEGRAL = new Set<DType>(['i8', 'i16', 'i32', 'i64', 'u8', 'u16', 'u32', 'u64']);

export function intAttr(n: Node, name: string): number | undefined {
  const a = n.attrs.get(name);
  return a?.type === 'int' ? Number(a.value) : undefined;
}

export function intsAttr(n: Node, name: string): number[] | undefined {
  const a = n.attrs.get(name);
  return a?.type === 'ints' ? a.value.map(Number) : undefined;
}

export function floatAttr(n: Node, name: string): number | undefined {
  const a = n.attrs.get(name);
  return a?.type === 'float' ? a.value : undefined;
}

export const normAxis = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** The numbers of a value whose every element is a constant. */
export function constants(info: Info | undefined): number[] | undefined {
  const v = info?.value;
  if (!v) return undefined;
  const out: number[] = [];
  for (const e of v) {
    const c = e.constant;
    if (c === undefined) return undefined;
    out.push(c);
  }
  return out;
}

/** The constant shape of an info, if every dim is a number. */
export function staticShape(shape: readonly Expr[] | undefined): number[] | undefined {
  if (!shape) return undefined;
  const out: number[] = [];
  for (const d of shape) {
    const c = d.constant;
    if (c === undefined) return undefined;
    out.push(c);
  }
  return out;
}

/** Element count of a shape as an expression. */
export const numel = (shape: readonly Expr[]): Expr => product(shape);

/** Whether a tensor of this shape is small enough to carry its values. */
export function small(shape: readonly Expr[] | undefined): boolean {
  const s = staticShape(shape);
  return s !== undefined && s.reduce((a, b) => a * b, 1) <= MAX_VALUE_ELEMENTS;
}

/** Numpy broadcasting of shapes; dims neither side knows to be 1 are unified. */
export function broadcastShapes(ctx: RuleContext, shapes: readonly (readonly Expr[])[]): Expr[] {
  const r = Math.max(0, ...shapes.map((s) => s.length));
  const out: Expr[] = [];
  for (let k = 0; k < r; k++) {
    let d: Expr | undefined;
    for (const s of shapes) {
      const x = s[s.length - r + k];
      if (x === undefined || x.constant === 1) continue;
      d = d === undefined ? x : ctx.unify(d, x);
    }
    out.push(d ?? ONE);
  }
  return out;
}

/**
 * An info with the given shape and dtype, and values computed elementwise when every input carries them
 * (inputs broadcast by numpy rules over static shapes).
 */
export function elementwiseValues(
  shape: readonly Expr[],
  inputs: readonly (Info | undefined)[],
  f: (...xs: Expr[]) => Expr | undefined,
): Expr[] | undefined {
  const out = staticShape(shape);
  if (!out || out.reduce((a, b) => a * b, 1) > MAX_VALUE_ELEMENTS) return undefined;
  const parts: { value: readonly Expr[]; shape: number[] }[] = [];
  for (const i of inputs) {
    const s = staticShape(i?.shape);
    if (!i?.value || !s) return undefined;
    parts.push({ value: i.value, shape: s });
  }
  const count = out.reduce((a, b) => a * b, 1);
  const res: Expr[] = [];
  for (let flat = 0; flat < count; flat++) {
    // the output index, then each input's broadcast index
    const idx: number[] = [];
    let rem = flat;
    for (let k = out.length - 1; k >= 0; k--) {
      idx[k] = rem % out[k]!;
      rem = Math.floor(rem / out[k]!);
    }
    const args = parts.map((p) => {
      let off = 0;
      const shift = out.length - p.shape.length;
      for (let k = 0; k < p.shape.length; k++) off = off * p.shape[k]! + (p.shape[k] === 1 ? 0 : idx[k + shift]!);
      return p.value[off]!;
    });
    const y = f(...args);
    if (y === undefined) return undefined;
    res.push(y);
  }
  return res;
}

/** max(x, 0) for a size that may come out negative. */
export const atLeastZero = (x: Expr): Expr => (isNonneg(x) ? x : max(x, ZERO));

/** A · B with numpy broadcasting of the batch axes; the contracted dims are recorded as one size. */
export function matmulOf(ctx: RuleContext, sa: readonly Expr[] | undefined, sb: readonly Expr[] | undefined, dtype: DType | undefined): Info[] {
  if (!sa || !sb || sa.length === 0 || sb.length === 0) return [{ dtype }];
  const a2 = sa.length === 1 ? [ONE, sa[0]!] : sa;
  const b2 = sb.length === 1 ? [sb[0]!, ONE] : sb;
  ctx.unify(a2[a2.length - 1]!, b2[b2.length - 2]!); // the contracted dims are one
  const batch = broadcastShapes(ctx, [a2.slice(0, -2), b2.slice(0, -2)]);
  const shape = [...batch, a2[a2.length - 2]!, b2[b2.length - 1]!];
  if (sa.length === 1) shape.splice(shape.length - 2, 1);
  if (sb.length === 1) shape.splice(shape.length - 1, 1);
  return [{ shape, dtype }];
}
