// keep(i, j) of every mask spec as a small expression tree: the one definition the JavaScript, WGSL and ONNX
// emitters translate, each with a table of op -> target code (so they cannot drift apart).
//   causal(bottom-right) ∪ sinks(4)  ->  or(le(j, add(i, offBR)), lt(j, 4))
// A subtree used twice is the same object (window: the query position), so an emitter may compute it once.

import type { Align, Blocks, DataDependentSpec, MaskSpec } from './spec.js';

/** The free variables: query i, key j, nk - nq (`offBR`) and the cached key count (`past`, 0 when absent). */
export type KeepVar = 'i' | 'j' | 'offBR' | 'past';

/**
 * An integer term. `div` rounds down and `mod` is a remainder; in every spec both see a >= 0 and b > 0 for
 * `div`, and `mod` is only compared with 0, so truncating and flooring targets agree.
 * `label` names the value where the target has names (ONNX); other emitters ignore it.
 */
export type KeepInt =
  | { readonly op: 'int'; readonly value: number; readonly label: string }
  | { readonly op: 'var'; readonly name: KeepVar }
  | { readonly op: 'add' | 'sub' | 'div' | 'mod'; readonly a: KeepInt; readonly b: KeepInt; readonly label: string };

/** A set of constant integers, shared by the membership tests that read it (one table per set). */
export interface KeepSet {
  readonly label: string;
  readonly values: readonly number[];
}

/** A boolean term; the tree of a spec is one of these. */
export type KeepBool =
  | { readonly op: 'bool'; readonly value: boolean }
  | { readonly op: 'lt' | 'le' | 'ge' | 'eq'; readonly a: KeepInt; readonly b: KeepInt; readonly label: string }
  | { readonly op: 'and' | 'or'; readonly parts: readonly KeepBool[]; readonly label: string }
  | { readonly op: 'not'; readonly a: KeepBool; readonly label: string }
  /** x is one of set.values. */
  | { readonly op: 'in'; readonly x: KeepInt; readonly set: KeepSet; readonly label: string }
  /** col is in table.rows[row]; rows past the end of the table hold nothing. */
  | { readonly op: 'rowHas'; readonly table: Blocks; readonly row: KeepInt; readonly col: KeepInt }
  /** A data-dependent leaf: its key sets come from Q and K at run time. */
  | { readonly op: 'leaf'; readonly spec: DataDependentSpec };

export type KeepExpr = KeepInt | KeepBool;
export type KeepOp = KeepExpr['op'];

const TRUE: KeepBool = { op: 'bool', value: true };
const FALSE: KeepBool = { op: 'bool', value: false };

const v = (name: KeepVar): KeepInt => ({ op: 'var', name });
const int = (value: number, label: string): KeepInt => ({ op: 'int', value, label });
const arith = (op: 'add' | 'sub' | 'div' | 'mod', a: KeepInt, b: KeepInt, label: string): KeepInt => ({ op, a, b, label });
const cmp = (op: 'lt' | 'le' | 'ge' | 'eq', a: KeepInt, b: KeepInt, label: string): KeepBool => ({ op, a, b, label });

// and(true, x) -> x; and(false, x) -> false; or(true, x) -> true; or(false, x) -> x; one part -> the part
function junction(op: 'and' | 'or', parts: readonly KeepBool[], label: string): KeepBool {
  const absorbing = op === 'and' ? false : true;
  if (parts.some((p) => p.op === 'bool' && p.value === absorbing)) return absorbing ? TRUE : FALSE;
  const rest = parts.filter((p) => p.op !== 'bool');
  if (rest.length === 0) return absorbing ? FALSE : TRUE;
  return rest.length === 1 ? rest[0]! : { op, parts: rest, label };
}

// not(true) -> false; not(false) -> true
function not(a: KeepBool, label: string): KeepBool {
  return a.op === 'bool' ? (a.value ? FALSE : TRUE) : { op: 'not', a, label };
}

/** The query's position among the keys: i + offset(align). */
function position(align: Align): KeepInt {
  if (align === 'top-left') return v('i');
  return arith('add', v('i'), v(align === 'bottom-right' ? 'offBR' : 'past'), `pos_${align}`);
}

/** The keep predicate of `spec` (the same relation as `keeps`, for 0 <= i < nq and 0 <= j < nk). */
export function keepExpr(spec: MaskSpec): KeepBool {
  const j = v('j');
  switch (spec.kind) {
    case 'dense':
      return TRUE;
    case 'empty':
      return FALSE;
    case 'causal':
      return cmp('le', j, position(spec.align), 'causal');
    case 'window':
    case 'dilated': {
      const p = position(spec.align);
      const lo = cmp('ge', j, arith('sub', p, int(spec.left, 'window_left'), 'window_lo'), 'window_ge');
      const hi = cmp('le', j, arith('add', p, int(spec.right, 'window_right'), 'window_hi'), 'window_le');
      const band = junction('and', [lo, hi], 'window');
      if (spec.kind === 'window') return band;
      const dist = arith('mod', arith('sub', p, j, 'dilation_dist'), int(spec.dilation, 'dilation'), 'dilation_mod');
      return junction('and', [band, cmp('eq', dist, int(0, 'zero'), 'dilation_hit')], 'dilated');
    }
    case 'sinks':
      return cmp('lt', j, int(spec.count, 'sinks_count'), 'sinks');
    case 'global': {
      if (spec.tokens.length === 0) return FALSE;
      const set: KeepSet = { label: 'global', values: spec.tokens };
      const isIn = (x: KeepInt, label: string): KeepBool => ({ op: 'in', x, set, label });
      return junction('or', [isIn(j, 'global_key'), isIn(position(spec.align), 'global_query')], 'global');
    }
    case 'blocks': {
      if (spec.rows.every((r) => r.length === 0)) return FALSE;
      const row = arith('div', v('i'), int(spec.blockQ, 'block_q'), 'query_block');
      return { op: 'rowHas', table: spec, row, col: arith('div', j, int(spec.blockK, 'block_k'), 'key_block') };
    }
    case 'topkBlocks':
    case 'lsh':
      return { op: 'leaf', spec };
    case 'union':
      return junction('or', spec.parts.map(keepExpr), 'union');
    case 'intersect':
      return junction('and', spec.parts.map(keepExpr), 'intersect');
    case 'diff':
      return junction('and', [keepExpr(spec.base), not(keepExpr(spec.minus), 'diff_not')], 'diff');
  }
}

/** How one target writes each op: the emitter of a node gets it and the target's context (with its own recursion). */
export type KeepTable<C, R> = { readonly [O in KeepOp]: (e: KeepExpr & { readonly op: O }, cx: C) => R };

/** The target code of `e` by `table`. */
export function emitKeep<C, R>(table: KeepTable<C, R>, e: KeepExpr, cx: C): R {
  return (table[e.op] as (e: KeepExpr, cx: C) => R)(e, cx);
}

/** Every node of the tree, each once, parents before children (left to right). */
export function keepNodes(root: KeepExpr): KeepExpr[] {
  const seen = new Set<KeepExpr>();
  const out: KeepExpr[] = [];
  const walk = (e: KeepExpr): void => {
    if (seen.has(e)) return;
    seen.add(e);
    out.push(e);
    for (const c of keepChildren(e)) walk(c);
  };
  walk(root);
  return out;
}

/** The direct subterms of a node, left to right. */
function keepChildren(e: KeepExpr): readonly KeepExpr[] {
  switch (e.op) {
    case 'add':
    case 'sub':
    case 'div':
    case 'mod':
    case 'lt':
    case 'le':
    case 'ge':
    case 'eq':
      return [e.a, e.b];
    case 'and':
    case 'or':
      return e.parts;
    case 'not':
      return [e.a];
    case 'in':
      return [e.x];
    case 'rowHas':
      return [e.row, e.col];
    default:
      return [];
  }
}
