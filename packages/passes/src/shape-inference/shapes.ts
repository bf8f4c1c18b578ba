// What the graph fixes before any input arrives, in one place for every rule and pass: the shape, rank and dtype
// of a value and the elements of small values computed from constants and shapes (a reshape target, a scale
// `1 / sqrt(head_size)`), read from the symbolic shape engine (symbolic-shapes/engine.ts: one forward pass per
// graph, cached until the graph changes).
// The readers, by what they return:
//   inferShape   dims as declared (named symbols kept), '?' filled from the engine: for types of new values
//   staticShape  dims as numbers wherever the graph fixes them, else named symbols, else '?': for rules
//   staticDim    one dim of staticShape as a number, or undefined
//   inferRank, inferDtype, staticNumbers / staticScalar / staticInts (elements fixed before run time)
//   symbolicShape / symbolicValue / sameDim  the engine's expressions (`batch*seq`, `seq + past`), to compare dims

import type { Dim, DType, Value } from '@attnopt/ir';
import { constantNumbers } from '@attnopt/rewrite';
import { type Expr } from './symbolic-shapes/expr.js';
import { valueInfo } from './symbolic-shapes/engine.js';

/** A dim the shape engine could not name. */
export const UNKNOWN: Dim = '?';

/** A dim as the Dim type spells it: a number, a named symbol, or '?' for any other expression. */
function toDim(e: Expr | undefined): Dim {
  if (e === undefined) return UNKNOWN;
  const c = e.constant;
  if (c !== undefined) return c;
  const s = e.symbol;
  return s && !s.fresh ? s.name : UNKNOWN;
}

function declaredShape(v: Value): readonly Dim[] | undefined {
  return v.type?.kind === 'tensor' ? v.type.shape : undefined;
}

/** The shape of `v`: declared (its symbols kept), else inferred ('?' for dims that are no number or symbol). */
export function inferShape(v: Value | undefined): readonly Dim[] | undefined {
  if (v === undefined) return undefined;
  if (v.initializer) return [...v.initializer.shape];
  const declared = declaredShape(v);
  if (declared !== undefined && declared.every((d) => d !== UNKNOWN)) return [...declared];
  const inferred = valueInfo(v)?.shape;
  if (declared === undefined) return inferred?.map(toDim);
  if (inferred?.length !== declared.length) return [...declared];
  return declared.map((d, k) => (d === UNKNOWN ? toDim(inferred[k]) : d));
}

/** The shape of `v` as far as the graph fixes it: declared symbolic dims also take the numbers the graph fixes. */
export function staticShape(v: Value | undefined): Dim[] | undefined {
  if (v === undefined) return undefined;
  if (v.initializer) return [...v.initializer.shape];
  const declared = declaredShape(v);
  const inferred = valueInfo(v)?.shape;
  if (declared === undefined) return inferred?.map(toDim);
  if (inferred?.length !== declared.length) return [...declared];
  return declared.map((d, k) => {
    if (typeof d === 'number') return d;
    const i = toDim(inferred[k]);
    return typeof i === 'number' || d === UNKNOWN ? i : d;
  });
}

/** The rank of `v`, or undefined when not even that is known. */
export function inferRank(v: Value | undefined): number | undefined {
  return inferShape(v)?.length;
}

/** Dimension `axis` of `v` (negative counts from the end) when the graph fixes it to a number, else undefined. */
export function staticDim(v: Value | undefined, axis: number): number | undefined {
  const s = staticShape(v);
  const d = s?.[axis < 0 ? axis + s.length : axis];
  return typeof d === 'number' ? d : undefined;
}

/** The element type of `v`: declared, else inferred. */
export function inferDtype(v: Value | undefined): DType | undefined {
  if (v === undefined) return undefined;
  if (v.type?.kind === 'tensor') return v.type.dtype;
  if (v.initializer) return v.initializer.dtype;
  return valueInfo(v)?.dtype;
}

/** Every element of a constant, or of a small value the graph computes from constants and shapes, or undefined. */
export function staticNumbers(v: Value | undefined): Float64Array | undefined {
  const c = constantNumbers(v);
  if (c) return c;
  const xs = valueInfo(v)?.value;
  if (!xs) return undefined;
  const out = new Float64Array(xs.length);
  for (let k = 0; k < xs.length; k++) {
    const x = xs[k]!.constant;
    if (x === undefined) return undefined;
    out[k] = x;
  }
  return out;
}

/** A static value holding one number, or undefined. */
export function staticScalar(v: Value | undefined): number | undefined {
  const xs = staticNumbers(v);
  return xs !== undefined && xs.length === 1 ? xs[0] : undefined;
}

/** A small int vector fixed before run time (constants, Shape of a static shape, Concat of those). */
export function staticInts(v: Value | undefined): number[] | undefined {
  const xs = staticNumbers(v);
  return xs && [...xs];
}

/**
 * The engine's shape of `v`: one expression per dim (numbers, graph-input symbols, products, sums, divisions,
 * min / max; fresh symbols `?N` for sizes only known at run time), or undefined when the rank is unknown.
 * Equal expressions are the same object: compare dims with `===` or `sameDim`.
 */
export function symbolicShape(v: Value | undefined): readonly Expr[] | undefined {
  return valueInfo(v)?.shape;
}

/** The elements of a small integer value (a shape tensor) as expressions, or undefined. */
export function symbolicValue(v: Value | undefined): readonly Expr[] | undefined {
  return valueInfo(v)?.value;
}

/**
 * Whether dim `axisA` of `a` and dim `axisB` of `b` are provably the same size (negative axes count from the
 * end): the same expression, a run-time size included when both read the same one.
 */
export function sameDim(a: Value | undefined, axisA: number, b: Value | undefined, axisB: number): boolean {
  const sa = symbolicShape(a);
  const sb = symbolicShape(b);
  const x = sa?.[axisA < 0 ? axisA + sa.length : axisA];
  const y = sb?.[axisB < 0 ? axisB + sb.length : axisB];
  return x !== undefined && x === y;
}
