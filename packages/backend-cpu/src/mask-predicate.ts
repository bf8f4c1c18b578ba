// The spec's keep predicate as generated JavaScript: @attnopt/ir's keep expression written out through a table
// of op -> JavaScript, one straight-line expression per spec tree; constant sets become Set tables T,
// data-dependent leaves (top-k blocks, LSH) calls L[k](i, j) to host-resolved key sets.
// Kernels evaluate it only on the Partial key blocks of classifyBlockRow; Full blocks need no mask work.
//
//   causal ∪ sinks(4)  ->  ((j <= i) || (j < 4))

import {
  type DataDependentSpec,
  intervals,
  emitKeep,
  type KeepExpr,
  keepExpr,
  type KeepTable,
  type KeepVar,
  type LeafResolver,
  type MaskDims,
  type MaskSpec,
  queryOffset,
} from '@attnopt/ir';

const VARS: Record<KeepVar, string> = { i: 'i', j: 'j', offBR: 'oBR', past: 'oPast' };

interface Context {
  readonly sub: (e: KeepExpr) => string;
  /** The table of each constant set or block layout, by its source object (read for i and for j alike). */
  readonly table: (source: object, make: () => unknown) => string;
  readonly leaves: DataDependentSpec[];
}

/** One entry per op of the keep expression: how it reads in JavaScript. */
const JS: KeepTable<Context, string> = {
  bool: (e) => `${e.value}`,
  int: (e) => `${Math.trunc(e.value)}`,
  var: (e) => VARS[e.name],
  add: (e, { sub }) => `(${sub(e.a)} + ${sub(e.b)})`,
  sub: (e, { sub }) => `(${sub(e.a)} - ${sub(e.b)})`,
  div: (e, { sub }) => `Math.floor(${sub(e.a)} / ${sub(e.b)})`,
  mod: (e, { sub }) => `(${sub(e.a)} % ${sub(e.b)})`,
  lt: (e, { sub }) => `(${sub(e.a)} < ${sub(e.b)})`,
  le: (e, { sub }) => `(${sub(e.a)} <= ${sub(e.b)})`,
  ge: (e, { sub }) => `(${sub(e.a)} >= ${sub(e.b)})`,
  eq: (e, { sub }) => `(${sub(e.a)} === ${sub(e.b)})`,
  and: (e, { sub }) => `(${e.parts.map(sub).join(' && ')})`,
  or: (e, { sub }) => `(${e.parts.map(sub).join(' || ')})`,
  not: (e, { sub }) => `!${sub(e.a)}`,
  in: (e, { sub, table }) => `${table(e.set, () => new Set(e.set.values))}.has(${sub(e.x)})`,
  rowHas: (e, { sub, table }) => {
    const t = table(e.table, () => e.table.rows.map((r) => new Set(r)));
    return `(${t}[${sub(e.row)}] !== undefined && ${t}[${sub(e.row)}].has(${sub(e.col)}))`;
  },
  leaf: (e, { leaves }) => `L[${leaves.push(e.spec) - 1}](i, j)`,
};

/** The predicate of `spec` as JavaScript source over i, j, the offsets oBR/oPast and tables T, leaves L. */
export function maskPredicateSource(spec: MaskSpec, tables: unknown[] = [], leaves: DataDependentSpec[] = []): string {
  const at = new Map<object, number>();
  const cx: Context = {
    sub: (e) => emitKeep(JS, e, cx),
    table: (source, make) => {
      let k = at.get(source);
      if (k === undefined) at.set(source, (k = tables.push(make()) - 1));
      return `T[${k}]`;
    },
    leaves,
  };
  return cx.sub(keepExpr(spec));
}

export type KeepPredicate = (i: number, j: number) => boolean;

/** The generated predicate of `spec` for one call's dims (data-dependent leaves answered by `resolve`). */
export function compileMaskPredicate(spec: MaskSpec, dims: MaskDims, resolve?: LeafResolver): KeepPredicate {
  const tables: unknown[] = [];
  const leaves: DataDependentSpec[] = [];
  const src = maskPredicateSource(spec, tables, leaves);
  const L = leaves.map((leaf) => {
    if (!resolve) throw new Error(`spec ${leaf.kind} is data-dependent: pass a resolver for its key sets`);
    let row = -1;
    let set = intervals.EMPTY_SET;
    return (i: number, j: number) => {
      if (i !== row) {
        row = i;
        set = resolve(leaf, i, dims);
      }
      return intervals.contains(set, j);
    };
  });
  const make = new Function('T', 'L', 'oTL', 'oBR', 'oPast', `return (i, j) => ${src};`) as (
    ...args: unknown[]
  ) => KeepPredicate;
  return make(tables, L, queryOffset('top-left', dims), queryOffset('bottom-right', dims), queryOffset('past', dims));
}
