// Symbolic evaluation of a mask or bias expression: every node between the model's inputs and an Attention's
// `bias` is read as a function of (i, j) (query and key index, the last two axes) with lengths kept symbolic.
//   Range(0, S) -> field i or j;  Less(a, b) -> linear atom b - a - 1 >= 0;  Where(p, -inf, 0) -> bias{keep: ¬p}
//   Min / Max / Clip / Abs of fields -> min/max trees (piecewise.ts), compared leaf by leaf;
//   a mask clamped at a masking level (max(mask, finfo.min), min(mask, 0)) -> the mask (clampedBias);
//   constant buffers -> tables (kept as data, read as bands when they meet the spec);  model inputs -> opaque;
//   anything else -> opaque too: a value not read is data, kept in the bias, never a proof.
// Nothing here allocates per n x n beyond copying a constant buffer the model already holds.

import { ONNX_DOMAIN, type Node, type Tensor, type Value } from '@attnopt/ir';
import { constantTensor } from '@attnopt/rewrite';
import { inferShape, symbolicShape } from '../shape-inference/shapes.js';
import type { Expr } from '../shape-inference/symbolic-shapes/expr.js';
import {
  fAnd,
  fLin,
  fNot,
  fOr,
  type Formula,
  type Sym,
  symAdd,
  symCombine,
  symConst,
  symEq,
  symIsConst,
  symMul,
  symScale,
  symSub,
  symToString,
  symVar,
} from './formula.js';
import { atLeastZero, type Field, fromField, mapLeaves, type MinMax, minMax, minMaxCombine, minMaxScale, treeLeaves } from './piecewise.js';

export * from './formula.js';

/** A float additive term: 0 where `keep` holds, `fill` (a masking value) elsewhere; or a data-dependent value. */
export type BiasTerm =
  | { readonly kind: 'mask'; readonly keep: Formula; readonly fill: number }
  | { readonly kind: 'data'; readonly value: Value; readonly reason: string };

/** A constant buffer's last two axes (leading axes have size 1), seen through slices at offsets r0, c0. */
export interface Table {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array;
  readonly bool: boolean;
  readonly r0: Sym;
  readonly c0: Sym;
  /** Slice ends (exclusive) when sliced by a symbolic or smaller length: preconditions end <= rows / cols. */
  readonly rEnd?: Sym;
  readonly cEnd?: Sym;
  readonly name: string;
}

/** Abstract values; `rank` is the tensor rank where known. */
export type AbstractValue =
  | { readonly kind: 'ints'; readonly values: readonly Sym[]; readonly scalar: boolean; readonly rank: number }
  | { readonly kind: 'field'; readonly rank: number; readonly coef: Readonly<Record<number, number>>; readonly offset: Sym }
  | { readonly kind: 'pred'; readonly rank: number; readonly formula: Formula }
  | { readonly kind: 'ind'; readonly rank: number; readonly formula: Formula }
  | { readonly kind: 'bias'; readonly rank: number; readonly terms: readonly BiasTerm[] }
  | { readonly kind: 'table'; readonly rank: number; readonly table: Table }
  | { readonly kind: 'minmax'; readonly rank: number; readonly tree: MinMax }
  | { readonly kind: 'opaque'; readonly value: Value; readonly reason: string }
  | { readonly kind: 'fail'; readonly reason: string };

/** Fill values at or below this count as masked: -inf, finfo(f32).min, -1e9, -10000. */
export const MASKED_AT_OR_BELOW = -1e4;
export const isMaskedFill = (x: number) => x <= MASKED_AT_OR_BELOW;

export interface EvalContext {
  /** Every node read while evaluating (candidates for removal once the bias is dropped). */
  readonly visited: Set<Node>;
  /** Preconditions the proof relies on (buffer bounds), in words. */
  readonly preconditions: string[];
  readonly memo: Map<Value, AbstractValue>;
  /**
   * Set when a data-dependent part was moved to other leading axes (Unsqueeze or Transpose before the query and
   * key axes: a mask over [B, S, T] given a heads axis): its value no longer broadcasts to the bias as it is, so
   * the whole bias stays as the residual.
   */
  movedData: boolean;
}

export const newContext = (): EvalContext => ({ visited: new Set(), preconditions: [], memo: new Map(), movedData: false });

const fail = (reason: string): AbstractValue => ({ kind: 'fail', reason });
const structural = (a: AbstractValue) => a.kind === 'field' || a.kind === 'minmax' || a.kind === 'pred' || a.kind === 'ind' || a.kind === 'bias';
const rankOf = (a: AbstractValue): number => ('rank' in a ? a.rank : 0);

const formulaHoldsData = (f: Formula): boolean =>
  f.op === 'data' || ((f.op === 'and' || f.op === 'or') && f.parts.some(formulaHoldsData)) || (f.op === 'not' && formulaHoldsData(f.x));
/**
 * Whether a structural value carries a data-dependent part, kept as the bias by its own value: only
 * broadcast-preserving ops (elementwise, Expand, leading Unsqueeze) may then act on it, so that value still
 * broadcasts to the bias the way the part did.
 */
function holdsData(a: AbstractValue): boolean {
  if (a.kind === 'bias') return a.terms.some((t) => t.kind === 'data' || formulaHoldsData(t.keep));
  return (a.kind === 'pred' || a.kind === 'ind') && formulaHoldsData(a.formula);
}

/**
 * A named dim as a sum of symbols: `past_sequence_length + sequence_length` -> past_sequence_length +
 * sequence_length (so the key length of a concatenation and the lengths it adds up compare equal).
 */
export function namedDimSym(d: string): Sym {
  const parts = d.split('+').map((x) => x.trim());
  if (parts.length < 2 || parts.some((x) => !/^[A-Za-z_][\w.]*$/.test(x) && !/^\d+$/.test(x))) return symVar(d);
  return parts.map((x) => (/^\d+$/.test(x) ? symConst(Number(x)) : symVar(x))).reduce(symAdd);
}

function dimSym(v: Value, k: number, dims: readonly (number | string | undefined)[] | undefined): Sym {
  const d = dims?.[k];
  if (typeof d === 'number') return symConst(d);
  if (typeof d === 'string' && d !== '?') return namedDimSym(d);
  return symVar(`${v.name}.shape[${k}]`);
}

/**
 * The symbolic shape of a value from its type, else as inferred from its producers (unknown dims get a fresh
 * symbol named after the value).
 */
export function shapeSyms(v: Value): Sym[] | undefined {
  const t = v.type;
  const dims = t?.kind === 'tensor' && t.shape !== undefined ? t.shape : inferShape(v);
  if (dims === undefined) return undefined;
  // the shape engine's expression where it is a sum of lengths (a present key's length is past + seq, whatever
  // name the model gave that output's dim), else the dim as declared or inferred
  const engine = symbolicShape(v);
  return dims.map((_, k) => (engine?.length === dims.length ? exprSym(engine[k]!) : undefined) ?? dimSym(v, k, dims as readonly (number | string | undefined)[]));
}

/** An engine expression as a Sym: constants and named (non-fresh) symbols with integer coefficients only. */
function exprSym(e: Expr): Sym | undefined {
  let c = 0;
  const t: Record<string, number> = {};
  for (const term of e.terms) {
    const f = term.mono.factors;
    if (!Number.isInteger(term.coef)) return undefined;
    if (f.length === 0) c += term.coef;
    else if (f.length === 1 && f[0]![1] === 1 && f[0]![0].kind === 'symbol' && !f[0]![0].fresh) t[f[0]![0].name] = term.coef;
    else return undefined;
  }
  return { c, t };
}

function fromTensor(t: Tensor, name: string): AbstractValue {
  if (t.dtype === 'string') return fail(`constant ${name} holds strings`);
  let xs: Float64Array;
  try {
    xs = t.toFloat64();
  } catch {
    return fail(`constant ${name} has dtype ${t.dtype}`);
  }
  const rank = t.shape.length;
  if (xs.length > 0 && xs.every((x) => Object.is(x, xs[0]) || x === xs[0])) {
    if (rank <= 1 && xs.length <= 64) return { kind: 'ints', values: [...xs].map(symConst), scalar: rank === 0, rank };
    return { kind: 'ints', values: [symConst(xs[0]!)], scalar: true, rank };
  }
  if (rank <= 1 && xs.length <= 64) return { kind: 'ints', values: [...xs].map(symConst), scalar: rank === 0, rank };
  if (rank >= 2 && t.shape.slice(0, -2).every((d) => d === 1)) {
    const rows = t.shape[rank - 2]!;
    const cols = t.shape[rank - 1]!;
    return { kind: 'table', rank, table: { rows, cols, data: xs, bool: t.dtype === 'bool', r0: symConst(0), c0: symConst(0), name } };
  }
  return fail(`constant ${name} of shape [${t.shape.join(', ')}] is neither uniform nor a 2D buffer`);
}

/** One scalar (an `ints` of one element) or undefined. */
function scalarOf(a: AbstractValue): Sym | undefined {
  return a.kind === 'ints' && a.values.length === 1 ? a.values[0] : undefined;
}
function constScalar(a: AbstractValue): number | undefined {
  const s = scalarOf(a);
  return s && symIsConst(s) ? s.c : undefined;
}

function intAttr(n: Node, name: string, dflt: number): number {
  const a = n.attrs.get(name);
  return a?.type === 'int' ? Number(a.value) : dflt;
}
function intsAttr(n: Node, name: string): number[] | undefined {
  const a = n.attrs.get(name);
  return a?.type === 'ints' ? a.value.map(Number) : undefined;
}

/**
 * Evaluates `v` symbolically. A value the analysis cannot read is data to it (`opaque`): every rule treats an
 * opaque value as any tensor at all, so reading it as data never proves more than holds; it stays in the bias.
 *   Gather(table, bucket(i - j))  ->  opaque (a relative-position bias kept as the residual)
 */
export function evaluate(v: Value | undefined, ctx: EvalContext): AbstractValue {
  if (v === undefined) return fail('an omitted input');
  const hit = ctx.memo.get(v);
  if (hit) return hit;
  const read = evaluateUncached(v, ctx);
  const r: AbstractValue = read.kind === 'fail' ? { kind: 'opaque', value: v, reason: `${read.reason} (read as data, kept as bias)` } : read;
  ctx.memo.set(v, r);
  return r;
}

function evaluateUncached(v: Value, ctx: EvalContext): AbstractValue {
  const c = constantTensor(v);
  if (c) {
    if (v.producer) ctx.visited.add(v.producer);
    return fromTensor(c, v.name);
  }
  const n = v.producer;
  if (!n) return { kind: 'opaque', value: v, reason: `bias reads model input ${JSON.stringify(v.name)}: data-dependent, kept as bias` };
  ctx.visited.add(n);
  if (n.domain !== ONNX_DOMAIN) return fail(`${n.describe()} is not a standard ONNX op`);
  if (n.op === 'Constant') {
    const f = n.attrs.get('value_float') ?? n.attrs.get('value_int');
    if (f?.type === 'float' || f?.type === 'int') return { kind: 'ints', values: [symConst(Number(f.value))], scalar: true, rank: 0 };
    const fs = n.attrs.get('value_ints') ?? n.attrs.get('value_floats');
    if (fs?.type === 'ints' || fs?.type === 'floats') return { kind: 'ints', values: fs.value.map((x) => symConst(Number(x))), scalar: false, rank: 1 };
    return fail(`${n.describe()}: unsupported Constant`);
  }
  if (n.op === 'Shape') {
    const x = n.inputs[0];
    let dims = x && shapeSyms(x);
    const st = intAttr(n, 'start', 0);
    const en = n.attrs.has('end') ? intAttr(n, 'end', 0) : undefined;
    // an untyped input still has a length on the axis asked for: Shape(x, start=-2, end=-1) -> x.shape[-2]
    if (!dims && x && en !== undefined && st < 0 && en === st + 1) return { kind: 'ints', values: [symVar(`${x.name}.shape[${st}]`)], scalar: false, rank: 1 };
    if (!dims) return fail(`${n.describe()}: the shape of its input is not known`);
    const r = dims.length;
    const norm = (k: number) => Math.min(r, Math.max(0, k < 0 ? k + r : k));
    const out = dims.slice(norm(intAttr(n, 'start', 0)), norm(intAttr(n, 'end', r)));
    return { kind: 'ints', values: out, scalar: false, rank: 1 };
  }
  const ins = n.inputs.map((x) => (x === undefined ? undefined : evaluate(x, ctx)));
  const present = ins.filter((x): x is AbstractValue => x !== undefined);
  const firstFail = present.find((x) => x.kind === 'fail');
  const opaque = present.find((x) => x.kind === 'opaque');
  // data-dependent absorbs everything but structure: the largest data-only subexpression stays one value
  // (a constant buffer as Where's condition is structure too: Where(tril[...], D, -inf) keeps D inside the band;
  // so is one And-ed or Or-ed with data: And(tril[...], padding) keeps the band where the padding does)
  const tableCond = (n.op === 'Where' && ins[0]?.kind === 'table') || ((n.op === 'And' || n.op === 'Or') && present.some((x) => x.kind === 'table'));
  if (opaque && !present.some(structural) && !tableCond && !(n.op === 'Add' && present.some((x) => x.kind === 'table'))) {
    return { kind: 'opaque', value: n.outputs[0]!, reason: opaque.kind === 'opaque' ? opaque.reason : '' };
  }
  if (firstFail) return firstFail;
  try {
    return step(n, ins, ctx);
  } catch (e) {
    return fail(`${n.describe()}: ${(e as Error).message}`);
  }
}

class Unsupported extends Error {}
const no = (why: string): never => {
  throw new Unsupported(why);
};

/** Positions (from the end) of the axes inserted by Unsqueeze must leave the last two axes in place. */
function unsqueezeRank(n: Node, ins: readonly (AbstractValue | undefined)[], rank: number): number[] {
  const axes = ins[1] ? ins[1].kind === 'ints' && ins[1].values.every(symIsConst) ? ins[1].values.map((s) => s.c) : no('axes are not constant') : intsAttr(n, 'axes') ?? no('no axes');
  const out = rank + axes.length;
  return axes.map((a) => (a < 0 ? a + out : a)).sort((a, b) => a - b);
}

function step(n: Node, ins: readonly (AbstractValue | undefined)[], ctx: EvalContext): AbstractValue {
  const a = ins[0];
  const b = ins[1];
  switch (n.op) {
    case 'Identity':
      return a ?? no('no input');
    case 'Cast': {
      const to = intAttr(n, 'to', 1);
      const toBool = to === 9;
      const toFloat = to === 1 || to === 10 || to === 11 || to === 16;
      if (!a) return no('no input');
      if (a.kind === 'pred') return toBool ? a : { kind: 'ind', rank: a.rank, formula: a.formula };
      if (a.kind === 'ind') return toBool ? { kind: 'pred', rank: a.rank, formula: a.formula } : a;
      if (a.kind === 'bias') return toFloat ? a : no('a float bias cast to a non-float type');
      if (a.kind === 'table') return toBool ? mapTable(a, (x) => (x !== 0 ? 1 : 0), true) : { ...a, table: { ...a.table, bool: false } };
      if (a.kind === 'ints') return toBool ? { ...a, values: a.values.map((s) => (symIsConst(s) ? symConst(s.c !== 0 ? 1 : 0) : no('symbolic cast to bool'))) } : a;
      return a;
    }
    case 'Squeeze':
    case 'Unsqueeze': {
      if (!a) return no('no input');
      if (a.kind === 'ints') {
        if (n.op === 'Squeeze') return a.values.length === 1 ? { ...a, scalar: true, rank: 0 } : no('squeezing a vector');
        const axes = unsqueezeRank(n, ins, a.rank);
        return { ...a, scalar: false, rank: a.rank + axes.length };
      }
      if (n.op === 'Squeeze') return no('Squeeze of an index tensor');
      const axes = unsqueezeRank(n, ins, rankOf(a));
      const outRank = rankOf(a) + axes.length;
      if (a.kind === 'field' || a.kind === 'minmax') {
        // keep each coefficient on its old axis, renumbered from the end of the new rank
        const oldPositions: number[] = [];
        for (let p = 0; p < outRank; p++) if (!axes.includes(p)) oldPositions.push(p);
        const renumber = (f: Field): Field => {
          const coef: Record<number, number> = {};
          for (const [k, x] of Object.entries(f.coef)) coef[oldPositions[a.rank + Number(k)]! - outRank] = x;
          return { coef, offset: f.offset };
        };
        return a.kind === 'field' ? { ...a, rank: outRank, ...renumber(a) } : { ...a, rank: outRank, tree: mapLeaves(a.tree, renumber) };
      }
      if (axes.some((p) => p >= outRank - 2)) return no('Unsqueeze inserts an axis among the query/key axes');
      if (holdsData(a) && axes.some((p, k) => p !== k)) ctx.movedData = true;
      return { ...a, rank: outRank } as AbstractValue;
    }
    case 'Expand': {
      if (!a || !b || b.kind !== 'ints') return no('Expand to a non-constant shape');
      if (a.kind === 'ints' && a.scalar) return { ...a, rank: Math.max(a.rank, b.values.length) };
      return { ...a, rank: Math.max(rankOf(a), b.values.length) } as AbstractValue;
    }
    case 'Transpose': {
      // leading axes may move (a heads axis made by Expand + Transpose); the query and key axes of a mask may not.
      // An index field may move any axis (ModernBERT's rows.T: arange(n)[None, :] -> [n, 1], j -> i)
      if (!a) return no('no input');
      // a uniform fill is the same fill in any axis order
      if (a.kind === 'ints' && a.scalar && a.values.length === 1) return a;
      const r = rankOf(a);
      const perm = intsAttr(n, 'perm') ?? Array.from({ length: r }, (_, k) => r - 1 - k);
      const indexField = a.kind === 'field' || a.kind === 'minmax';
      if (r < 2 || perm.length !== r || (!indexField && (perm[r - 2] !== r - 2 || perm[r - 1] !== r - 1))) return no('Transpose moves the query/key axes');
      if (holdsData(a) && perm.some((p, k) => p !== k)) ctx.movedData = true;
      // coefficients are keyed by axis position from the end: output axis p reads input axis perm[p]
      const permute = (f: Field): Field => {
        const coef: Record<number, number> = {};
        for (let p = 0; p < r; p++) {
          const x = f.coef[perm[p]! - r];
          if (x !== undefined) coef[p - r] = x;
        }
        return { coef, offset: f.offset };
      };
      if (a.kind === 'field') return { ...a, ...permute(a) };
      if (a.kind === 'minmax') return { ...a, tree: mapLeaves(a.tree, permute) };
      return a;
    }
    case 'Tile':
      return tile(a, b);
    case 'Min':
    case 'Max':
      return extremum(n.op === 'Min' ? 'min' : 'max', ins);
    case 'Clip': {
      // Clip(x, lo, hi) -> max(min(x, hi), lo); bounds as inputs from opset 11, as attributes before
      const bound = (at: number, name: string): AbstractValue | undefined => {
        const attr = n.attrs.get(name);
        return ins[at] ?? (attr?.type === 'float' ? { kind: 'ints', values: [symConst(attr.value)], scalar: true, rank: 0 } : undefined);
      };
      return extremum('max', [extremum('min', [a, bound(2, 'max')]), bound(1, 'min')]);
    }
    case 'Abs':
      // |x| -> max(x, -x)
      return extremum('max', [a, mul(a, { kind: 'ints', values: [symConst(-1)], scalar: true, rank: 0 })]);
    case 'Gather': {
      if (!a || a.kind !== 'ints' || !b) return no('Gather of a non-shape value');
      if (b.kind === 'ints' && !b.scalar && b.values.length !== 1) {
        // several entries of a shape vector (Shape(Q)[0 : r-1])
        if (!b.values.every(symIsConst)) return no('Gather by a non-constant index');
        const v = b.values.map(({ c }) => a.values[c < 0 ? c + a.values.length : c] ?? no(`index ${c} out of range`));
        return { kind: 'ints', values: v, scalar: false, rank: 1 };
      }
      const k = constScalar(b);
      if (k === undefined || (b.kind === 'ints' && !b.scalar && b.values.length !== 1)) return no('Gather by a non-constant index');
      const el = a.values[k < 0 ? k + a.values.length : k] ?? no(`index ${k} out of range`);
      return { kind: 'ints', values: [el], scalar: b.kind === 'ints' && b.scalar, rank: b.kind === 'ints' ? b.rank : 0 };
    }
    case 'Concat': {
      if (!ins.every((x) => x?.kind === 'ints')) return concatKeys(n, ins);
      return { kind: 'ints', values: ins.flatMap((x) => (x as { readonly values: readonly Sym[] }).values), scalar: false, rank: 1 };
    }
    case 'ConstantOfShape': {
      if (!a || a.kind !== 'ints') return no('ConstantOfShape of an unknown shape');
      const va = n.attrs.get('value');
      const x = va?.type === 'tensor' ? va.value.toFloat64()[0] ?? 0 : 0;
      return { kind: 'ints', values: [symConst(x)], scalar: true, rank: a.values.length };
    }
    case 'Range': {
      const start = a && scalarOf(a);
      const limit = b && scalarOf(b);
      const delta = ins[2] && constScalar(ins[2]);
      if (!start || !limit || delta === undefined) return no('Range bounds are not scalars');
      return { kind: 'field', rank: 1, coef: { [-1]: delta }, offset: start };
    }
    case 'Add':
    case 'Sub':
      return addSub(n.op === 'Sub', a, b, n.inputs);
    case 'Mul':
      return mul(a, b);
    case 'Neg':
      return mul(a, { kind: 'ints', values: [symConst(-1)], scalar: true, rank: 0 });
    case 'Less':
    case 'LessOrEqual':
    case 'Greater':
    case 'GreaterOrEqual':
    case 'Equal':
      return compare(n.op, a, b);
    case 'Not':
      if (a?.kind === 'pred') return { ...a, formula: fNot(a.formula) };
      if (a?.kind === 'table') return mapTable(a, (x) => (x !== 0 ? 0 : 1), true);
      return no('Not of an unsupported value');
    case 'And':
    case 'Or': {
      if (a?.kind === 'table' && b?.kind === 'table') return no('And/Or of two buffers');
      const fa = asFormula(a, ctx);
      const fb = asFormula(b, ctx);
      return { kind: 'pred', rank: Math.max(rankOf(a!), rankOf(b!)), formula: n.op === 'And' ? fAnd(fa, fb) : fOr(fa, fb) };
    }
    case 'Reshape':
      // a uniform fill (ConstantOfShape: baddbmm's zeros) is the same fill in any shape
      if (a?.kind === 'ints' && a.scalar && a.values.length === 1 && b?.kind === 'ints') return { ...a, rank: b.values.length };
      // only the leading axes regrouped, the query and key axes kept (tril(n, n).view(1, 1, n, n); [B·H, S, T] ->
      // [B, H, S, T]): the same function of (i, j); a data part regrouped no longer broadcasts as it did
      if (a && a.kind !== 'ints' && a.kind !== 'opaque' && a.kind !== 'fail') {
        const kept = leadingReshape(n);
        // (an index field may vary along a leading axis, which a regrouping would move: only all-ones pass it)
        if (kept !== undefined && (kept.onesOnly || (a.kind !== 'field' && a.kind !== 'minmax'))) {
          if (!kept.onesOnly && holdsData(a)) ctx.movedData = true;
          return { ...a, rank: kept.rank } as AbstractValue;
        }
      }
      return reshape(a, b);
    case 'Where':
      return where(ins, ctx, n.outputs[0]!, n.inputs);
    case 'Trilu':
      return trilu(n, ins);
    case 'Slice':
      return slice(ins, ctx);
    default:
      return no(`${n.op} is not read by the mask analysis`);
  }
}

/**
 * A Reshape whose last two axes are provably the same on both sides (so it regroups only the leading axes): its
 * output rank, and whether every leading axis on both sides is 1 (then nothing moves at all).
 */
export function leadingReshape(n: Node): { rank: number; onesOnly: boolean } | undefined {
  const [from, to] = [symbolicShape(n.inputs[0]), symbolicShape(n.outputs[0])];
  if (!from || !to || from.length < 2 || to.length < 2) return undefined;
  if (from[from.length - 2] !== to[to.length - 2] || from[from.length - 1] !== to[to.length - 1]) return undefined;
  const ones = (dims: readonly Expr[]) => dims.slice(0, -2).every((d) => d.constant === 1);
  return { rank: to.length, onesOnly: ones(from) && ones(to) };
}

/**
 * Reshape of a shape vector to a vector (as is), or of an index vector to a column, a row, or any shape whose other
 * dims are 1 (arange(n).view(1, 1, -1, 1)): the index moves to the one axis that is not 1
 *   Reshape(arange(n) + c, [n, 1]) -> i + c          Reshape(arange(n) + c, [1, 1, 1, n]) -> j + c
 */
function reshape(a: AbstractValue | undefined, target: AbstractValue | undefined): AbstractValue {
  if (!a || !target || target.kind !== 'ints') return no('Reshape to a shape that is not known');
  const dims = target.values;
  if (a.kind === 'ints' && !a.scalar && dims.length === 1) return a;
  if (a.kind !== 'field' || a.rank !== 1 || dims.length < 1) return no(`Reshape of ${a.kind}`);
  const one = (d: Sym) => symIsConst(d) && d.c === 1;
  const x = a.coef[-1] ?? 0;
  const axes = dims.flatMap((d, k) => (one(d) ? [] : [k]));
  if (axes.length > 1) return no('Reshape of an index vector to a matrix');
  // every dim 1: one element, index 0
  if (axes.length === 0 || x === 0) return { kind: 'field', rank: dims.length, coef: {}, offset: a.offset };
  return { kind: 'field', rank: dims.length, coef: { [axes[0]! - dims.length]: x }, offset: a.offset };
}

/** `f` with every key index j read as j - w (the keys of a block placed after w others). */
function shiftKeys(f: Formula, w: Sym): Formula {
  switch (f.op) {
    case 'lin':
      return fLin(f.ci, f.cj, symSub(f.c, symScale(w, f.cj)));
    case 'and':
    case 'or':
      return { op: f.op, parts: f.parts.map((p) => shiftKeys(p, w)) };
    case 'not':
      return fNot(shiftKeys(f.x, w));
    case 'data':
      return no('a data-dependent mask shifted along the keys');
    default:
      return f;
  }
}

/**
 * Two float masks side by side on the key axis (HF's causal mask with a cache: Concat(zeros[q, past],
 * causal[q, q], -1)): keys j < w read the first, the others the second at j - w. An all-visible first block
 * before a causal band j - w - i <= c (c >= 0) is the band j - i <= w + c: for j < w, j - i <= j < w.
 */
function concatKeys(n: Node, ins: readonly (AbstractValue | undefined)[]): AbstractValue {
  const [a, b] = ins;
  if (ins.length !== 2 || !a || !b) return no('Concat of more than two masks');
  const rank = Math.max(rankOf(a), rankOf(b));
  const axis = intAttr(n, 'axis', 0);
  if (axis !== -1 && axis !== rank - 1) return no('Concat of masks along another axis than the keys');
  const w = shapeSyms(n.inputs[0]!)?.at(-1) ?? no('the width of the first block is not known');
  const keepOf = (x: AbstractValue): { keep: Formula; fill?: number } => {
    if (constScalar(x) === 0) return { keep: { op: 'const', value: true } };
    if (x.kind === 'bias' && x.terms.every((t) => t.kind === 'mask')) {
      const ms = x.terms as readonly (BiasTerm & { kind: 'mask' })[];
      return { keep: fAnd(...ms.map((t) => t.keep)), fill: Math.max(...ms.map((t) => t.fill)) };
    }
    return no(`Concat of a ${x.kind} along the keys`);
  };
  const [ka, kb] = [keepOf(a), keepOf(b)];
  const fill = Math.max(ka.fill ?? -Infinity, kb.fill ?? -Infinity);
  const shifted = shiftKeys(kb.keep, w);
  let keep: Formula;
  if (ka.keep.op === 'const' && ka.keep.value && shifted.op === 'lin' && shifted.ci === 1 && shifted.cj === -1 && symIsConst(symSub(shifted.c, w)) && symSub(shifted.c, w).c >= 0) {
    keep = shifted;
  } else {
    const before = fLin(0, -1, symSub(w, symConst(1))); // j <= w - 1
    const after = fLin(0, 1, symScale(w, -1)); // j - w >= 0
    keep = fOr(fAnd(before, ka.keep), fAnd(after, shifted));
  }
  if (!Number.isFinite(fill) && fill !== -Infinity) return no('no masking fill');
  return { kind: 'bias', rank, terms: [{ kind: 'mask', keep, fill: Number.isFinite(fill) ? fill : -Infinity }] };
}

function mapTable(a: AbstractValue & { kind: 'table' }, f: (x: number) => number, bool: boolean): AbstractValue {
  return { ...a, table: { ...a.table, data: a.table.data.map(f), bool } };
}

/** A keep-predicate from a pred, or from a boolean buffer read as a band. */
export function asFormula(a: AbstractValue | undefined, ctx: EvalContext): Formula {
  if (!a) return no('missing operand');
  // (an indicator read as a condition: nonzero is true, as a Trilu of a boolean ConstantOfShape)
  if (a.kind === 'pred' || a.kind === 'ind') return a.formula;
  if (a.kind === 'opaque') return { op: 'data', value: a.value, reason: a.reason };
  if (a.kind === 'table') return tableFormula(a.table, (x) => x !== 0, ctx) ?? no(`buffer ${a.table.name} is not a band`);
  if (a.kind === 'ints' && a.values.length === 1 && symIsConst(a.values[0]!)) return { op: 'const', value: a.values[0]!.c !== 0 };
  return no(`${a.kind} is not a boolean mask`);
}

function asField(a: AbstractValue): { coef: Record<number, number>; offset: Sym; rank: number } | undefined {
  if (a.kind === 'field') return { coef: { ...a.coef }, offset: a.offset, rank: a.rank };
  if (a.kind === 'ints' && a.values.length === 1) return { coef: {}, offset: a.values[0]!, rank: a.rank };
  return undefined;
}

/** An affine field or a min/max tree as a tree (a scalar length is a constant leaf). */
function asTree(a: AbstractValue): MinMax | undefined {
  if (a.kind === 'minmax') return a.tree;
  const f = asField(a);
  return f && fromField(f);
}

/**
 * A bias clamped where no reading of it changes (as exporters write `clamp(mask, min=finfo.min)` after adding two
 * masks, or `max(mask, finfo.min)`):
 *   max(bias, c), c <= MASKED_AT_OR_BELOW          -> bias   (a value raised to c was masked and stays masked)
 *   min(bias, c), c >= 0, no data-dependent term    -> bias   (a mask's values are 0 and its fills, all <= 0)
 * A row with an unmasked key gets the same softmax either way (a masked key's weight underflows to 0); a row whose
 * kept keys are all masked is computed again from the whole bias, the clamped one (unkept-rows.ts).
 */
function clampedBias(op: 'min' | 'max', present: readonly AbstractValue[], consts: readonly (number | undefined)[]): AbstractValue | undefined {
  const biases = present.filter((x) => x.kind === 'bias');
  if (biases.length !== 1 || biases.length + consts.filter((c) => c !== undefined).length !== present.length) return undefined;
  const bounds = consts.filter((c): c is number => c !== undefined);
  const bias = biases[0]!;
  if (op === 'max' && bounds.every(isMaskedFill)) return { ...bias, rank: Math.max(...present.map(rankOf)) } as AbstractValue;
  if (op === 'min' && bounds.every((c) => c >= 0) && !holdsData(bias)) return { ...bias, rank: Math.max(...present.map(rankOf)) } as AbstractValue;
  return undefined;
}

/** Min / Max of index fields -> a min/max tree; of constants -> the constant; omitted operands (Clip's) skipped. */
function extremum(op: 'min' | 'max', xs: readonly (AbstractValue | undefined)[]): AbstractValue {
  const present = xs.filter((x): x is AbstractValue => x !== undefined);
  if (present.length === 0) return no('no operand');
  if (present.length === 1) return present[0]!;
  const rank = Math.max(...present.map(rankOf));
  const consts = present.map(constScalar);
  if (consts.every((c) => c !== undefined)) {
    const x = op === 'min' ? Math.min(...(consts as number[])) : Math.max(...(consts as number[]));
    return { kind: 'ints', values: [symConst(x)], scalar: present.every((p) => p.kind === 'ints' && p.scalar), rank };
  }
  const clamped = clampedBias(op, present, consts);
  if (clamped) return clamped;
  if (!present.some((x) => x.kind === 'field' || x.kind === 'minmax')) return no(`${op} of ${present.map((x) => x.kind).join(', ')}`);
  return { kind: 'minmax', rank, tree: minMax(op, present.map((x) => asTree(x) ?? no(`${op} of a ${x.kind}`))) };
}

/**
 * Tile along axes the values do not depend on leaves them as they are:
 *   Tile(j [1, 1, S], [B, S, 1]) -> j          Tile(mask(i, j), [B, 1, 1, 1]) -> mask(i, j)
 */
function tile(a: AbstractValue | undefined, repeats: AbstractValue | undefined): AbstractValue {
  if (!a || !repeats || repeats.kind !== 'ints') return no('Tile by repeats that are not known');
  const r = repeats.values.length;
  const once = (k: number) => {
    const x = repeats.values[r + k];
    return x !== undefined && symIsConst(x) && x.c === 1;
  };
  const dependsOn = (k: number): boolean => {
    if (a.kind === 'field') return (a.coef[k] ?? 0) !== 0;
    if (a.kind === 'minmax') return treeLeaves(a.tree).some((f) => (f.coef[k] ?? 0) !== 0);
    if (a.kind === 'ints') return !a.scalar;
    return k >= -2; // a mask or buffer over (i, j)
  };
  for (let k = -r; k < 0; k++) if (!once(k) && dependsOn(k)) no(`Tile repeats axis ${k}, which the values depend on`);
  for (let k = -r; k < 0; k++) if (!once(k) && holdsData(a)) no('Tile of a data-dependent part (its value would no longer broadcast to the bias)');
  return { ...a, rank: Math.max(rankOf(a), r) } as AbstractValue;
}

function addSub(sub: boolean, a: AbstractValue | undefined, b: AbstractValue | undefined, operands: readonly (Value | undefined)[]): AbstractValue {
  if (!a || !b) return no('missing operand');
  const k = sub ? -1 : 1;
  if (a.kind === 'ints' && b.kind === 'ints' && (a.values.length === b.values.length || a.values.length === 1 || b.values.length === 1)) {
    const len = Math.max(a.values.length, b.values.length);
    const v = Array.from({ length: len }, (_, x) => symCombine(a.values[a.values.length === 1 ? 0 : x]!, b.values[b.values.length === 1 ? 0 : x]!, k));
    return { kind: 'ints', values: v, scalar: a.scalar && b.scalar, rank: Math.max(a.rank, b.rank) };
  }
  // min(x, y) + t -> min(x + t, y + t)
  const ta = asTree(a);
  const tb = asTree(b);
  if (ta && tb && (a.kind === 'minmax' || b.kind === 'minmax')) return { kind: 'minmax', rank: Math.max(rankOf(a), rankOf(b)), tree: minMaxCombine(ta, tb, k) };
  const fa = asField(a);
  const fb = asField(b);
  if (fa && fb && (a.kind === 'field' || b.kind === 'field')) {
    const coef = { ...fa.coef };
    for (const [x, y] of Object.entries(fb.coef)) coef[Number(x)] = (coef[Number(x)] ?? 0) + k * y;
    return { kind: 'field', rank: Math.max(fa.rank, fb.rank), coef, offset: symCombine(fa.offset, fb.offset, k) };
  }
  // 1 - indicator(p) -> indicator(¬p)
  if (sub && constScalar(a) === 1 && b.kind === 'ind') return { kind: 'ind', rank: Math.max(b.rank, rankOf(a)), formula: fNot(b.formula) };
  if (sub) return no('Sub of masks');
  const rank = Math.max(rankOf(a), rankOf(b));
  if (constScalar(a) === 0) return { ...b, rank } as AbstractValue;
  if (constScalar(b) === 0) return { ...a, rank } as AbstractValue;
  const terms = (x: AbstractValue, value: Value | undefined): BiasTerm[] => {
    if (x.kind === 'bias') return [...x.terms];
    if (x.kind === 'opaque') return [{ kind: 'data', value: x.value, reason: x.reason }];
    if (x.kind === 'table') {
      const keep = (y: number) => y === 0;
      const fills = new Set([...x.table.data].filter((y) => !keep(y)));
      if (![...fills].every(isMaskedFill)) return no(`buffer ${x.table.name} holds values other than 0 and a masking fill`);
      const f = tableFormula(x.table, keep, undefined);
      if (!f) return no(`buffer ${x.table.name} is not a band`);
      return [{ kind: 'mask', keep: f, fill: fills.size ? Math.max(...fills) : -Infinity }];
    }
    // a position bias computed from the indices (ALiBi's slope·(j - i), a clamped distance) added to a mask:
    // its values stay as bias, the mask beside it is read
    return positionBias(x, value) ?? no(`${x.kind} added to a bias`);
  };
  return { kind: 'bias', rank, terms: [...terms(a, operands[0]), ...terms(b, operands[1])] };
}

function mul(a: AbstractValue | undefined, b: AbstractValue | undefined): AbstractValue {
  if (!a || !b) return no('missing operand');
  if (a.kind === 'ints' && b.kind === 'ints' && a.values.length === 1 && b.values.length === 1) {
    return { kind: 'ints', values: [symMul(a.values[0]!, b.values[0]!) ?? no('product of symbols')], scalar: a.scalar && b.scalar, rank: Math.max(a.rank, b.rank) };
  }
  const [x, s] = constScalar(b) !== undefined ? [a, constScalar(b)!] : constScalar(a) !== undefined ? [b, constScalar(a)!] : [a, undefined];
  if (s === undefined) return no('Mul of two non-constant values');
  const rank = Math.max(rankOf(a), rankOf(b));
  if (x.kind === 'field') return { ...x, rank, coef: Object.fromEntries(Object.entries(x.coef).map(([k, y]) => [k, y * s])), offset: symScale(x.offset, s) };
  if (x.kind === 'minmax') return { ...x, rank, tree: minMaxScale(x.tree, s) };
  if (x.kind === 'ind' && isMaskedFill(s)) return { kind: 'bias', rank, terms: [{ kind: 'mask', keep: fNot(x.formula), fill: s }] };
  if (x.kind === 'bias' && s > 0 && x.terms.every((t) => t.kind === 'mask')) {
    return { ...x, rank, terms: x.terms.map((t) => (t.kind === 'mask' ? { ...t, fill: t.fill * s } : t)).filter((t) => t.kind !== 'mask' || isMaskedFill(t.fill) || no('scaled fill no longer masks')) };
  }
  if (x.kind === 'table') return mapTable(x, (y) => y * s, false);
  if (s === 1) return { ...x, rank } as AbstractValue;
  return no(`Mul of ${x.kind} by ${s}`);
}

/** `x op y` on numbers, for the comparison ops compare() reads. */
function compareNumbers(op: string, x: number, y: number): boolean {
  switch (op) {
    case 'Less': return x < y;
    case 'LessOrEqual': return x <= y;
    case 'Greater': return x > y;
    case 'GreaterOrEqual': return x >= y;
    default: return x === y;
  }
}

/**
 * An indicator (1 where f holds, 0 elsewhere) compared with a constant: decided at its two values, so the result
 * is f, ¬f, true or false. torch's causal mask for scaled_dot_product_attention(is_causal=True), in both of its
 * ONNX exporters:  Where(Equal(Trilu(ones[S, T], upper = 0), 0), -inf, 0)  ->  keep j <= i
 */
function indicatorVsConstant(op: string, a: AbstractValue, b: AbstractValue): AbstractValue | undefined {
  const [ind, c, flipped] = a.kind === 'ind' ? [a, constScalar(b), false] : b.kind === 'ind' ? [b, constScalar(a), true] : [undefined, undefined, false];
  if (!ind || c === undefined) return undefined;
  const at = (x: number) => (flipped ? compareNumbers(op, c, x) : compareNumbers(op, x, c));
  const [one, zero] = [at(1), at(0)];
  const formula: Formula = one === zero ? { op: 'const', value: one } : one ? ind.formula : fNot(ind.formula);
  return { kind: 'pred', rank: Math.max(rankOf(a), rankOf(b)), formula };
}

function compare(op: string, a: AbstractValue | undefined, b: AbstractValue | undefined): AbstractValue {
  if (!a || !b) return no('missing operand');
  const indicator = indicatorVsConstant(op, a, b);
  if (indicator) return indicator;
  if (a.kind === 'table' && constScalar(b) !== undefined && op === 'Equal') {
    const s = constScalar(b)!;
    return mapTable(a, (x) => (x === s ? 1 : 0), true);
  }
  if (op === 'Equal' && a.kind === 'ints' && b.kind === 'ints' && (a.values.length > 1 || b.values.length > 1) && (a.values.length === b.values.length || a.values.length === 1 || b.values.length === 1)) {
    // shape arithmetic (torch's expand: Where(shape == -1, 1, shape)): decided per element
    const len = Math.max(a.values.length, b.values.length);
    const v = Array.from({ length: len }, (_, k) => symConst(Number(symbolsEqual(a.values[a.values.length === 1 ? 0 : k]!, b.values[b.values.length === 1 ? 0 : k]!))));
    return { kind: 'ints', values: v, scalar: a.scalar && b.scalar, rank: Math.max(a.rank, b.rank) };
  }
  const ta = asTree(a);
  const tb = asTree(b);
  if (!ta || !tb) return no(`${op} of ${a.kind} and ${b.kind}`);
  const rank = Math.max(rankOf(a), rankOf(b));
  // d = b - a, an affine field in (i, j) or a min/max of such; s·d + off >= 0 pushed down to its leaves
  const d = minMaxCombine(tb, ta, -1);
  const atom = (off: number) => (f: Field): Formula => {
    for (const k of Object.keys(f.coef)) if (f.coef[Number(k)] !== 0 && Number(k) !== -1 && Number(k) !== -2) no('an index on an axis other than the query/key axes');
    const [ci, cj, c] = [f.coef[-2] ?? 0, f.coef[-1] ?? 0, symAdd(f.offset, symConst(off))];
    return ci === 0 && cj === 0 && symIsConst(c) ? { op: 'const', value: c.c >= 0 } : fLin(ci, cj, c);
  };
  const atLeast = (s: number, off: number) => atLeastZero(minMaxScale(d, s), atom(off));
  switch (op) {
    case 'Less': return { kind: 'pred', rank, formula: atLeast(1, -1) }; // b - a - 1 >= 0
    case 'LessOrEqual': return { kind: 'pred', rank, formula: atLeast(1, 0) };
    case 'Greater': return { kind: 'pred', rank, formula: atLeast(-1, -1) }; // a - b - 1 >= 0
    case 'GreaterOrEqual': return { kind: 'pred', rank, formula: atLeast(-1, 0) };
    default: return { kind: 'pred', rank, formula: fAnd(atLeast(1, 0), atLeast(-1, 0)) };
  }
}

/** Whether two shape entries are equal, decided for every length (lengths are >= 0); throws when undecided. */
function symbolsEqual(a: Sym, b: Sym): boolean {
  const d = symSub(a, b);
  if (symIsConst(d)) return d.c === 0;
  // a sum of lengths (non-negative coefficients) against a negative constant never meets it
  const lengthVsNegative = (x: Sym, y: Sym) => symIsConst(y) && y.c < 0 && x.c >= 0 && Object.values(x.t).every((k) => k > 0);
  if (lengthVsNegative(a, b) || lengthVsNegative(b, a)) return false;
  return no(`${symToString(a)} == ${symToString(b)} is not decided for every length`);
}

/** Values computed from the indices alone that are not masks (a position bias): kept as data, by their value. */
function positionBias(x: AbstractValue, value: Value | undefined): BiasTerm[] | undefined {
  if ((x.kind === 'field' || x.kind === 'minmax' || x.kind === 'ind') && value) return [{ kind: 'data', value, reason: `the position bias ${JSON.stringify(value.name)} stays as bias` }];
  return undefined;
}

function where(ins: readonly (AbstractValue | undefined)[], ctx: EvalContext, out: Value, operands: readonly (Value | undefined)[]): AbstractValue {
  const [cond, x, y] = ins;
  if (!cond || !x || !y) return no('missing operand');
  if (cond.kind === 'ints' && x.kind === 'ints' && y.kind === 'ints' && !cond.scalar) {
    // shape arithmetic, element by element
    const pick = (v: readonly Sym[], k: number) => v[v.length === 1 ? 0 : k]!;
    const v = cond.values.map((c, k) => (symIsConst(c) ? (c.c !== 0 ? pick(x.values, k) : pick(y.values, k)) : no('a shape condition that is not constant')));
    return { kind: 'ints', values: v, scalar: false, rank: 1 };
  }
  const sx = constScalar(x);
  const sy = constScalar(y);
  const rank = Math.max(rankOf(cond), rankOf(x), rankOf(y));
  if (cond.kind === 'table' && sx !== undefined && sy !== undefined) {
    return { ...mapTable(cond, (c) => (c !== 0 ? sx : sy), false), rank } as AbstractValue;
  }
  const f = asFormula(cond, ctx);
  if (sx !== undefined && sy !== undefined) {
    if (isMaskedFill(sx) && sy === 0) return { kind: 'bias', rank, terms: [{ kind: 'mask', keep: fNot(f), fill: sx }] };
    if (sx === 0 && isMaskedFill(sy)) return { kind: 'bias', rank, terms: [{ kind: 'mask', keep: f, fill: sy }] };
    if (sx === 1 && sy === 0) return { kind: 'pred', rank, formula: f };
    if (sx === 0 && sy === 1) return { kind: 'pred', rank, formula: fNot(f) };
  }
  // Where(p, x, -big): keeps x where p holds
  if (sy !== undefined && isMaskedFill(sy) && (x.kind === 'bias' || x.kind === 'opaque' || positionBias(x, operands[1]))) {
    const terms: BiasTerm[] = x.kind === 'bias' ? [...x.terms] : x.kind === 'opaque' ? [{ kind: 'data', value: x.value, reason: x.reason }] : positionBias(x, operands[1])!;
    return { kind: 'bias', rank, terms: [...terms, { kind: 'mask', keep: f, fill: sy }] };
  }
  // Where(p, -big, x): keeps x where p does not hold (masked_fill of a structural condition)
  if (sx !== undefined && isMaskedFill(sx) && cond.kind !== 'opaque' && (y.kind === 'bias' || y.kind === 'opaque' || positionBias(y, operands[2]))) {
    const terms: BiasTerm[] = y.kind === 'bias' ? [...y.terms] : y.kind === 'opaque' ? [{ kind: 'data', value: y.value, reason: y.reason }] : positionBias(y, operands[2])!;
    return { kind: 'bias', rank, terms: [...terms, { kind: 'mask', keep: fNot(f), fill: sx }] };
  }
  // Where(d, -big, x) with d data-dependent (padding) and x a structural mask (HF's 4D causal mask filled
  // where padded): keeps at most what x keeps, so x's part is proven and this Where, which already masks
  // everything x masks, stays whole as the data-dependent bias (exact: the kept entries are those of the Where)
  if (sx !== undefined && isMaskedFill(sx) && cond.kind === 'opaque' && y.kind === 'bias' && y.terms.every((t) => t.kind === 'mask')) {
    return { kind: 'bias', rank, terms: [...y.terms, { kind: 'data', value: out, reason: `${cond.reason}; the structural mask it fills is proven, the whole ${JSON.stringify(out.name)} stays as bias` }] };
  }
  return no('Where selects values the analysis cannot read');
}

function trilu(n: Node, ins: readonly (AbstractValue | undefined)[]): AbstractValue {
  const x = ins[0];
  // k may be a length read from the shapes (tril(ones[S, T], T - S): the diagonal of a cache's last query)
  const kSym = ins[1] ? scalarOf(ins[1]) ?? no('Trilu k is not a constant or a length') : symConst(0);
  const upper = intAttr(n, 'upper', 1) === 1;
  if (!x) return no('missing operand');
  // upper keeps j - i >= k; lower keeps j - i <= k; the rest becomes 0
  const inTri: Formula = upper ? fLin(-1, 1, symScale(kSym, -1)) : fLin(1, -1, kSym);
  if (x.kind === 'table') {
    if (!symIsConst(kSym)) return no('Trilu of a table by a k known only at run time');
    const k = kSym.c;
    if (!symEq(x.table.r0, symConst(0)) || !symEq(x.table.c0, symConst(0))) return no('Trilu of a sliced buffer');
    const { rows, cols } = x.table;
    const data = x.table.data.map((v, e) => {
      const col = e % cols;
      const row = Math.floor(e / cols) % rows;
      const d = col - row;
      return (upper ? d >= k : d <= k) ? v : 0;
    });
    return { ...x, table: { ...x.table, data } };
  }
  const s = constScalar(x);
  if (s === undefined) return no(`Trilu of ${x.kind}`);
  if (s === 0) return x;
  if (isMaskedFill(s)) return { kind: 'bias', rank: rankOf(x), terms: [{ kind: 'mask', keep: fNot(inTri), fill: s }] };
  if (s === 1) return { kind: 'ind', rank: rankOf(x), formula: inTri };
  return no(`Trilu of a constant ${s}`);
}

function slice(ins: readonly (AbstractValue | undefined)[], ctx: EvalContext): AbstractValue {
  const [x, starts, ends, axesAv, steps] = ins;
  if (x?.kind === 'ints' && !x.scalar) return sliceInts(x.values, starts, ends, axesAv, steps);
  if (x && structural(x)) return slicePrefix(x, starts, steps, ctx);
  if (!x || x.kind !== 'table') return no(`Slice of ${x?.kind ?? 'nothing'}`);
  if (!starts || starts.kind !== 'ints' || !ends || ends.kind !== 'ints') return no('Slice bounds are not shapes');
  const rank = x.rank;
  const axes = axesAv ? (axesAv.kind === 'ints' && axesAv.values.every(symIsConst) ? axesAv.values.map((s) => s.c) : no('Slice axes not constant')) : starts.values.map((_, k) => k);
  if (steps && !(steps.kind === 'ints' && steps.values.every((s) => symIsConst(s) && s.c === 1))) no('Slice steps other than 1');
  let t = x.table;
  axes.forEach((ax, k) => {
    const p = ax < 0 ? ax + rank : ax;
    const st = starts.values[k]!;
    const en = ends.values[k]!;
    if (symIsConst(st) && st.c < 0) no('negative Slice start');
    if (p < rank - 2) {
      if (!(symEq(st, symConst(0)))) no('Slice of a leading axis');
      return;
    }
    const isRow = p === rank - 2;
    const size = isRow ? t.rows : t.cols;
    const r0 = isRow ? t.r0 : t.c0;
    const full = symIsConst(en) && en.c >= size;
    const start = symAdd(r0, st);
    const end = full ? undefined : symAdd(r0, en);
    if (end && symIsConst(end) && end.c < 0) no('negative Slice end');
    if (end) ctx.preconditions.push(`${isRow ? 'rows' : 'columns'} ${symToString(start)}..${symToString(end)} of buffer ${t.name} (${t.rows} x ${t.cols}): holds while ${symToString(end)} <= ${size}`);
    t = isRow ? { ...t, r0: start, ...(end ? { rEnd: end } : {}) } : { ...t, c0: start, ...(end ? { cEnd: end } : {}) };
  });
  return { kind: 'table', rank, table: t };
}

/**
 * Slice of a function of (i, j) from index 0 on every axis it cuts (step 1): each kept element keeps its indices,
 * so the function is the same (transformers' `attention_mask[:, :, :, : key_states.shape[-2]]`):
 *   Slice(m(i, j), starts 0, any ends) -> m(i, j)
 * A data-dependent part no longer has the bias's shape: the whole bias stays as the residual (movedData).
 */
function slicePrefix(x: AbstractValue, starts: AbstractValue | undefined, steps: AbstractValue | undefined, ctx: EvalContext): AbstractValue {
  const all = (a: AbstractValue | undefined, c: number) => a?.kind === 'ints' && a.values.every((s) => symIsConst(s) && s.c === c);
  if (!all(starts, 0)) no('Slice of a mask from an index other than 0');
  if (steps && !all(steps, 1)) no('Slice of a mask with steps other than 1');
  if (holdsData(x)) ctx.movedData = true;
  return x;
}

/** Slice of a shape vector by constant bounds (axis 0, step 1): Slice(Shape(x), -2, -1) -> [x.shape[-2]]. */
function sliceInts(v: readonly Sym[], ...[starts, ends, axes, steps]: readonly (AbstractValue | undefined)[]): AbstractValue {
  const one = (a: AbstractValue | undefined, dflt: number): number => {
    if (!a) return dflt;
    const k = a.kind === 'ints' && a.values.length === 1 && symIsConst(a.values[0]!) ? a.values[0]!.c : no('Slice of a shape by non-constant bounds');
    return k;
  };
  if (one(axes, 0) !== 0 || one(steps, 1) !== 1) no('Slice of a shape on an axis other than 0 or with a step');
  const n = v.length;
  const clamp = (k: number) => Math.min(n, Math.max(0, k < 0 ? k + n : k));
  return { kind: 'ints', values: v.slice(clamp(one(starts, 0)), clamp(one(ends, n))), scalar: false, rank: 1 };
}

/**
 * Reads a buffer as a band of diagonals: keep(r, c) iff lo <= c - r <= hi (lo/hi open to ±∞ when the band
 * reaches the buffer's corner), optionally with its first `sinks` columns kept for every row. The result
 * is in the sliced coordinates: r = r0 + i, c = c0 + j.
 */
export function tableFormula(t: Table, keep: (x: number) => boolean, ctx: EvalContext | undefined): Formula | undefined {
  const { rows, cols, data } = t;
  const at = (r: number, c: number) => keep(data[r * cols + c]!);
  // leading columns kept in every row
  let sinks = 0;
  while (sinks < cols && Array.from({ length: rows }, (_, r) => at(r, sinks)).every(Boolean)) sinks++;
  const band = (from: number): { lo: number; hi: number } | undefined | 'empty' => {
    const status = new Map<number, boolean>();
    for (let r = 0; r < rows; r++) {
      for (let c = from; c < cols; c++) {
        const d = c - r;
        const k = at(r, c);
        const s = status.get(d);
        if (s === undefined) status.set(d, k);
        else if (s !== k) return undefined;
      }
    }
    const kept = [...status].filter(([, k]) => k).map(([d]) => d).sort((x, y) => x - y);
    if (kept.length === 0) return 'empty';
    const lo = kept[0]!;
    const hi = kept[kept.length - 1]!;
    for (let d = lo; d <= hi; d++) if (status.has(d) && !status.get(d)) return undefined;
    const dMin = from - (rows - 1);
    const dMax = cols - 1;
    return { lo: lo <= dMin ? -Infinity : lo, hi: hi >= dMax ? Infinity : hi };
  };
  const off = symSub(t.c0, t.r0); // c - r = j - i + off
  const bandFormula = (bd: { lo: number; hi: number }): Formula => {
    const parts: Formula[] = [];
    if (bd.lo !== -Infinity) parts.push(fLin(-1, 1, symAdd(off, symConst(-bd.lo)))); // j - i + off - lo >= 0
    if (bd.hi !== Infinity) parts.push(fLin(1, -1, symSub(symConst(bd.hi), off))); // hi - (j - i + off) >= 0
    return parts.length === 0 ? { op: 'const', value: true } : fAnd(...parts);
  };
  const note = () => {
    if (!ctx) return;
    if (t.rEnd === undefined && t.cEnd === undefined && symIsConst(t.r0) && t.r0.c === 0 && symIsConst(t.c0) && t.c0.c === 0) {
      ctx.preconditions.push(`buffer ${t.name} is used whole: the proof covers the exported lengths ${rows} x ${cols}`);
    }
  };
  const whole = band(0);
  if (whole === 'empty') return note(), { op: 'const', value: false };
  if (whole) return note(), bandFormula(whole);
  if (sinks === 0 || sinks >= cols) return undefined;
  const rest = band(sinks);
  if (!rest || rest === 'empty') return undefined;
  note();
  // c < sinks  <=>  sinks - 1 - c0 - j >= 0
  return fOr(fLin(0, -1, symSub(symConst(sinks - 1), t.c0)), bandFormula(rest));
}
