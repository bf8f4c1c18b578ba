// The two languages of the mask analysis: integer affine expressions over named lengths (Sym) and keep-predicates
// over the query and key indices (Formula), with their constructors.

import type { Value } from '@attnopt/ir';

/** An integer affine expression over named length symbols: c + Σ t[name]·name. */
export interface Sym {
  readonly c: number;
  readonly t: Readonly<Record<string, number>>;
}

export const symConst = (c: number): Sym => ({ c, t: {} });
export const symVar = (name: string): Sym => ({ c: 0, t: { [name]: 1 } });

export function symCombine(a: Sym, b: Sym, kb: number): Sym {
  const t: Record<string, number> = { ...a.t };
  for (const [k, v] of Object.entries(b.t)) {
    const x = (t[k] ?? 0) + kb * v;
    if (x === 0) delete t[k];
    else t[k] = x;
  }
  return { c: a.c + kb * b.c, t };
}
export const symAdd = (a: Sym, b: Sym): Sym => symCombine(a, b, 1);
export const symSub = (a: Sym, b: Sym): Sym => symCombine(a, b, -1);
export const symScale = (a: Sym, k: number): Sym => symCombine(symConst(0), a, k);
export const symIsConst = (a: Sym): boolean => Object.keys(a.t).length === 0;
export const symEq = (a: Sym, b: Sym): boolean => {
  const d = symSub(a, b);
  return symIsConst(d) && d.c === 0;
};
export function symMul(a: Sym, b: Sym): Sym | undefined {
  if (symIsConst(a)) return symScale(b, a.c);
  if (symIsConst(b)) return symScale(a, b.c);
  return undefined;
}
export function symToString(a: Sym): string {
  const parts = Object.entries(a.t).map(([k, v]) => (v === 1 ? k : v === -1 ? `-${k}` : `${v}·${k}`));
  if (a.c !== 0 || parts.length === 0) parts.push(String(a.c));
  return parts.join(' + ').replace(/\+ -/g, '- ');
}
export function symEval(a: Sym, env: Readonly<Record<string, number>>): number | undefined {
  let x = a.c;
  for (const [k, v] of Object.entries(a.t)) {
    const e = env[k];
    if (e === undefined) return undefined;
    x += v * e;
  }
  return x;
}

/** A boolean function of (i, j): `lin` is ci·i + cj·j + c >= 0; `data` a data-dependent keep-mask value. */
export type Formula =
  | { readonly op: 'const'; readonly value: boolean }
  | { readonly op: 'lin'; readonly ci: number; readonly cj: number; readonly c: Sym }
  | { readonly op: 'and' | 'or'; readonly parts: readonly Formula[] }
  | { readonly op: 'not'; readonly x: Formula }
  /** A data-dependent keep-mask (`negated`: its complement, which no value of the graph holds). */
  | { readonly op: 'data'; readonly value: Value; readonly reason: string; readonly negated?: boolean };

export const fAnd = (...parts: Formula[]): Formula => (parts.length === 1 ? parts[0]! : { op: 'and', parts });
export const fOr = (...parts: Formula[]): Formula => (parts.length === 1 ? parts[0]! : { op: 'or', parts });
export const fNot = (x: Formula): Formula => ({ op: 'not', x });
export const fLin = (ci: number, cj: number, c: Sym): Formula => ({ op: 'lin', ci, cj, c });
