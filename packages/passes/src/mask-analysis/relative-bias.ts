// A relative-position bias read as a function of the key offset o = j - i: T5's buckets, a symmetric ALiBi, any
// bias the model computes from the two position indices through their difference alone.
//   Gather(table[nb, H], bucket(j - i)) -> Transpose -> Unsqueeze   ->  g(o) = table[bucket(o)], one channel per head
//   slopes[H, 1, 1] · -|j - i|                                        ->  g(o) = -slope_h |o|
//   g(j - i) + key bias [B, 1, 1, T] (a padding mask)                 ->  g, with the key bias beside it
//   a constant [1, H, S, T] constant along every diagonal (folded)     ->  g(o) = its diagonal o, from a table
//   Slice(g(j - i) over a longer buffer, from index 0)                 ->  g (Jina's alibi[:, :, :n, :n])
// The function is kept as the model's own ops (op, attributes, dtypes and constants), read node by node from the
// offset field up; lower/relative-bias.ts replays them on a vector of 2n - 1 offsets at run time, so a banded or
// guarded form reads the bias on its band and bounds it on the keys it drops without any n x n tensor, and every
// value it reads equals the model's (the same elementwise ops on the same inputs).
// Anything else (a per-query term, a data-dependent value, an op not listed) is no relative bias: the site keeps
// its n x n bias, as before.

import { type Attr, type DType, type Node, Tensor, type Value } from '@attnopt/ir';
import { constantTensor } from '@attnopt/rewrite';
import { inferDtype, inferShape } from '../shape-inference/shapes.js';
import { evaluate, newContext, symIsConst, type EvalContext, type Sym } from './symbolic.js';

/** Annotation key on an Attention node whose bias input is a relative-position bias (RelativeBias). */
export const RELATIVE_BIAS = 'attnopt.relativeBias';

/** The function of the offset, as the model's ops; `chans` is 1 or the heads (a channel per head). */
export type RelExpr =
  /** scale · o + shift, in `dtype` (the offset field the model builds from its position ranges) */
  | { readonly op: 'offset'; readonly scale: number; readonly shift: number; readonly dtype: DType; readonly chans: 1 }
  /** a constant: a scalar, or one value per channel */
  | { readonly op: 'const'; readonly tensor: Tensor; readonly chans: number }
  /** an elementwise ONNX op over its arguments (attributes as the model wrote them) */
  | { readonly op: 'node'; readonly onnx: string; readonly attrs: Readonly<Record<string, Attr>>; readonly args: readonly (RelExpr | undefined)[]; readonly chans: number }
  /** Gather(table, index) on axis 0: table [N] or [N, C] (a channel per column) */
  | { readonly op: 'gather'; readonly table: Tensor; readonly index: RelExpr; readonly chans: number };

export interface RelativeBias {
  /** The bias input this reads (the annotation holds while the node's bias is this value). */
  readonly of: Value;
  /** g: the bias at query i and key j is g(sign · (j - i)), per channel. */
  readonly expr: RelExpr;
  readonly sign: 1 | -1;
  /** 1 (shared by the heads) or the site's heads (channel h is head h). */
  readonly chans: number;
  /** The bias's dtype (the table the lowering builds is cast to the scores' type, as the bias is). */
  readonly dtype: DType;
  /** A key bias added beside it ([.., 1, T], one head: a padding mask), read per key as key-bias.ts reads one. */
  readonly keyBias?: Value;
}

/** An axis's role: the query or key position, a channel (heads), or a size-1 (broadcast) axis. */
type Role = 'i' | 'j' | 'c' | '1';

/** A value that is g(o) laid out over `roles` (axes from the first). */
interface Rel {
  readonly kind: 'rel';
  readonly roles: readonly Role[];
  readonly expr: RelExpr;
}
interface Const {
  readonly kind: 'const';
  readonly tensor: Tensor;
}
type Read = Rel | Const;

class NotRelative extends Error {}
const no = (why: string): never => {
  throw new NotRelative(why);
};

const UNARY = new Set(['Abs', 'Neg', 'Log', 'Exp', 'Floor', 'Ceil', 'Sqrt', 'Reciprocal', 'Sign', 'Round', 'Cast', 'Not', 'Relu', 'Tanh', 'Sigmoid', 'Erf', 'Identity']);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Mod', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'Equal', 'And', 'Or', 'Xor']);
const VARIADIC = new Set(['Min', 'Max', 'Sum']);

const attrsOf = (n: Node): Record<string, Attr> => Object.fromEntries(n.attrs);

/**
 * Reads `bias` (an Attention's bias input) as a relative-position bias of a site with `heads` heads, with a key bias
 * beside it where one is added; a reason in words where it is none.
 */
export function readRelativeBias(bias: Value, heads: number): RelativeBias | string {
  const reader = new RelativeReader();
  try {
    const { rel, keyBias } = reader.sum(bias);
    const r = rel.roles.length;
    if (r < 2) return no('the bias has no query and key axes');
    const [qi, kj] = [rel.roles[r - 2], rel.roles[r - 1]];
    const sign = qi === 'i' && kj === 'j' ? 1 : qi === 'j' && kj === 'i' ? -1 : no('its last two axes are not the query and key positions');
    rel.roles.slice(0, -2).forEach((role, k) => {
      if (role === 'c' && k !== r - 3) no('its channel axis is not the heads axis');
      if (role === 'i' || role === 'j') no('a position on a leading axis');
    });
    // a query or key axis of length 1 broadcasts one row (or column) of the bias to every query: no function of j - i
    const shape = inferShape(bias);
    if (shape !== undefined && shape.length === r && (shape[r - 2] === 1 || shape[r - 1] === 1)) no('its query or key axis has length 1 (broadcast)');
    const chans = rel.expr.chans;
    if (chans !== 1 && chans !== heads) no(`${chans} channels on the heads axis of a site with ${heads} heads`);
    const dtype = inferDtype(bias) ?? no('the bias has no known type');
    if (dtype !== 'f32' && dtype !== 'f16' && dtype !== 'bf16' && dtype !== 'f64') no(`the bias is ${dtype}, not float`);
    return { of: bias, expr: rel.expr, sign, chans, dtype, ...(keyBias ? { keyBias } : {}) };
  } catch (e) {
    if (e instanceof NotRelative) return `not a relative-position bias: ${e.message}`;
    throw e;
  }
}

/** Counts the ops of a relative bias's function (for notes). */
export function relativeOps(e: RelExpr | undefined): number {
  if (e === undefined || e.op === 'const') return 0;
  if (e.op === 'offset') return 1;
  if (e.op === 'gather') return 1 + relativeOps(e.index);
  return 1 + e.args.reduce((s, a) => s + relativeOps(a), 0);
}

/**
 * Annotates `node` (an Attention) with its bias read as a relative-position bias; a note in words either way, or
 * undefined where the site has no bias.
 */
export function annotateRelativeBias(node: Node, heads: number): string | undefined {
  const bias = node.inputs[3];
  node.annotations.delete(RELATIVE_BIAS);
  if (bias === undefined) return undefined;
  const rb = readRelativeBias(bias, heads);
  if (typeof rb === 'string') return undefined;
  node.annotations.set(RELATIVE_BIAS, rb);
  const what = rb.expr.op === 'gather' ? `a table of ${rb.expr.table.shape[0]} rows indexed by a function of j - i` : `a function of j - i (${relativeOps(rb.expr)} ops)`;
  return `the bias ${JSON.stringify(bias.name)} is a relative-position bias: ${what}, ${rb.chans === 1 ? 'shared by the heads' : 'one per head'}${rb.keyBias ? `, plus the key bias ${JSON.stringify(rb.keyBias.name)}` : ''}; banded and guarded forms read it on their offsets (2n - 1 values per head), never n x n`;
}

/**
 * A value constant along the query axis with one head ([.., 1, T], rank 2..4: a padding mask), or the input of an
 * Expand that broadcasts one over the queries (an extended mask [B, 1, 1, T] expanded to [B, 1, S, T]); not a constant.
 */
function keyOnly(v: Value): Value | undefined {
  const fits = (x: Value) => {
    const shape = inferShape(x);
    return shape !== undefined && shape.length >= 2 && shape.length <= 4 && shape[shape.length - 2] === 1 && (shape.length < 3 || shape[shape.length - 3] === 1) && !constantTensor(x);
  };
  if (fits(v)) return v;
  const p = v.producer;
  const shape = inferShape(v);
  const inner = p && p.domain === '' && p.op === 'Expand' ? p.inputs[0] : undefined;
  // the Expand keeps the heads axis at one, so the input broadcasts to the bias as the expanded value did
  if (inner && fits(inner) && shape !== undefined && (shape.length < 3 || shape[shape.length - 3] === 1)) return inner;
  return undefined;
}

class RelativeReader {
  private readonly ctx: EvalContext = newContext();
  private readonly memo = new Map<Value, Read>();

  /** rel, or rel + a key bias ([.., 1, T] with one head), in either order. */
  sum(v: Value): { rel: Rel; keyBias?: Value } {
    const n = v.producer;
    if (n && n.op === 'Add' && n.domain === '' && n.inputs.length === 2) {
      for (const [a, k] of [[0, 1], [1, 0]] as const) {
        const key = keyOnly(n.inputs[k]!);
        if (!key) continue;
        let rel: Read;
        try {
          rel = this.read(n.inputs[a]!);
        } catch (e) {
          if (e instanceof NotRelative) continue;
          throw e;
        }
        if (rel.kind === 'rel') return { rel, keyBias: key };
      }
    }
    const rel = this.read(v);
    return rel.kind === 'rel' ? { rel } : no('the bias is a constant');
  }

  read(v: Value): Read {
    const hit = this.memo.get(v);
    if (hit) return hit;
    const r = this.readUncached(v);
    this.memo.set(v, r);
    return r;
  }

  private readUncached(v: Value): Read {
    const c = constantTensor(v);
    if (c) return toeplitz(c) ?? { kind: 'const', tensor: c };
    const n = v.producer ?? no(`it reads the model input ${JSON.stringify(v.name)}`);
    if (n.domain !== '') no(`${n.describe()} is not a standard ONNX op`);
    // the position indices and shape arithmetic: the mask analysis's own reading
    const s = evaluate(v, this.ctx);
    if (s.kind === 'ints' && s.values.every(symIsConst)) {
      const dtype = inferDtype(v) ?? 'i64';
      const values = s.values.map((x) => x.c);
      return { kind: 'const', tensor: Tensor.fromValues(dtype, s.scalar ? [] : s.values.length === 1 ? new Array<number>(s.rank).fill(1) : [values.length], dtype === 'i64' ? values.map((x) => BigInt(x)) : values) };
    }
    if (s.kind === 'field') return this.offsetField(v, s.rank, s.coef, s.offset);
    return this.step(n);
  }

  /** a · (j - i) + c over two axes (i the earlier): the offset itself, scaled and shifted. */
  private offsetField(v: Value, rank: number, coef: Readonly<Record<number, number>>, offset: Sym): Rel {
    const axes = Object.entries(coef).filter(([, x]) => x !== 0).map(([k, x]) => [Number(k), x] as const).sort((p, q) => p[0] - q[0]);
    if (axes.length !== 2) return no(`the index field ${JSON.stringify(v.name)} is no difference of a query and a key position`);
    const [[ai, ci], [aj, cj]] = axes as [[number, number], [number, number]];
    if (ci !== -cj) no(`the index field ${JSON.stringify(v.name)} weighs its two positions differently`);
    if (!symIsConst(offset)) no(`the index field ${JSON.stringify(v.name)} has an offset known only at run time`);
    if (!Number.isInteger(cj) || !Number.isInteger(offset.c)) no(`the index field ${JSON.stringify(v.name)} is not integral`);
    const roles: Role[] = new Array<Role>(rank).fill('1');
    roles[rank + ai] = 'i';
    roles[rank + aj] = 'j';
    const dtype = inferDtype(v) ?? 'i64';
    return { kind: 'rel', roles, expr: { op: 'offset', scale: cj, shift: offset.c, dtype, chans: 1 } };
  }

  private step(n: Node): Read {
    const op = n.op;
    if (UNARY.has(op)) {
      const x = this.read(n.inputs[0]!);
      if (x.kind === 'const') return no(`${n.describe()} of a constant the analysis did not fold`);
      if (op === 'Identity') return x;
      return { kind: 'rel', roles: x.roles, expr: { op: 'node', onnx: op, attrs: attrsOf(n), args: [x.expr], chans: x.expr.chans } };
    }
    if (BINARY.has(op) || VARIADIC.has(op) || op === 'Where' || op === 'Clip') return this.elementwise(n);
    switch (op) {
      case 'Gather':
        return this.gather(n);
      case 'Unsqueeze':
      case 'Squeeze':
        return this.squeeze(n);
      case 'Transpose': {
        const x = this.rel(n, 0);
        const r = x.roles.length;
        const perm = n.attrs.get('perm');
        const p = perm?.type === 'ints' ? perm.value.map(Number) : Array.from({ length: r }, (_, k) => r - 1 - k);
        return { ...x, roles: p.map((k) => x.roles[k] ?? no(`${n.describe()}: perm out of range`)) };
      }
      case 'Expand': {
        const x = this.rel(n, 0);
        const shape = inferShape(n.outputs[0]!);
        const r = shape?.length ?? no(`${n.describe()}: the rank it expands to is not known`);
        if (r < x.roles.length) no(`${n.describe()}: expands to a lower rank`);
        return { ...x, roles: [...new Array<Role>(r - x.roles.length).fill('1'), ...x.roles] };
      }
      case 'Reshape':
        return this.reshape(n);
      case 'Slice':
        return this.slicePrefix(n);
      default:
        return no(`${n.describe()} is not read as a function of the offset`);
    }
  }

  private rel(n: Node, k: number): Rel {
    const x = this.read(n.inputs[k] ?? no(`${n.describe()}: input ${k} omitted`));
    return x.kind === 'rel' ? x : no(`${n.describe()}: input ${k} is a constant`);
  }

  /** Elementwise over broadcast operands: the roles merge axis by axis from the end; a constant lends its one non-1 axis as the channel. */
  private elementwise(n: Node): Read {
    const present = n.inputs.map((x) => (x === undefined ? undefined : this.read(x)));
    const reads = present.filter((x): x is Read => x !== undefined);
    if (!reads.some((x) => x.kind === 'rel')) return no(`${n.describe()} of constants the analysis did not fold`);
    const rank = Math.max(...reads.map((x) => (x.kind === 'rel' ? x.roles.length : x.tensor.shape.length)));
    const roles: Role[] = new Array<Role>(rank).fill('1');
    let chans = 1;
    const meet = (k: number, role: Role, size: number) => {
      if (role === '1') return;
      const at = roles[k]!;
      if (at === '1') roles[k] = role;
      else if (at !== role) no(`${n.describe()}: its operands put ${at} and ${role} on one axis`);
      if (role === 'c') {
        if (chans !== 1 && chans !== size) no(`${n.describe()}: ${chans} and ${size} channels`);
        chans = size;
      }
    };
    for (const x of reads) {
      if (x.kind === 'rel') x.roles.forEach((role, k) => meet(rank - x.roles.length + k, role, x.expr.chans));
    }
    const args: (RelExpr | undefined)[] = [];
    for (const x of present) {
      if (x === undefined) {
        args.push(undefined); // an omitted optional input (Clip's min)
        continue;
      }
      if (x.kind === 'rel') {
        args.push(x.expr);
        continue;
      }
      const shape = x.tensor.shape;
      const wide = shape.map((d, k) => [d, rank - shape.length + k] as const).filter(([d]) => d !== 1);
      if (wide.length > 1) no(`${n.describe()}: a constant that varies along ${wide.length} axes`);
      if (wide.length === 1) {
        const [d, k] = wide[0]!;
        const at = roles[k]!;
        if (at === 'i' || at === 'j') no(`${n.describe()}: a constant that varies along a position axis`);
        meet(k, 'c', d);
      }
      const count = shape.reduce((p, d) => p * d, 1);
      args.push({ op: 'const', tensor: count === 1 && shape.length > 0 ? scalarOf(x.tensor) : flat(x.tensor), chans: wide.length === 1 ? wide[0]![0] : 1 });
    }
    return { kind: 'rel', roles, expr: { op: 'node', onnx: n.op, attrs: attrsOf(n), args, chans } };
  }

  /** Gather(table, index(o)) on axis 0: a table [N] (one value) or [N, C] (a channel per column). */
  private gather(n: Node): Rel {
    const table = constantTensor(n.inputs[0]) ?? no(`${n.describe()}: gathers from a tensor that is no constant`);
    const axis = n.attrs.get('axis');
    if (axis !== undefined && !(axis.type === 'int' && Number(axis.value) === 0)) no(`${n.describe()}: gathers along an axis other than 0`);
    if (table.shape.length < 1 || table.shape.length > 2) no(`${n.describe()}: a table of rank ${table.shape.length}`);
    const index = this.rel(n, 1);
    if (index.expr.chans !== 1) no(`${n.describe()}: an index per channel`);
    const C = table.shape[1] ?? 1;
    const roles: Role[] = table.shape.length === 2 ? [...index.roles, C === 1 ? '1' : 'c'] : [...index.roles];
    return { kind: 'rel', roles, expr: { op: 'gather', table, index: index.expr, chans: C } };
  }

  private squeeze(n: Node): Rel {
    const x = this.rel(n, 0);
    const fromInput = n.inputs[1] ? constantTensor(n.inputs[1]) : undefined;
    const attr = n.attrs.get('axes');
    const axes = fromInput ? [...fromInput.toFloat64()].map(Number) : attr?.type === 'ints' ? attr.value.map(Number) : undefined;
    if (n.op === 'Unsqueeze') {
      if (!axes) return no(`${n.describe()}: axes not constant`);
      const out = x.roles.length + axes.length;
      const at = new Set(axes.map((a) => (a < 0 ? a + out : a)));
      const roles: Role[] = [];
      let k = 0;
      for (let p = 0; p < out; p++) roles.push(at.has(p) ? '1' : x.roles[k++]!);
      return { ...x, roles };
    }
    const r = x.roles.length;
    const drop = new Set(axes ? axes.map((a) => (a < 0 ? a + r : a)) : x.roles.flatMap((role, k) => (role === '1' ? [k] : [])));
    for (const k of drop) if (x.roles[k] !== '1') no(`${n.describe()}: squeezes a ${x.roles[k]} axis`);
    return { ...x, roles: x.roles.filter((_, k) => !drop.has(k)) };
  }

  /**
   * A Slice from index 0 with step 1 on every axis it cuts keeps each element's indices, so the same function of
   * j - i (a bias buffer built for the longest length and cut to this one: Jina's ALiBi, alibi[:, :, :n, :n]).
   */
  private slicePrefix(n: Node): Rel {
    const x = this.rel(n, 0);
    const all = (k: number, c: number) => {
      const v = n.inputs[k];
      if (v === undefined) return true;
      const a = evaluate(v, this.ctx);
      return a.kind === 'ints' && a.values.every((y) => symIsConst(y) && y.c === c);
    };
    if (n.inputs.length < 3) no(`${n.describe()}: a Slice with its bounds as attributes`);
    if (!all(1, 0)) no(`${n.describe()}: slices from an index other than 0`);
    if (!all(4, 1)) no(`${n.describe()}: slices with a step other than 1`);
    return x;
  }

  /** A Reshape that only adds or removes axes of size 1: the other axes keep their roles, in order. */
  private reshape(n: Node): Rel {
    const x = this.rel(n, 0);
    const from = inferShape(n.inputs[0]!);
    const to = inferShape(n.outputs[0]!);
    if (!from || !to || from.length !== x.roles.length) return no(`${n.describe()}: its shapes are not known`);
    const big = (dims: readonly (number | string | undefined)[]) => dims.flatMap((d, k) => (d === 1 ? [] : [[d, k] as const]));
    const [a, b] = [big(from), big(to)];
    if (a.length !== b.length || a.some(([d], k) => d === undefined || d === '?' || d !== b[k]![0])) no(`${n.describe()}: regroups axes`);
    if (from.some((d, k) => d === 1 && x.roles[k] !== '1')) no(`${n.describe()}: a position axis of length 1`);
    const roles: Role[] = new Array<Role>(to.length).fill('1');
    a.forEach(([, k], m) => {
      roles[b[m]![1]] = x.roles[k]!;
    });
    return { ...x, roles };
  }
}

/**
 * A constant bias [.., C, S, T] (leading axes 1, C 1 or the heads) whose every diagonal is constant, as an exporter
 * folds a position bias at fixed lengths: a table of its S + T - 1 diagonals, read at o + S - 1
 *   const[h, i, j] = d_h(j - i)  ->  Gather(table[S + T - 1, C], o + S - 1)
 * Undefined for anything else (a scalar, a vector, a row broadcast over the queries, a diagonal that varies).
 */
function toeplitz(t: Tensor): Rel | undefined {
  const r = t.shape.length;
  if (r < 2 || r > 4 || (t.dtype !== 'f32' && t.dtype !== 'f16' && t.dtype !== 'f64')) return undefined;
  const [S, T] = [t.shape[r - 2]!, t.shape[r - 1]!];
  const C = r >= 3 ? t.shape[r - 3]! : 1;
  if (S < 2 || T < 2 || t.shape.slice(0, Math.max(0, r - 3)).some((d) => d !== 1)) return undefined;
  // a buffer built for the longest length can be large: read float32 in place, and leave the very largest alone
  if (t.size > 2 ** 28) return undefined;
  const bytes = t.dtype === 'f32' ? t.bytes() : undefined;
  const x = bytes && bytes.byteOffset % 4 === 0 ? new Float32Array(bytes.buffer, bytes.byteOffset, t.size) : t.toFloat64();
  const L = S + T - 1;
  const table = new Float64Array(L * C);
  for (let h = 0; h < C; h++) {
    for (let o = 1 - S; o < T; o++) {
      const [i0, j0] = o < 0 ? [-o, 0] : [0, o];
      const first = x[(h * S + i0) * T + j0]!;
      for (let i = i0 + 1, j = j0 + 1; i < S && j < T; i++, j++) if (!Object.is(x[(h * S + i) * T + j], first)) return undefined;
      table[(o + S - 1) * C + h] = first;
    }
  }
  const roles: Role[] = [...new Array<Role>(r - 2).fill('1'), 'i', 'j'];
  if (C > 1) roles[r - 3] = 'c';
  const index: RelExpr = { op: 'offset', scale: 1, shift: S - 1, dtype: 'i64', chans: 1 };
  return { kind: 'rel', roles, expr: { op: 'gather', table: Tensor.fromValues(t.dtype, C > 1 ? [L, C] : [L], table), index, chans: C } };
}

const scalarOf = (t: Tensor): Tensor => Tensor.fromBytes(t.dtype, [], t.bytes());
const flat = (t: Tensor): Tensor => Tensor.fromBytes(t.dtype, t.shape.length === 0 ? [] : [t.size], t.bytes());
