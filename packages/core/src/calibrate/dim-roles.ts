// What each symbolic input dim is to the model's attention, read from the graph rather than from its name.
// Exporters name dims as they please (`batch_size`, `b`, `s0`, `unk__12`, `input_ids_dynamic_axes_1`), so a
// rule on names alone sizes an unknown batch dim as a sequence: at --seq-len 1024, a batch of 1024 rows. The
// shape engine carries every input dim to the attention scores, [B, H, S, T] before a Softmax over the keys (or
// a lifted site's Q, K and cached keys), with the dims that broadcasting or MatMul unify recorded as equal:
//   the dim the scores' leading axis is          -> batch   (or c times: [B·H, S, T] with the heads folded in)
//   the dim the query axis S is                  -> seq     (or c times: [B, S·H, T])
//   a dim P with T = P + S (or a site's cached keys) -> past
//   the key axis T as such a sum                 -> total
//   the key axis T, one dim not S                -> seq     (another sequence: cross-attention's memory)
// A dim none of them is stays unknown (the generator's name rules and default size apply).

import { AttentionInput, attentionParams, defaultOpsetOf, type Graph, isAttention, type Node, ONNX_DOMAIN } from '@attnopt/ir';
import { type Expr, subtractDims, symbolicShape } from '@attnopt/passes';

export type DimRole = 'batch' | 'seq' | 'past' | 'total';

/** The axes of attention scores (or of a site's inputs) in the engine's expressions. */
interface Axes {
  readonly batch?: Expr;
  readonly query?: Expr;
  readonly key?: Expr;
  readonly past?: Expr;
}

/** The fused attention ops whose first input is the queries, [B, S, hidden] (rank 3) or [B, H, S, D] (rank 4). */
const FUSED_QUERY_FIRST = new Set(['Attention', 'MultiHeadAttention', 'GroupQueryAttention', 'DecoderMaskedMultiHeadAttention']);

/** The scores' axes a node shows: a Softmax over the last axis of [B, H, S, T] or [B·H, S, T], a site, a fused op. */
function axesOf(n: Node, opset: number): Axes | undefined {
  if (isAttention(n)) {
    const p = attentionParams(n);
    const q = symbolicShape(n.inputs[AttentionInput.q]);
    const k = symbolicShape(n.inputs[AttentionInput.k]);
    const past = symbolicShape(n.inputs[AttentionInput.pastKey]);
    if (!q) return undefined;
    const seqAxis = p.layout === 'bhsd' ? 2 : 1;
    return { batch: q[0], query: q[seqAxis], ...(k ? { key: k[seqAxis] } : {}), ...(past?.[2] ? { past: past[2] } : {}) };
  }
  if (n.op === 'Softmax' && n.domain === ONNX_DOMAIN) {
    const s = symbolicShape(n.inputs[0]);
    const axis = n.attrs.get('axis');
    // (without the attribute: the last axis from opset 13, axis 1 of a 2D view before)
    const last = axis === undefined ? opset >= 13 : axis.type === 'int' && (Number(axis.value) === -1 || Number(axis.value) === (s?.length ?? 0) - 1);
    if (!s || !last || s.length < 3 || s.length > 4) return undefined;
    // the query axis: the last axis before the keys that is not a number ([B, H, S, T], or [B, S, H, T] where the
    // heads are a view of the query axis)
    const query = s.slice(1, -1).reverse().find((d) => d.constant === undefined);
    return { batch: s[0], ...(query ? { query } : {}), key: s[s.length - 1] };
  }
  if (FUSED_QUERY_FIRST.has(n.op) && (n.domain === ONNX_DOMAIN || n.domain === 'com.microsoft')) {
    const q = symbolicShape(n.inputs[0]);
    if (!q || (q.length !== 3 && q.length !== 4)) return undefined;
    return { batch: q[0], query: q[q.length === 4 ? 2 : 1] };
  }
  return undefined;
}

/**
 * The input dim `e` is a whole multiple of (c · d, c a positive integer: the batch of [B·H, S, T] scores with the
 * heads folded in, the queries of [B, S·H, T] with the heads folded into the query axis), by name.
 */
function multipleOf(e: Expr | undefined): string | undefined {
  if (e === undefined || e.terms.length !== 1) return undefined;
  const { coef, mono } = e.terms[0]!;
  const [factor] = mono.factors;
  if (!Number.isInteger(coef) || coef < 1 || mono.factors.length !== 1 || factor![1] !== 1 || factor![0].kind !== 'symbol') return undefined;
  return factor![0].name;
}

/** The one dim that isn't a number under min(d, c) or max(d, c), or undefined. */
function clampedDim(e: Expr): Expr | undefined {
  if (e.terms.length !== 1) return undefined;
  const { coef, mono } = e.terms[0]!;
  const atom = mono.factors.length === 1 && mono.factors[0]![1] === 1 ? mono.factors[0]![0] : undefined;
  if (coef !== 1 || atom === undefined || (atom.kind !== 'min' && atom.kind !== 'max')) return undefined;
  const dims = atom.args.filter((a) => a.constant === undefined);
  return dims.length === 1 ? dims[0] : undefined;
}

/**
 * The role of each symbolic dim of the graph's inputs that the attention shows (see the comment at the top), by
 * input name and axis (`name:axis`) and by dim name where every axis of that name agrees.
 */
export function dimRoles(graph: Graph): { byAxis: ReadonlyMap<string, DimRole>; byName: ReadonlyMap<string, DimRole> } {
  const opset = defaultOpsetOf(graph) ?? 21;
  const axes = [...graph.allNodes()].map((n) => axesOf(n, opset)).filter((a): a is Axes => a !== undefined);
  const names = (xs: (string | undefined)[]) => new Set(xs.filter((x): x is string => x !== undefined));
  const batch = names(axes.map((a) => multipleOf(a.batch)));
  const queries = names(axes.map((a) => multipleOf(a.query)));
  const keys = new Set(axes.map((a) => a.key).filter((e): e is Expr => e !== undefined && e.constant === undefined));
  const cached = names(axes.map((a) => a.past?.symbol?.name));
  const roleOf = (e: Expr | undefined): DimRole | undefined => {
    if (e === undefined || e.constant !== undefined) return undefined;
    const name = e.symbol?.name;
    if (name === undefined) {
      if (keys.has(e)) return 'total'; // the key axis as a sum: P + S
      // a dim the graph clamps (min(P + S, 128): a mask sliced from a buffer of 128 positions) is what it clamps
      const clamped = clampedDim(e);
      return clamped && roleOf(clamped);
    }
    if (batch.has(name)) return 'batch';
    if (queries.has(name)) return 'seq';
    // a site's cached keys, or T = P + S
    if (cached.has(name) || [...keys].some((t) => queries.has(subtractDims(t, e).symbol?.name ?? ''))) return 'past';
    // the keys of another sequence (cross-attention's memory): a sequence of its own
    if (keys.has(e)) return 'seq';
    return undefined;
  };
  const byAxis = new Map<string, DimRole>();
  const byDim = new Map<string, Set<DimRole | undefined>>();
  for (const v of graph.inputs) {
    const declared = v.type?.kind === 'tensor' ? v.type.shape : undefined;
    if (!declared || v.initializer !== undefined) continue;
    const shape = symbolicShape(v);
    declared.forEach((d, axis) => {
      if (typeof d !== 'string') return;
      const role = roleOf(shape?.[axis]);
      if (role !== undefined) byAxis.set(`${v.name}:${axis}`, role);
      if (d === '' || d === '?') return;
      let seen = byDim.get(d);
      if (!seen) byDim.set(d, (seen = new Set()));
      seen.add(role);
    });
  }
  const byName = new Map<string, DimRole>();
  for (const [name, seen] of byDim) {
    const [only] = [...seen];
    if (seen.size === 1 && only !== undefined) byName.set(name, only);
  }
  return { byAxis, byName };
}
