// The spec as a boolean keep-mask built from index arithmetic at run time: @attnopt/ir's keep expression
// written out through a table of op -> ONNX nodes, query positions i + offset ([.., S, 1]) against key
// indices j ([T]), sequence lengths read from the scores' shape.
//   causal(bottom-right)  ->  Not(Greater(j, Add(i, nk - nq)))

import {
  type AttentionSpec,
  emitKeep,
  isLowRank,
  type KeepBool,
  type KeepExpr,
  keepExpr,
  type KeepInt,
  keepNodes,
  type KeepTable,
  type Lsh,
  type MaskSpec,
  printSpec,
  type Value,
} from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';

export interface MaskIndices {
  /** Key indices j, int64 [T]. */
  readonly cols: Value;
  /** Query indices i, int64 [S, 1]. */
  readonly rows: Value;
  /** nk - nq as an int64 scalar. */
  readonly bottomRight: Value;
  /** The cached key count per `past` alignment: a scalar, or [B, 1, 1, 1]; undefined = 0. */
  readonly past?: Value;
  /** The keep-mask of a data-dependent LSH leaf (from Q and K), broadcastable like the others. */
  readonly lsh?: (leaf: Lsh) => Value;
}

type Mask = Value | undefined; // undefined: keeps every key

interface Context {
  readonly b: NodeBuilder;
  readonly ix: MaskIndices;
  readonly bool: (e: KeepBool) => Mask;
  readonly int: (e: KeepInt) => Value | undefined; // undefined: 0 (an absent `past`)
  readonly noKeys: () => Value;
}

// LessOrEqual/GreaterOrEqual need opset 12: Not(Greater)/Not(Less) read the same from opset 11
const compare = (op: 'Less' | 'Greater' | 'Equal', negate: boolean) => (e: KeepBool & { a: KeepInt; b: KeepInt; label: string }, { b, int }: Context) => {
  const x = int(e.a) ?? b.scalar('zero', 'i64', 0);
  const y = int(e.b) ?? b.scalar('zero', 'i64', 0);
  return negate ? b.op('Not', [b.op(op, [x, y], `${e.label}_${op === 'Greater' ? 'gt' : 'lt'}`)], e.label) : b.op(op, [x, y], e.label);
};

const arithmetic = (op: 'Add' | 'Sub' | 'Div' | 'Mod') => (e: KeepInt & { a: KeepInt; b: KeepInt; label: string }, { b, int }: Context) => {
  const [x, y] = [int(e.a), int(e.b)];
  if (y === undefined && (op === 'Add' || op === 'Sub')) return x; // x ± 0 -> x
  return b.op(op, [x ?? b.scalar('zero', 'i64', 0), y ?? b.scalar('zero', 'i64', 0)], e.label);
};

/** One entry per op of the keep expression: the ONNX nodes that compute it (int64 indices, bool masks). */
const ONNX: KeepTable<Context, Mask> = {
  bool: (e, { noKeys }) => (e.value ? undefined : noKeys()),
  int: (e, { b }) => b.scalar(e.label, 'i64', e.value),
  var: (e, { ix }) => ({ i: ix.rows, j: ix.cols, offBR: ix.bottomRight, past: ix.past })[e.name],
  add: arithmetic('Add'),
  sub: arithmetic('Sub'),
  div: arithmetic('Div'),
  mod: arithmetic('Mod'),
  lt: compare('Less', false),
  le: compare('Greater', true),
  ge: compare('Less', true),
  eq: compare('Equal', false),
  and: (e, { b, bool }) => {
    const parts = e.parts.map(bool).filter((p): p is Value => p !== undefined);
    return parts.length === 0 ? undefined : parts.reduce((acc, p) => b.op('And', [acc, p], e.label));
  },
  or: (e, { b, bool }) => {
    const parts = e.parts.map(bool);
    if (parts.some((p) => p === undefined)) return undefined;
    return (parts as Value[]).reduce((acc, p) => b.op('Or', [acc, p], e.label));
  },
  not: (e, { b, bool, noKeys }) => {
    const a = bool(e.a);
    return a === undefined ? noKeys() : b.op('Not', [a], e.label);
  },
  in: (e, { b, int }) => {
    const x = int(e.x)!;
    return e.set.values
      .map((t) => b.op('Equal', [x, b.scalar(`${e.set.label}_${t}`, 'i64', t)], `${e.label}_${t}`))
      .reduce((acc, m) => b.op('Or', [acc, m], e.label));
  },
  rowHas: (e) => {
    throw new Error(`not lowered yet: ${printSpec(e.table)}`);
  },
  leaf: (e, { ix }) => {
    if (e.spec.kind !== 'lsh') throw new Error(`not lowered yet: ${printSpec(e.spec)}`);
    if (ix.lsh === undefined) throw new Error(`${printSpec(e.spec)}: the LSH keep-mask needs Q and K (no lsh hook given)`);
    return ix.lsh(e.spec);
  },
};

/** A spec the lowering cannot express with index arithmetic yet (a term without an entry in the ONNX table). */
export function unsupportedSpec(spec: AttentionSpec): string | undefined {
  if (isLowRank(spec)) return `not lowered yet: ${printSpec(spec)}`;
  for (const e of keepNodes(keepExpr(spec))) {
    if (e.op === 'rowHas') return `not lowered yet: ${printSpec(e.table)}`;
    if (e.op === 'leaf' && e.spec.kind !== 'lsh') return `not lowered yet: ${printSpec(e.spec)}`;
  }
  return undefined;
}

/** Keep-mask of `spec` (undefined: keeps everything), broadcastable to [B, H, S, T]. */
export function specMask(b: NodeBuilder, spec: MaskSpec, ix: MaskIndices): Value | undefined {
  // a subterm used twice (the query position of a window) is computed once
  const done = new Map<KeepExpr, Mask>();
  const memo =
    <E extends KeepExpr>(f: (e: E) => Mask) =>
    (e: E): Mask => {
      if (!done.has(e)) done.set(e, f(e));
      return done.get(e);
    };
  const cx: Context = {
    b,
    ix,
    bool: memo((e: KeepBool) => emitKeep(ONNX, e, cx)),
    int: memo((e: KeepInt) => emitKeep(ONNX, e, cx)),
    noKeys: () => b.op('Less', [ix.cols, b.scalar('zero', 'i64', 0)], 'no_keys'),
  };
  return cx.bool(keepExpr(spec));
}
