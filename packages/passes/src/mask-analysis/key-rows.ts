// The residual bias on the proven keys, one query row: a mask the model builds over [B, 1, S, T] whose data part
// (padding, ALiBi) does not vary along the query axis becomes a key bias [B, 1, 1, T] once the structural part is
// read on the keys the spec keeps, so the banded and guarded forms can take the site (lower/key-bias.ts).
//   spec S, bias R = Where(pad[B,1,S,T], min, causal[B,1,S,T])  ->  spec S, bias Where(pad[B,1,1,T], min, 0)
// Each structural sub-value (a predicate, indicator or additive mask of (i, j) alone) that is constant on S
// (implied true or false by S's keep formula, symbolically) becomes that constant, and so does a uniform fill
// moved by Reshape / Expand (baddbmm's zero input); Expand is dropped (the site broadcasts its bias to the
// scores, from the right, as Expand did); elementwise ops are rebuilt on the rows of their inputs. A value
// already of one row (size 1 on the query axis, or rank below 2) is taken as it is. On every pair (i, j) that S
// keeps the new bias equals R: the constants equal the values they replace there, and every op on the way is
// elementwise, so with S as the spec the site computes what it did. Anything else (a Reshape of data, a Gather,
// an index field met beside data) leaves the residual as it was. A Slice from index 0 is the same Slice of the row.

import { type DType, type Graph, type Node, ONNX_DOMAIN, Tensor, type Value } from '@attnopt/ir';
import { attrInt, attrInts, NodeBuilder } from '@attnopt/rewrite';
import { inferDtype, inferShape, staticInts, symbolicShape } from '../shape-inference/shapes.js';
import { type AbstractValue, type Formula, leadingReshape, symIsConst, symSub, tableFormula } from './symbolic.js';
import { nnf } from './prove.js';

/** Ops applied per element (with broadcasting from the right): they keep a value's query axis where it was. */
const ELEMENTWISE: ReadonlySet<string> = new Set([
  'Identity', 'Cast', 'Not', 'Neg', 'Abs', 'Sqrt', 'Exp', 'Log', 'Sigmoid', 'Tanh', 'IsNaN', 'IsInf', 'Reciprocal', 'Floor', 'Ceil',
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Min', 'Max', 'Clip', 'Where', 'And', 'Or', 'Xor',
  'Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual',
]);

function conjuncts(f: Formula): Formula[] {
  return f.op === 'and' ? f.parts.flatMap(conjuncts) : [f];
}

/** Whether the atom `a` implies the atom `b` for every length: the same index terms, b's offset no smaller. */
function atomImplies(a: Formula, b: Formula & { op: 'lin' }): boolean {
  if (a.op === 'const') return !a.value;
  if (a.op !== 'lin' || a.ci !== b.ci || a.cj !== b.cj) return false;
  const d = symSub(b.c, a.c);
  return symIsConst(d) && d.c >= 0;
}

/** Whether `keep` (NNF) implies `f` (NNF) on every pair and length; false when it cannot tell. */
export function implies(keep: Formula, f: Formula): boolean {
  if (keep.op === 'or') return keep.parts.every((p) => implies(p, f));
  switch (f.op) {
    case 'const':
      return f.value || (keep.op === 'const' && !keep.value);
    case 'and':
      return f.parts.every((p) => implies(keep, p));
    case 'or':
      return f.parts.some((p) => implies(keep, p));
    case 'lin':
      return conjuncts(keep).some((c) => atomImplies(c, f));
    default:
      return false;
  }
}

/** The value a structural reading takes on every pair `keep` holds on, or undefined when it is not constant there. */
function valueOnKept(av: AbstractValue | undefined, keep: Formula): { kind: 'bool' | 'number'; x: number } | undefined {
  if (!av) return undefined;
  const truth = (f: Formula): boolean | undefined => (implies(keep, nnf(f)) ? true : implies(keep, nnf(f, true)) ? false : undefined);
  if (av.kind === 'pred' || av.kind === 'ind') {
    const t = truth(av.formula);
    return t === undefined ? undefined : { kind: av.kind === 'pred' ? 'bool' : 'number', x: t ? 1 : 0 };
  }
  if (av.kind === 'bias') {
    // 0 where every mask term keeps the pair, a term's fill where it alone drops it (whether the terms were
    // added or filled one into another, the value is that fill); a data term stays data
    const dropped: number[] = [];
    for (const t of av.terms) {
      const kept = t.kind === 'mask' ? truth(t.keep) : undefined;
      if (kept === undefined) return undefined;
      if (!kept && t.kind === 'mask') dropped.push(t.fill);
    }
    return dropped.length <= 1 ? { kind: 'number', x: dropped[0] ?? 0 } : undefined;
  }
  if (av.kind === 'table' && av.table.bool) {
    // a boolean buffer read as its band (a causal tril sliced), as the proof read it
    const f = tableFormula(av.table, (x) => x !== 0, undefined);
    const t = f && truth(f);
    return t === undefined ? undefined : { kind: 'bool', x: t ? 1 : 0 };
  }
  return undefined;
}

const holdsData = (f: Formula): boolean => f.op === 'data' || ((f.op === 'and' || f.op === 'or') && f.parts.some(holdsData)) || (f.op === 'not' && holdsData(f.x));

function isStructural(av: AbstractValue | undefined): boolean {
  if (!av) return false;
  if (av.kind === 'pred' || av.kind === 'ind') return !holdsData(av.formula);
  if (av.kind === 'bias') return av.terms.every((t) => t.kind === 'mask' && !holdsData(t.keep));
  return av.kind === 'table' && av.table.bool;
}

/** One row already: rank below 2, or size 1 on the query axis (the second to last). */
export function oneRow(v: Value): boolean {
  const s = inferShape(v);
  return s !== undefined && (s.length < 2 || s[s.length - 2] === 1);
}

/** Ops that move a tensor's elements without changing them: a uniform input gives a uniform output. */
const MOVES: ReadonlySet<string> = new Set(['Identity', 'Reshape', 'Expand', 'Transpose', 'Squeeze', 'Unsqueeze', 'Flatten']);

/** The one value every element of `v` holds (a constant fill, moved around: baddbmm's zero input), if known. */
function uniformOf(v: Value, readings: ReadonlyMap<Value, AbstractValue>, depth = 0): number | undefined {
  const av = readings.get(v);
  if (av?.kind === 'ints') return av.values.length === 1 && symIsConst(av.values[0]!) ? av.values[0]!.c : undefined;
  const n = v.producer;
  if (!n || depth > 16 || n.domain !== ONNX_DOMAIN || !MOVES.has(n.op) || !n.inputs[0]) return undefined;
  return uniformOf(n.inputs[0], readings, depth + 1);
}

/** Whether a Slice (opset 10+, bounds as inputs) starts every axis it cuts at 0, with steps of 1. */
function slicesFromZero(n: Node): boolean {
  const starts = staticInts(n.inputs[1]);
  const steps = n.inputs[4] ? staticInts(n.inputs[4]) : [];
  return starts !== undefined && starts.every((s) => s === 0) && steps !== undefined && steps.every((s) => s === 1);
}

/** Whether a Reshape's static target copies its input's last two axes (0, 0 or 0, -1; allowzero unset). */
function copiesLastTwo(n: Node): boolean {
  const t = staticInts(n.inputs[1]);
  return t !== undefined && t.length >= 2 && t[t.length - 2] === 0 && (t[t.length - 1] === 0 || t[t.length - 1] === -1) && (attrInt(n, 'allowzero') ?? 0) === 0;
}

/** Whether a Transpose or Unsqueeze of a rank-`rank` value leaves its last two axes (query, key) last. */
function keepsQueryKeyAxes(n: Node, rank: number): boolean {
  if (n.op === 'Transpose') {
    const perm = attrInts(n, 'perm') ?? Array.from({ length: rank }, (_, k) => rank - 1 - k);
    return rank >= 2 && perm.length === rank && perm[rank - 2] === rank - 2 && perm[rank - 1] === rank - 1;
  }
  const axes = attrInts(n, 'axes') ?? staticInts(n.inputs[1]);
  const out = rank + (axes?.length ?? 0);
  return rank >= 2 && axes !== undefined && axes.every((a) => (a < 0 ? a + out : a) < out - 2);
}

export interface KeyRowsInput {
  /** The residual bias the proof kept. */
  readonly residual: Value;
  /** The proven spec's keep formula (structural, NNF) and the evaluator's readings of the values it visited. */
  readonly keep: Formula;
  readonly readings: ReadonlyMap<Value, AbstractValue>;
  /** The prefix of the new values' names (default `<residual>/key_rows`). */
  readonly base?: string;
}

/**
 * The residual restricted to the proven keys as one query row (see the comment at the top), with the nodes to
 * insert before the site; undefined when some part of it has no such form or it is one row already.
 */
export function keyRowsResidual(graph: Graph, x: KeyRowsInput): { value: Value; nodes: Node[] } | undefined {
  if (oneRow(x.residual)) return undefined;
  const keep = nnf(x.keep);
  const b = new NodeBuilder(graph, x.base ?? `${x.residual.name}/key_rows`);
  const memo = new Map<Value, Value | undefined>();
  const rowOf = (v: Value, depth: number): Value | undefined => {
    if (memo.has(v)) return memo.get(v);
    const out = build(v, depth);
    memo.set(v, out);
    return out;
  };
  // the row of x at x's rank `rank` (Expand prepends 1s: the row broadcasts as x did), if its rank is no larger
  const rowAtRank = (x: Value, rank: number, depth: number): Value | undefined => {
    const row = rowOf(x, depth + 1);
    const rowRank = row && inferShape(row)?.length;
    if (!row || rowRank === undefined || rowRank > rank) return undefined;
    return rowRank < rank ? b.op('Expand', [row, b.constant('ones', Tensor.fromValues('i64', [rank], Array<bigint>(rank).fill(1n)))], 'rank') : row;
  };
  const build = (v: Value, depth: number): Value | undefined => {
    if (depth > 64) return undefined;
    const av = x.readings.get(v);
    if (isStructural(av)) {
      // (an indicator may be boolean itself: a Trilu of a boolean ConstantOfShape); a value not constant on the
      // kept pairs as read (an additive mask where some of its terms drop the pair: the reading does not say
      // whether the fills replace or add) is rebuilt from its inputs below
      const c = valueOnKept(av, keep);
      const dtype: DType | undefined = inferDtype(v);
      if (c !== undefined && dtype !== undefined && (c.kind !== 'bool' || dtype === 'bool')) {
        return b.constant('on_kept', Tensor.fromValues(dtype, [], dtype === 'i64' || dtype === 'i32' ? [BigInt(c.x)] : [c.x]));
      }
    }
    if (oneRow(v)) return v;
    const u = uniformOf(v, x.readings);
    const dtype = inferDtype(v);
    if (u !== undefined && dtype !== undefined) return b.constant('uniform', Tensor.fromValues(dtype, [], dtype === 'i64' || dtype === 'i32' ? [BigInt(u)] : dtype === 'bool' ? [u !== 0 ? 1 : 0] : [u]));
    const n = v.producer;
    if (!n || n.domain !== ONNX_DOMAIN || n.outputs.length !== 1) return undefined;
    // Expand(x, shape) -> the row of x: the site broadcasts its bias to the scores, so what Expand added is not needed
    if (n.op === 'Expand') return n.inputs[0] && rowOf(n.inputs[0], depth + 1);
    // Transpose / Unsqueeze that keep the query and key axes last (a heads axis moved or inserted) -> the same op on
    // the row of x, brought back to x's rank first
    if ((n.op === 'Transpose' || n.op === 'Unsqueeze') && n.inputs[0]) {
      const rank = inferShape(n.inputs[0])?.length;
      const full = rank !== undefined && keepsQueryKeyAxes(n, rank) ? rowAtRank(n.inputs[0], rank, depth) : undefined;
      return full && b.op(n.op, [full, ...n.inputs.slice(1)], n.op.toLowerCase(), Object.fromEntries(n.attrs));
    }
    // Reshape regrouping only leading axes, its target copying the query and key axes ([-1, H, 0, 0]) -> the same
    // Reshape of the row of x, when that row kept x's leading axes (else the regrouping would not line up)
    if (n.op === 'Reshape' && n.inputs[0] && n.inputs[1] && leadingReshape(n) !== undefined && copiesLastTwo(n)) {
      const from = symbolicShape(n.inputs[0]);
      const full = from && rowAtRank(n.inputs[0], from.length, depth);
      const lead = full && symbolicShape(full);
      if (!from || !lead || lead.length !== from.length || lead.slice(0, -2).some((d, k) => d !== from[k])) return undefined;
      return b.op('Reshape', [full, n.inputs[1]], 'reshape', Object.fromEntries(n.attrs));
    }
    // Slice from index 0 (step 1) -> the same Slice of the row of x (a query axis of size 1 cut from 0 stays 1)
    if (n.op === 'Slice' && n.inputs[0] && slicesFromZero(n)) {
      const rank = inferShape(n.inputs[0])?.length;
      const full = rank !== undefined ? rowAtRank(n.inputs[0], rank, depth) : undefined;
      return full && b.op('Slice', [full, ...n.inputs.slice(1)], 'slice');
    }
    if (!ELEMENTWISE.has(n.op) || n.inputs.length === 0) return undefined;
    const ins: (Value | undefined)[] = [];
    for (const input of n.inputs) {
      if (input === undefined) {
        ins.push(undefined);
        continue;
      }
      const row = rowOf(input, depth + 1);
      if (!row) return undefined;
      ins.push(row);
    }
    if (ins.every((r, k) => r === n.inputs[k])) return v; // every input is one row: so is v (its shape was not inferred)
    return b.op(n.op, ins, n.op.toLowerCase(), Object.fromEntries(n.attrs));
  };
  const value = rowOf(x.residual, 0);
  if (!value || !oneRow(value)) return undefined;
  return { value, nodes: b.nodes };
}
