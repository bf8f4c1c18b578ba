// Attention(Q, K, V, spec=lsh(hashes, buckets, seed, chunk), guard over dense) -> LSH attention + per-row
// certificate, rows over the budget recomputed densely and scattered back (BOUNDS.md (b'); @attnopt/bounds'
// lshDroppedMass is the float64 statement of the same bound).
//
//   sparse output   chunk 0: as the unguarded form lowers it (attention.ts: dense scores under the bucket keep-mask,
//                   lsh-hash.ts's bucket ids), scores [B,H,S,T], so n x n like its unguarded one;
//                   chunk c > 0: lsh.ts's sorted, chunked form (2c keys per query and round), never n x n
//   groups          per round, the keys of each bucket (chunk 0) or of each chunk of the sorted keys (chunk c)
//   summaries       per round and group: per-channel min / max of K, the box centre c and the radius
//                   max ||k - c||; for buckets by ScatterElements with reduction min / max / add from opset 18
//                   (below, reductions of the bucket one-hot [B,H,R,T,G]), for chunks by reductions over each
//                   chunk (padded by repeating the last sorted key)                              [B,H,R,G,D]
//   score bound     U[i, r, g] = q.c + min(|q|.(Kmax - Kmin) / 2, ||q|| r), scaled and softcapped as the
//                   guarded-certificate.ts bound is                                            [B,H,R,S,G]
//   log B           per round, log-sum-exp over the groups the row does not keep of U + log count (the buckets
//                   but its own; the chunks but its own and the one before); a key the union drops is dropped in
//                   every round, so log B = ReduceMin over the rounds                                [B,H,S]
//   fallback        guardedFromLogB (guarded-certificate.ts): m_hat, the bound m_hat R, the rows over the budget
//                   that drop a key recomputed densely
// Every key of a group counts as dropped (also padding keys, kvLength): only looser. No bias input (refused).
// Rounding slack as guarded-certificate.ts's: 1e-4 (|scale| ||q|| K* + 1) on log B, 1e-3 relative on the bound.

import { type AttentionParams, type AttentionSpec, attentionParams, dense, hasRuntimeHeadDim, isDataDependent, type Lsh, type MaskSpec, type Node, printSpec, specEquals, type Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';
import { type GuardedSite, guardedFromLogB, guardOps } from './guarded-certificate.js';
import { GUARDED_OPSET } from './guarded-ops.js';
import { lshBucketIds } from './lsh-hash.js';
import { lshChunkedParts } from './lsh.js';
import { specMask } from './mask.js';

/** The opset from which the bucket summaries are ScatterElements with reduction min / max (below: a one-hot). */
export const GUARDED_LSH_OPSET = 18;

const SCORE_SLACK = 1e-4;

export interface GuardedLshInputs extends GuardedSite {
  readonly leaf: Lsh;
  readonly vHeadDim: number;
  /** Masks the logits and takes the softmax (attention.ts's, in the softmax's dtype); probabilities in `dtype`. */
  readonly softmax: (logits: Value, keep: Value | undefined, what: string) => Value;
}

/**
 * The LSH leaf of a guarded LSH form: `spec` itself over a dense baseline, or intersect(baseline, leaf) over a causal
 * one (as sparsify restricts a candidate to the site's spec); undefined for any other spec.
 */
export function guardedLshLeaf(spec: AttentionSpec, baseline: AttentionSpec): Lsh | undefined {
  if (spec.kind === 'lsh') return baseline.kind === 'dense' ? spec : undefined;
  if (spec.kind !== 'intersect' || baseline.kind !== 'causal' || spec.parts.length !== 2) return undefined;
  const [a, c] = spec.parts;
  return specEquals(a!, baseline) && c!.kind === 'lsh' ? c : undefined;
}

/** Why `spec` over `baseline` has no guarded LSH form, or undefined when it has (guardedLshLeaf). */
export function guardableLshSpec(spec: AttentionSpec, baseline: AttentionSpec): string | undefined {
  if (guardedLshLeaf(spec, baseline) !== undefined) return undefined;
  return `not lowered guarded yet: ${printSpec(spec)} over the baseline ${printSpec(baseline)} (the guarded LSH form takes an LSH leaf over a dense baseline, or causal ∩ an LSH leaf over its causal baseline)`;
}

/** Why the guarded LSH form does not apply at `opset` to a site with this spec and guard, or undefined. */
export function guardedLshBlocker(spec: AttentionSpec, guard: { readonly baseline: AttentionSpec }, opset: number): string | undefined {
  if (opset < GUARDED_OPSET) return `the guarded form needs opset ${GUARDED_OPSET}, got ${opset}`;
  return guardableLshSpec(spec, guard.baseline);
}

/** The guarded LSH output [B, H, S, Dv] (see the comment at the top). Call only where guardedLshBlocker allows. */
export function guardedLshAttention(b: NodeBuilder, x: GuardedLshInputs): Value {
  return x.leaf.chunk > 0 ? guardedLshChunkedAttention(b, x) : guardedLshBucketsAttention(b, x);
}

/** Chunk 0: the bucket-masked output and per-bucket summaries (see the comment at the top). */
function guardedLshBucketsAttention(b: NodeBuilder, x: GuardedLshInputs): Value {
  const { leaf, headDim: D } = x;
  const R = leaf.hashes;
  const G = leaf.buckets;
  const { axis, i64, f32, toF32, reduce } = guardOps(b, x);
  const dim = (t: Value, k: number, what: string) => b.op('Gather', [b.op('Shape', [t], `${what}_shape`), i64(k, `${what}_axis`)], what, axis(0));
  const S = dim(x.q, 2, 'guard_lsh_nq');
  const T = dim(x.k, 2, 'guard_lsh_nk');

  // bucket ids [B, H, R, S] and [B, H, R, T]; the keep-mask [B, H, S, T]: a shared bucket in some round
  const hq = lshBucketIds(b, leaf, x.q, D, x.dtype, 'guard_lsh_q');
  const hk = lshBucketIds(b, leaf, x.k, D, x.dtype, 'guard_lsh_k');
  const same = b.op('Equal', [b.unsqueeze(hq, [4], 'guard_lsh_q_col', 4), b.unsqueeze(hk, [3], 'guard_lsh_k_row', 4)], 'guard_lsh_same'); // [B, H, R, S, T]
  const shared = R === 1 ? b.squeeze(same, 2, 'guard_lsh_shared') : b.cast(reduce('ReduceMax', b.cast(same, 'f32', 'guard_lsh_same_f'), [2], 'guard_lsh_any_round_f'), 'bool', 'guard_lsh_shared');
  // padding keys (at or past kvLength[b]) are never kept; they count as dropped in the bound (only looser)
  const cols = b.op('Range', [i64(0, 'guard_lsh_c0'), T, i64(1, 'guard_lsh_c1')], 'guard_lsh_key_index');
  const baseline = x.params.guard!.baseline as MaskSpec;
  const rows = b.reshape(b.op('Range', [i64(0, 'guard_lsh_r0'), S, i64(1, 'guard_lsh_r1')], 'guard_lsh_query_index'), [-1, 1], 'guard_lsh_query_col');
  const causalKeep = baseline.kind === 'dense' ? undefined : specMask(b, baseline, { rows, cols, bottomRight: b.op('Sub', [T, S], 'guard_lsh_causal_offset') });
  const inBaseline = causalKeep ? b.op('And', [shared, causalKeep], 'guard_lsh_shared_causal') : shared;
  const keep = x.kvLength ? b.op('And', [inBaseline, b.op('Less', [cols, b.reshape(x.kvLength, [-1, 1, 1, 1], 'guard_lsh_kv_length_4d')], 'guard_lsh_not_padding')], 'guard_lsh_keep') : inBaseline;

  // the sparse output and its largest kept logit and probability per row
  const logits = x.score(b.op('MatMul', [x.q, b.transpose(x.k, [0, 1, 3, 2], 'guard_lsh_k_t')], 'guard_lsh_qk'), 'guard_lsh_scores');
  const probs = x.softmax(logits, keep, 'guard_lsh');
  const y = b.op('MatMul', [probs, x.v], 'guard_lsh_y');
  const minusInf = f32(-Infinity, 'guard_lsh_minus_inf');
  const maxLogit = reduce('ReduceMax', b.op('Where', [keep, toF32(logits, 'guard_lsh_logits_f32'), minusInf], 'guard_lsh_kept_logits'), [3], 'guard_lsh_max_logit');
  const maxProb = reduce('ReduceMax', toF32(probs, 'guard_lsh_probs_f32'), [3], 'guard_lsh_max_prob');

  // per round and bucket key summaries [B, H, R, G, D] and counts [B, H, R, G]
  const k32 = toF32(x.k, 'guard_lsh_k_f32');
  const kRounds = b.op('Expand', [b.unsqueeze(k32, [2], 'guard_lsh_k_5d', 4), b.ints('guard_lsh_rounds_shape', [1, 1, R, 1, 1])], 'guard_lsh_k_rounds'); // [B, H, R, T, D]
  const at = b.op('Expand', [b.unsqueeze(hk, [4], 'guard_lsh_k_bucket_col', 4), b.op('Shape', [kRounds], 'guard_lsh_k_rounds_shape')], 'guard_lsh_k_bucket_index');
  const shape5 = b.op('Shape', [kRounds], 'guard_lsh_summary_shape_in');
  const summaryShape = b.op(
    'Concat',
    [b.op('Slice', [shape5, b.ints('guard_lsh_ss0', [0]), b.ints('guard_lsh_ss1', [3])], 'guard_lsh_shape_head'), b.ints('guard_lsh_buckets', [G]), b.ints('guard_lsh_head_dim', [D])],
    'guard_lsh_summary_shape',
    axis(0),
  );
  const filled = (value: number, what: string) => b.op('Expand', [f32(value, `${what}_value`), summaryShape], what);
  const bucketIndex = b.op('Range', [i64(0, 'guard_lsh_g0'), i64(G, 'guard_lsh_g1'), i64(1, 'guard_lsh_g2')], 'guard_lsh_bucket_index');
  // opset 18+: ScatterElements with reduction min / max / add, O(R T D); below, the bucket one-hot [B,H,R,T,G] and
  // reductions over the keys, O(R T G D)
  const oneHot = x.opset >= GUARDED_LSH_OPSET ? undefined : b.op('Equal', [b.unsqueeze(hk, [4], 'guard_lsh_k_bucket_g', 4), bucketIndex], 'guard_lsh_k_one_hot');
  const oneHotD = oneHot ? b.unsqueeze(oneHot, [5], 'guard_lsh_k_one_hot_d', 5) : undefined; // [B, H, R, T, G, 1]
  const kRoundsG = oneHot ? b.unsqueeze(kRounds, [4], 'guard_lsh_k_rounds_g', 5) : undefined; // [B, H, R, T, 1, D]
  const scatter = (init: Value, index: Value, updates: Value, reduction: 'min' | 'max' | 'add', what: string) =>
    b.op('ScatterElements', [init, index, updates], what, { ...axis(3), reduction: { type: 'string', value: reduction } });
  const bucketed = (op: 'ReduceMin' | 'ReduceMax', init: number, what: string) =>
    oneHot
      ? reduce(op, b.op('Where', [oneHotD!, kRoundsG!, f32(init, `${what}_fill`)], `${what}_masked`), [3], what)
      : scatter(filled(init, `${what}_init`), at, kRounds, op === 'ReduceMin' ? 'min' : 'max', what);
  const kminRaw = bucketed('ReduceMin', Infinity, 'guard_lsh_kmin_raw');
  const kmaxRaw = bucketed('ReduceMax', -Infinity, 'guard_lsh_kmax_raw');
  const zerosG = b.op('Slice', [filled(0, 'guard_lsh_zeros_d'), b.ints('guard_lsh_zg0', [0]), b.ints('guard_lsh_zg1', [1]), b.ints('guard_lsh_zg2', [4])], 'guard_lsh_zeros_g_5d');
  const zeros4 = b.squeeze(zerosG, 4, 'guard_lsh_zeros_g'); // [B, H, R, G]
  const ones = b.op('Expand', [f32(1, 'guard_lsh_one'), b.op('Shape', [hk], 'guard_lsh_hk_shape')], 'guard_lsh_ones');
  const counts = oneHot ? reduce('ReduceSum', b.cast(oneHot, 'f32', 'guard_lsh_k_one_hot_f'), [3], 'guard_lsh_counts') : scatter(zeros4, hk, ones, 'add', 'guard_lsh_counts'); // [B, H, R, G]
  // an empty bucket (min +inf, max -inf) gets zero summaries: it bounds nothing (count 0) and stays finite
  const nonEmpty = b.op('Greater', [b.unsqueeze(counts, [4], 'guard_lsh_counts_col', 4), f32(0, 'guard_lsh_zero')], 'guard_lsh_non_empty');
  const zero = f32(0, 'guard_lsh_zero_f');
  const kmin = b.op('Where', [nonEmpty, kminRaw, zero], 'guard_lsh_kmin');
  const kmax = b.op('Where', [nonEmpty, kmaxRaw, zero], 'guard_lsh_kmax');
  const center = b.op('Mul', [b.op('Add', [kmax, kmin], 'guard_lsh_box_sum'), f32(0.5, 'guard_lsh_half')], 'guard_lsh_center_raw');
  const diff = b.op('Sub', [kRounds, b.op('GatherElements', [center, at], 'guard_lsh_key_center', axis(3))], 'guard_lsh_k_minus_center');
  const dist2 = reduce('ReduceSum', b.op('Mul', [diff, diff], 'guard_lsh_sq'), [4], 'guard_lsh_dist2'); // [B, H, R, T]
  const r2 = oneHot
    ? reduce('ReduceMax', b.op('Where', [oneHot, b.unsqueeze(dist2, [4], 'guard_lsh_dist2_g', 4), zero], 'guard_lsh_dist2_masked'), [3], 'guard_lsh_r2')
    : scatter(zeros4, hk, dist2, 'max', 'guard_lsh_r2');
  const radius = b.op('Sqrt', [r2], 'guard_lsh_radius'); // [B, H, R, G]
  const centerChecked = withNanCarrier(b, x, center, dist2, [2, 3]);

  // per round: the buckets the row does not share, counted [B, H, R, S, G]; log B_r; log B = min over rounds
  const own = b.cast(b.op('Equal', [b.unsqueeze(hq, [4], 'guard_lsh_q_bucket_col', 4), bucketIndex], 'guard_lsh_own_bucket'), 'f32', 'guard_lsh_own_bucket_f');
  const dropped = b.op('Mul', [b.unsqueeze(counts, [3], 'guard_lsh_counts_row', 4), b.op('Sub', [f32(1, 'guard_lsh_one2'), own], 'guard_lsh_other_bucket')], 'guard_lsh_dropped');
  // the row drops a key when a baseline key (causal, not padding) shares none of its buckets
  const notPadding = x.kvLength ? b.op('Less', [cols, b.reshape(x.kvLength, [-1, 1, 1, 1], 'guard_lsh_kv_length_4d_b')], 'guard_lsh_not_padding_b') : undefined;
  const baseKeys = causalKeep && notPadding ? b.op('And', [causalKeep, notPadding], 'guard_lsh_base_keys') : (causalKeep ?? notPadding);
  const droppedKeys = b.op('Not', [shared], 'guard_lsh_not_shared');
  const droppedBase = baseKeys ? b.op('And', [baseKeys, droppedKeys], 'guard_lsh_dropped_keys') : droppedKeys;
  const dropsSome = () => b.cast(reduce('ReduceMax', b.cast(droppedBase, 'f32', 'guard_lsh_dropped_keys_f'), [3], 'guard_lsh_drops_any_f'), 'bool', 'guard_lsh_drops_some');
  return certifiedFromGroups(b, x, { kmin, kmax, center: centerChecked, radius, dropped, y, maxLogit, maxProb, dropsSome, S, T, zero });
}

/**
 * Chunk c > 0 (self-attention): the sorted, chunked output (lsh.ts) and per round the summaries of each chunk of the
 * sorted keys (padded to whole chunks by repeating the last key: min, max and radius unchanged) [B,H,R,nC,D]; a row
 * drops, in round r, the chunks other than its own and the one before (chunk t holds min(c, n - t c) keys); log Z_S
 * = log-sum-exp over the rounds of each round's log-sum-exp (the pairs kept in several rounds counted once there).
 */
function guardedLshChunkedAttention(b: NodeBuilder, x: GuardedLshInputs): Value {
  const { leaf, headDim: D } = x;
  const R = leaf.hashes;
  const c = leaf.chunk;
  const { axis, i64, f32, toF32, reduce } = guardOps(b, x);
  const dim = (t: Value, k: number, what: string) => b.op('Gather', [b.op('Shape', [t], `${what}_shape`), i64(k, `${what}_axis`)], what, axis(0));
  const S = dim(x.q, 2, 'guard_lsh_nq');
  const T = dim(x.k, 2, 'guard_lsh_nk');
  const zero = f32(0, 'guard_lsh_zero_f');
  const parts = lshChunkedParts(b, {
    leaf,
    rest: x.params.guard!.baseline as MaskSpec,
    q: x.q,
    k: x.k,
    v: x.v,
    headDim: D,
    vHeadDim: x.vHeadDim,
    dtype: x.dtype,
    softmaxType: x.softmaxType ?? x.dtype,
    opset: x.opset,
    score: x.score,
    bottomRight: b.op('Sub', [T, S], 'guard_lsh_chunk_offset'),
    ...(x.kvLength ? { kvLength: x.kvLength } : {}),
  });

  // the keys in each round's sorted order, cut into chunks [B, H, R, nC, c, D]
  const k32 = toF32(x.k, 'guard_lsh_k_f32');
  const sorted = b.reshape(b.op('GatherND', [k32, b.reshape(parts.keyOrder.perm, [0, 0, -1, 1], 'guard_lsh_k_perm_index')], 'guard_lsh_k_sorted_flat', { batch_dims: { type: 'int', value: 2n } }), [0, 0, R, -1, D], 'guard_lsh_k_sorted');
  const nC = b.op('Div', [b.op('Add', [T, i64(c - 1, 'guard_lsh_round_up')], 'guard_lsh_nk_up'), i64(c, 'guard_lsh_chunk')], 'guard_lsh_chunks');
  const padT = b.op('Sub', [b.op('Mul', [nC, i64(c, 'guard_lsh_chunk2')], 'guard_lsh_nk_padded'), T], 'guard_lsh_pad');
  const pads = b.op('Concat', [b.ints('guard_lsh_pads_head', [0, 0, 0, 0, 0, 0, 0, 0]), b.reshape(padT, [1], 'guard_lsh_pad_1'), b.ints('guard_lsh_pads_tail', [0])], 'guard_lsh_pads', axis(0));
  const chunks = b.reshape(b.op('Pad', [sorted, pads], 'guard_lsh_k_padded', { mode: { type: 'string', value: 'edge' } }), [0, 0, R, -1, c, D], 'guard_lsh_k_chunks');
  const kmin = reduce('ReduceMin', chunks, [4], 'guard_lsh_kmin');
  const kmax = reduce('ReduceMax', chunks, [4], 'guard_lsh_kmax');
  const center = b.op('Mul', [b.op('Add', [kmax, kmin], 'guard_lsh_box_sum'), f32(0.5, 'guard_lsh_half')], 'guard_lsh_center_raw');
  const diff = b.op('Sub', [chunks, b.unsqueeze(center, [4], 'guard_lsh_center_rows', 5)], 'guard_lsh_k_minus_center');
  const dist2 = reduce('ReduceSum', b.op('Mul', [diff, diff], 'guard_lsh_sq'), [5], 'guard_lsh_dist2'); // [B, H, R, nC, c]
  const radius = b.op('Sqrt', [reduce('ReduceMax', dist2, [4], 'guard_lsh_r2')], 'guard_lsh_radius'); // [B, H, R, nC]
  const centerChecked = withNanCarrier(b, x, center, dist2, [2, 3, 4]);

  // dropped keys per row, round and chunk [B, H, R, S, nC]: every chunk but the row's own and the one before
  const chunkIndex = b.op('Range', [i64(0, 'guard_lsh_t0'), nC, i64(1, 'guard_lsh_t1')], 'guard_lsh_chunk_index');
  const chunkKeys = b.op('Min', [f32(c, 'guard_lsh_chunk_f'), b.op('Sub', [b.cast(T, 'f32', 'guard_lsh_nk_f'), b.op('Mul', [b.cast(chunkIndex, 'f32', 'guard_lsh_chunk_index_f'), f32(c, 'guard_lsh_chunk_f2')], 'guard_lsh_chunk_start')], 'guard_lsh_chunk_rest')], 'guard_lsh_chunk_keys');
  const own = b.unsqueeze(b.op('Div', [parts.queryOrder.pos, i64(c, 'guard_lsh_chunk3')], 'guard_lsh_q_chunk'), [4], 'guard_lsh_q_chunk_col', 4);
  const kept = b.op('Or', [b.op('Equal', [own, chunkIndex], 'guard_lsh_own_chunk'), b.op('Equal', [b.op('Sub', [own, i64(1, 'guard_lsh_one_i')], 'guard_lsh_prev_chunk_id'), chunkIndex], 'guard_lsh_prev_chunk')], 'guard_lsh_kept_chunk');
  const dropped = b.op('Mul', [chunkKeys, b.op('Sub', [f32(1, 'guard_lsh_one2'), b.cast(kept, 'f32', 'guard_lsh_kept_chunk_f')], 'guard_lsh_other_chunk')], 'guard_lsh_dropped');

  // log Z_S per row from the rounds' log-sum-exps [B, H, R, S, 1]; a row that keeps no key gets keepsSome false
  const lse = b.squeeze(toF32(parts.roundLogSumExp(), 'guard_lsh_lse_f32'), 4, 'guard_lsh_lse'); // [B, H, R, S]
  const top = reduce('ReduceMax', lse, [2], 'guard_lsh_lse_top'); // [B, H, S]
  const keepsSome = b.op('Not', [b.op('IsInf', [top], 'guard_lsh_lse_top_inf')], 'guard_lsh_keeps_some');
  const topSafe = b.op('Where', [keepsSome, top, zero], 'guard_lsh_lse_top_safe');
  const shifted = b.op('Exp', [b.op('Sub', [lse, b.unsqueeze(topSafe, [2], 'guard_lsh_lse_top_col', 3)], 'guard_lsh_lse_shifted')], 'guard_lsh_lse_exp');
  const logZ = b.op('Add', [topSafe, b.op('Log', [reduce('ReduceSum', shifted, [2], 'guard_lsh_lse_sum')], 'guard_lsh_lse_log')], 'guard_lsh_log_z');
  // the row drops a key when it keeps fewer distinct keys than its baseline has: T, or i + 1 (causal, nq == nk),
  // capped by kvLength (counts in float32, exact integers; sums of 1 / rounds within 0.5 of one)
  const Tf = b.cast(T, 'f32', 'guard_lsh_nk_count');
  const rowsF = b.cast(b.op('Range', [i64(1, 'guard_lsh_rc0'), b.op('Add', [S, i64(1, 'guard_lsh_rc1')], 'guard_lsh_rows_end'), i64(1, 'guard_lsh_rc2')], 'guard_lsh_row_counts'), 'f32', 'guard_lsh_row_counts_f');
  const causalCount = x.params.guard!.baseline.kind === 'causal' ? b.op('Min', [rowsF, Tf], 'guard_lsh_causal_count') : Tf;
  const baseCount = x.kvLength ? b.op('Min', [causalCount, b.reshape(b.cast(x.kvLength, 'f32', 'guard_lsh_kv_length_f'), [-1, 1, 1], 'guard_lsh_kv_length_3d')], 'guard_lsh_base_count') : causalCount;
  const keptCount = b.reshape(parts.keptKeys(), [0, 0, -1], 'guard_lsh_kept_count');
  const dropsSome = () => b.op('Less', [b.op('Add', [keptCount, f32(0.5, 'guard_lsh_half_key')], 'guard_lsh_kept_count_up'), baseCount], 'guard_lsh_drops_some');
  // guardedFromLogB reads log Z_S as the largest kept logit minus the log of its probability: here log Z_S - log 1
  return certifiedFromGroups(b, x, { kmin, kmax, center: centerChecked, radius, dropped, y: parts.y, maxLogit: logZ, maxProb: f32(1, 'guard_lsh_unit_prob'), keepsSome, dropsSome, S, T, zero });
}

/**
 * The groups' centres [B, H, R, G, D] with a NaN carried in from the keys: ReduceMin / ReduceMax and ScatterElements
 * min / max pass over a NaN key, a sum does not, so a NaN (or infinite) key makes every centre of its head NaN, q . c
 * NaN, and every row of the head that drops a key fall back (see guardedScoreBound; per head here, not per group:
 * the groups are scattered). The sum is of the keys' distances `dist2` (reduced over `axes` down to [B, H]); padding
 * keys (at or past kvLength) arrive as copies of a valid key (padding.ts).
 */
function withNanCarrier(b: NodeBuilder, x: GuardedSite, center: Value, dist2: Value, axes: number[]): Value {
  const { f32, reduce } = guardOps(b, x);
  const sum = reduce('ReduceSum', dist2, axes, 'guard_lsh_dist2_sum');
  const carrier = b.op('Mul', [sum, f32(0, 'guard_lsh_nan_zero')], 'guard_lsh_nan_carrier_bh');
  return b.op('Add', [center, b.reshape(carrier, [0, 0, 1, 1, 1], 'guard_lsh_nan_carrier')], 'guard_lsh_center_checked');
}

/** Per round, group summaries [B, H, R, G, D] (radius [B, H, R, G]) and the keys each row drops per group. */
interface GroupCertificate {
  readonly kmin: Value;
  readonly kmax: Value;
  readonly center: Value;
  readonly radius: Value;
  /** Dropped keys per row, round and group [B, H, R, S, G], float32. */
  readonly dropped: Value;
  readonly y: Value;
  readonly maxLogit: Value;
  readonly maxProb: Value;
  readonly keepsSome?: Value;
  /** Rows that drop a baseline key; default: those whose log B is finite (every round drops a key). */
  readonly dropsSome?: () => Value;
  readonly S: Value;
  readonly T: Value;
  readonly zero: Value;
}

/** The score bound per row, round and group, log B the minimum over the rounds, and the fallback (see the top). */
function certifiedFromGroups(b: NodeBuilder, x: GuardedLshInputs, g: GroupCertificate): Value {
  const p = x.params;
  const { f32, toF32, reduce } = guardOps(b, x);
  const { kmin, kmax, center, radius, dropped, zero } = g;
  // the score bound U per row, round and bucket [B, H, R, S, G], |scale| applied to the summaries
  const absScale = f32(Math.abs(p.scale), 'guard_lsh_scale');
  const scaled = (t: Value, what: string) => b.op('Mul', [t, absScale], what);
  const q32 = toF32(x.q, 'guard_lsh_q_f32');
  const qs = b.unsqueeze(p.scale >= 0 ? q32 : b.op('Neg', [q32], 'guard_lsh_q_neg_scale'), [2], 'guard_lsh_q_5d', 4); // [B, H, 1, S, D]
  const tr = (t: Value, what: string) => b.transpose(t, [0, 1, 2, 4, 3], what);
  const boxCenter = scaled(center, 'guard_lsh_box_center');
  const boxHalf = scaled(b.op('Mul', [b.op('Sub', [kmax, kmin], 'guard_lsh_box_width'), f32(0.5, 'guard_lsh_half2')], 'guard_lsh_box_half_raw'), 'guard_lsh_box_half');
  const qc = b.op('MatMul', [qs, tr(boxCenter, 'guard_lsh_box_center_t')], 'guard_lsh_q_center');
  const questWidth = b.op('MatMul', [b.op('Abs', [qs], 'guard_lsh_q_abs'), tr(boxHalf, 'guard_lsh_box_half_t')], 'guard_lsh_quest_width');
  const qNorm = b.op('Sqrt', [reduce('ReduceSum', b.op('Mul', [qs, qs], 'guard_lsh_q_sq'), [4], 'guard_lsh_q_norm2', true)], 'guard_lsh_q_norm'); // [B, H, 1, S, 1]
  const radiusScaled = scaled(radius, 'guard_lsh_radius_scaled');
  const ballWidth = b.op('Mul', [qNorm, b.unsqueeze(radiusScaled, [3], 'guard_lsh_radius_row', 4)], 'guard_lsh_q_radius');
  let u = b.op('Add', [qc, b.op('Min', [questWidth, ballWidth], 'guard_lsh_width')], 'guard_lsh_dot_bound');
  if (p.softcap > 0) {
    const c = f32(p.softcap, 'guard_lsh_softcap');
    u = b.op('Mul', [b.op('Tanh', [b.op('Div', [u, c], 'guard_lsh_softcap_div')], 'guard_lsh_softcap_tanh'), c], 'guard_lsh_softcapped_bound');
  }

  const terms = b.op('Add', [u, b.op('Log', [dropped], 'guard_lsh_log_count')], 'guard_lsh_terms');
  // a round that drops nothing has every term -inf: its log B_r is -inf (max taken as 0, the sum of exps 0)
  const termsMax = reduce('ReduceMax', terms, [4], 'guard_lsh_terms_max', true);
  const termsMaxSafe = b.op('Where', [b.op('IsInf', [termsMax], 'guard_lsh_terms_inf'), zero, termsMax], 'guard_lsh_terms_max_safe');
  const sumExp = reduce('ReduceSum', b.op('Exp', [b.op('Sub', [terms, termsMaxSafe], 'guard_lsh_terms_shifted')], 'guard_lsh_terms_exp'), [4], 'guard_lsh_terms_sum');
  const logBRounds = b.op('Add', [b.op('Log', [sumExp], 'guard_lsh_terms_log'), b.squeeze(termsMaxSafe, 4, 'guard_lsh_terms_max_rows')], 'guard_lsh_log_b_rounds'); // [B, H, R, S]
  const logBRaw = reduce('ReduceMin', logBRounds, [2], 'guard_lsh_log_b_raw'); // [B, H, S]

  // the rounding slack of log B per row: 1e-4 (|scale| ||q|| K* + 1), K* >= ||k|| over every key of every summary
  const norm = (t: Value, what: string) => b.op('Sqrt', [reduce('ReduceSum', b.op('Mul', [t, t], `${what}_sq`), [4], `${what}_2`)], what);
  const kAbs = b.op('Max', [b.op('Abs', [kmin], 'guard_lsh_kmin_abs'), b.op('Abs', [kmax], 'guard_lsh_kmax_abs')], 'guard_lsh_k_abs');
  const reach = b.op('Max', [norm(scaled(kAbs, 'guard_lsh_k_abs_scaled'), 'guard_lsh_k_abs_norm'), b.op('Add', [norm(boxCenter, 'guard_lsh_center_norm'), radiusScaled], 'guard_lsh_ball_reach')], 'guard_lsh_bucket_reach'); // [B, H, R, G]
  const kStar = reduce('ReduceMax', reach, [2, 3], 'guard_lsh_k_star', true); // [B, H, 1, 1]
  const qNormRow = b.reshape(qNorm, [0, 0, -1], 'guard_lsh_q_norm_row');
  const softcapSlack = p.softcap > 0 ? 1e-5 * p.softcap : 0;
  const rowSlack = b.op(
    'Add',
    [b.op('Mul', [b.op('Add', [b.op('Mul', [qNormRow, b.squeeze(kStar, 3, 'guard_lsh_k_star_row')], 'guard_lsh_q_reach'), f32(1, 'guard_lsh_one3')], 'guard_lsh_q_reach1'), f32(SCORE_SLACK, 'guard_lsh_score_slack')], 'guard_lsh_row_slack_raw'), f32(softcapSlack, 'guard_lsh_softcap_slack')],
    'guard_lsh_row_slack',
  );
  const logB = b.op('Add', [logBRaw, rowSlack], 'guard_lsh_log_b');
  const dropsSome = g.dropsSome ?? (() => b.op('Not', [b.op('IsInf', [logBRaw], 'guard_lsh_log_b_inf')], 'guard_lsh_drops_some'));
  const bottomRight = b.op('Sub', [g.T, g.S], 'guard_lsh_bottom_right');
  return guardedFromLogB(b, x, { y: g.y, logB, maxLogit: g.maxLogit, maxProb: g.maxProb, ...(g.keepsSome ? { keepsSome: g.keepsSome } : {}), dropsSome, T: g.T, bottomRight });
}

/** Whether a node's spec takes the guarded LSH form: a guarded site whose spec is an LSH leaf (or causal ∩ one over a causal baseline). */
export function isGuardedLsh(p: AttentionParams): boolean {
  return p.guard !== undefined && (p.spec.kind === 'lsh' || (isDataDependent(p.spec) && guardedLshLeaf(p.spec, p.guard.baseline) !== undefined));
}

/** Why the guarded LSH form does not apply to `node` at `opset`, or undefined when it does. */
export function guardedLshNodeBlocker(node: Node, opset: number): string | undefined {
  const p = attentionParams(node);
  if (!p.guard) return 'the site has no guard';
  const [, , , bias, pastKey] = node.inputs;
  if (hasRuntimeHeadDim(p)) return 'the guarded form needs a static head size';
  if (pastKey !== undefined) return 'not lowered guarded yet: a past keys input';
  if (bias !== undefined) return 'not lowered guarded yet: lsh with a bias input';
  if (p.scoresMode !== undefined) return 'not lowered guarded yet: a scores output';
  if (node.inputs[6] !== undefined && p.guard.baseline.kind === 'causal' && p.guard.baseline.align === 'past') return 'not lowered guarded yet: lsh with a lengths input and the past alignment';
  return guardedLshBlocker(p.spec, p.guard, opset);
}

/** Why the chooser may not offer `spec` as a guarded LSH form at a site with (or without) a bias input, or undefined. */
export function guardedLshChoiceBlocker(spec: AttentionSpec, baseline: AttentionSpec, hasBias: boolean): string | undefined {
  if (hasBias) return 'not lowered guarded yet: lsh with a bias input';
  return guardableLshSpec(spec, baseline);
}

/** Whether `spec` is an LSH form the chooser asks guardedLshChoiceBlocker about (an LSH leaf, alone or intersected). */
export function isLshForm(spec: AttentionSpec): boolean {
  return spec.kind === 'lsh' || (spec.kind === 'intersect' && spec.parts.some((p) => p.kind === 'lsh'));
}
