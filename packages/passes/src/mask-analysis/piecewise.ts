// Minimum and maximum of index fields (T5's min(j - i, 0), clamp, the distance |i - j|) as trees over affine
// leaves, compared exactly over the integers by pushing the comparison down to the leaves:
//   min(a, b) + k >= 0  ->  a + k >= 0 ∧ b + k >= 0        max(a, b) + k >= 0  ->  a + k >= 0 ∨ b + k >= 0
//   -min(a, b)          ->  max(-a, -b)                    min(a, b) + t       ->  min(a + t, b + t)

import { fAnd, type Formula, fOr, type Sym, symCombine, symConst } from './formula.js';

/** An affine index field: Σ coef[axis]·index(axis) + offset, axes counted from the end (-1: key j, -2: query i). */
export interface Field {
  readonly coef: Readonly<Record<number, number>>;
  readonly offset: Sym;
}

export type MinMax = ({ readonly op: 'leaf' } & Field) | { readonly op: 'min' | 'max'; readonly parts: readonly MinMax[] };

const flip = (op: 'min' | 'max') => (op === 'min' ? 'max' : 'min');

export const fromField = (f: Field): MinMax => ({ op: 'leaf', coef: f.coef, offset: f.offset });

/** min/max of the parts, nested ones of the same kind flattened: min(min(a, b), c) -> min(a, b, c). */
export const minMax = (op: 'min' | 'max', parts: readonly MinMax[]): MinMax =>
  parts.length === 1 ? parts[0]! : { op, parts: parts.flatMap((p) => (p.op === op ? p.parts : [p])) };

export function fieldCombine(a: Field, b: Field, k: number): Field {
  const coef: Record<number, number> = { ...a.coef };
  for (const [axis, x] of Object.entries(b.coef)) coef[Number(axis)] = (coef[Number(axis)] ?? 0) + k * x;
  return { coef, offset: symCombine(a.offset, b.offset, k) };
}

/** a + k·b. */
export function minMaxCombine(a: MinMax, b: MinMax, k: number): MinMax {
  if (a.op !== 'leaf') return minMax(a.op, a.parts.map((p) => minMaxCombine(p, b, k)));
  if (b.op !== 'leaf') return minMax(k >= 0 ? b.op : flip(b.op), b.parts.map((p) => minMaxCombine(a, p, k)));
  return { op: 'leaf', ...fieldCombine(a, b, k) };
}

/** s·a (a negative factor swaps min and max). */
export const minMaxScale = (a: MinMax, s: number): MinMax => minMaxCombine(fromField({ coef: {}, offset: symConst(0) }), a, s);

/** Each leaf rewritten by `f` (axes renumbered by Unsqueeze or Transpose). */
export function mapLeaves(a: MinMax, f: (x: Field) => Field): MinMax {
  return a.op === 'leaf' ? { op: 'leaf', ...f(a) } : minMax(a.op, a.parts.map((p) => mapLeaves(p, f)));
}

/**
 * The predicate t >= 0, with `atom(leaf)` the predicate leaf >= 0; constant parts decided on the way
 * (max(j - i + 3, -997) >= 0 -> j - i + 3 >= 0).
 */
export function atLeastZero(t: MinMax, atom: (leaf: Field) => Formula): Formula {
  if (t.op === 'leaf') return atom(t);
  const all = t.op === 'min'; // min >= 0: every part; max >= 0: some part
  const parts = t.parts.map((p) => atLeastZero(p, atom)).filter((p) => !(p.op === 'const' && p.value === all));
  if (parts.some((p) => p.op === 'const')) return { op: 'const', value: !all };
  if (parts.length === 0) return { op: 'const', value: all };
  return all ? fAnd(...parts) : fOr(...parts);
}

/** The affine leaves of a tree. */
export const treeLeaves = (t: MinMax): Field[] => (t.op === 'leaf' ? [t] : t.parts.flatMap(treeLeaves));
