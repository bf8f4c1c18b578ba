// Sorted, chunked lowering of a spec inside one chunked LSH leaf (lshBound: the leaf, ∩ index terms,
// ∖ index terms), self-attention (nq == nk = n). Per round r of `hashes`, as the semantics defines it:
//   queries and keys sorted by (bucket, index) (lsh-hash.ts), padded to nC · c rows and cut into nC chunks
//   of c; the queries of chunk t score the keys of key chunks t - 1 and t (2c keys, GatherND of the sorted
//   rows), masked by the key's validity (padding, chunk -1), the spec's index terms on the original indices
//   (rest), and kvLength: scores [B, H, hashes, nC, c, 2c], never n x n.
// Rounds are united, not averaged: a pair kept in several rounds must count once. Each candidate's logit
// drops log(rounds in which the pair is a candidate), each round gives its softmax output o_r and
// logsumexp l_r, both put back in query order (GatherND at the inverse permutation), and
//   y = Σ_r exp(l_r) o_r / Σ_r exp(l_r) = Σ_{j kept} exp(s_ij) v_j / Σ_{j kept} exp(s_ij).
// A query with no kept key gives 0 (every l_r = -inf).

import { type DType, type Lsh, type MaskSpec, type Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';
import { lshBucketIds, type LshOrder, lshOrder } from './lsh-hash.js';
import { specMask } from './mask.js';

export interface LshInputs {
  readonly leaf: Lsh;
  /** The spec's index terms, read on the leaf's candidate pairs (lshBound's rest). */
  readonly rest: MaskSpec;
  /** [B, H, n, D], [B, H, n, D], [B, H, n, Dv]: heads already repeated for GQA. */
  readonly q: Value;
  readonly k: Value;
  readonly v: Value;
  readonly headDim: number;
  readonly vHeadDim: number;
  readonly dtype: DType;
  /** The dtype of the softmax (softmaxPrecision), Q's when the same. */
  readonly softmaxType: DType;
  readonly opset: number;
  /** Scale and softcap of a scores tensor. */
  readonly score: (qk: Value, what: string) => Value;
  /** T - S (0 here: nq == nk) and the cached key count ([B] or scalar, from kvLength; undefined = 0). */
  readonly bottomRight: Value;
  readonly past?: Value;
  /** [B] int64 valid key counts. */
  readonly kvLength?: Value;
  /**
   * The keys the spec's selection reads (the keys' buckets and sorted order) when they differ from `k`: the raw keys, padding
   * included, as the IR defines the selection; `k` has padding out of reach (padding.ts). Default `k`.
   */
  readonly selectionK?: Value;
}

const int = (x: number) => ({ type: 'int', value: BigInt(x) }) as const;

/** The LSH attention output [B, H, n, Dv] (see the comment at the top). */
export function lshChunkedAttention(b: NodeBuilder, x: LshInputs): Value {
  return lshChunkedParts(b, x).y;
}

/** What a guarded form reads of the chunked LSH lowering besides its output. */
export interface LshChunkedParts {
  /** The output [B, H, n, Dv]. */
  readonly y: Value;
  /** Per round the sorted order of the queries and of the keys (perm and its inverse pos, [B, H, R, n]). */
  readonly queryOrder: LshOrder;
  readonly keyOrder: LshOrder;
  /**
   * Per round and query (in query order) the log-sum-exp of its kept logits, the pairs kept in several rounds
   * counted once [B, H, R, n, 1], in the softmax's dtype; -inf where a round keeps no key. Built on first call.
   */
  readonly roundLogSumExp: () => Value;
  /** Per query the distinct keys it keeps over all rounds [B, H, n, 1], float32 (sums of 1 / rounds). Built on first call. */
  readonly keptKeys: () => Value;
}

/** The output and the parts a guarded form reads (see LshChunkedParts). */
export function lshChunkedParts(b: NodeBuilder, x: LshInputs): LshChunkedParts {
  const { leaf, dtype, softmaxType: st } = x;
  const R = leaf.hashes;
  const c = leaf.chunk;
  const i64 = (n: number, what: string) => b.scalar(what, 'i64', n);
  const reduce = (op: 'ReduceSum' | 'ReduceMax', t: Value, axis: number, keep: boolean, what: string) =>
    op === 'ReduceSum' || x.opset >= 18
      ? b.op(op, [t, b.ints(`${what}_axes`, [axis])], what, { keepdims: int(keep ? 1 : 0) })
      : b.op(op, [t], what, { axes: { type: 'ints', value: [BigInt(axis)] }, keepdims: int(keep ? 1 : 0) });
  const n = b.op('Gather', [b.op('Shape', [x.q], 'lsh_q_shape'), i64(2, 'lsh_seq_axis')], 'lsh_n', { axis: int(0) });
  const order = (t: Value, what: string) => lshOrder(b, lshBucketIds(b, leaf, t, x.headDim, dtype, what), n, what);
  const oq = order(x.q, 'lsh_q');
  const ok = order(x.selectionK ?? x.k, 'lsh_k');

  // sorted rows cut into chunks, -1 for padding: [B, H, R, nC, c]
  const nC = b.op('Div', [b.op('Add', [n, i64(c - 1, 'lsh_round_up')], 'lsh_n_up'), i64(c, 'lsh_chunk')], 'lsh_chunks');
  const padN = b.op('Sub', [b.op('Mul', [nC, i64(c, 'lsh_chunk2')], 'lsh_n_padded'), n], 'lsh_pad');
  const pads = b.op('Concat', [b.ints('lsh_pads_head', [0, 0, 0, 0, 0, 0, 0]), b.reshape(padN, [1], 'lsh_pad_1')], 'lsh_pads', { axis: int(0) });
  const minusOne = i64(-1, 'lsh_none');
  const chunked = (perm: Value, what: string) => b.reshape(b.op('Pad', [perm, pads, minusOne], `${what}_padded`), [0, 0, 0, -1, c], `${what}_chunked`);
  const qRows = chunked(oq.perm, 'lsh_q_rows');
  const kCur = chunked(ok.perm, 'lsh_k_rows');
  const shifted = b.op('Pad', [kCur, b.ints('lsh_prev_pads', [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]), minusOne], 'lsh_k_rows_shifted');
  const kPrev = b.op('Slice', [shifted, b.ints('lsh_prev_start', [0]), b.reshape(nC, [1], 'lsh_prev_end'), b.ints('lsh_prev_axis', [3])], 'lsh_k_rows_prev');
  const kRows = b.op('Concat', [kPrev, kCur], 'lsh_k_window', { axis: int(4) }); // [B, H, R, nC, 2c]

  const gatherRows = (t: Value, rows: Value, shape: number[], what: string) => {
    const at = b.reshape(b.op('Max', [rows, i64(0, `${what}_zero`)], `${what}_clamped`), [0, 0, -1, 1], `${what}_index`);
    return b.reshape(b.op('GatherND', [t, at], `${what}_rows`, { batch_dims: int(2) }), shape, what);
  };
  const qs = gatherRows(x.q, qRows, [0, 0, R, -1, c, x.headDim], 'lsh_q_sorted'); // [B, H, R, nC, c, D]
  const ks = gatherRows(x.k, kRows, [0, 0, R, -1, 2 * c, x.headDim], 'lsh_k_sorted'); // [B, H, R, nC, 2c, D]
  const vs = gatherRows(x.v, kRows, [0, 0, R, -1, 2 * c, x.vHeadDim], 'lsh_v_sorted');
  let logits = x.score(b.op('MatMul', [qs, b.transpose(ks, [0, 1, 2, 3, 5, 4], 'lsh_k_t')], 'lsh_qk'), 'lsh_scores'); // [B, H, R, nC, c, 2c]

  // the keep-mask on original indices
  const rows = b.reshape(qRows, [0, 0, 0, 0, c, 1], 'lsh_query_index');
  const cols = b.reshape(kRows, [0, 0, 0, 0, 1, 2 * c], 'lsh_key_index');
  const past6 = x.past ? b.reshape(x.past, [-1, 1, 1, 1, 1, 1], 'lsh_past') : undefined;
  const parts: Value[] = [b.op('Not', [b.op('Less', [cols, i64(0, 'lsh_zero')], 'lsh_key_padding')], 'lsh_key_valid')];
  const indexMask = specMask(b, x.rest, { rows, cols, bottomRight: x.bottomRight, ...(past6 ? { past: past6 } : {}) });
  if (indexMask) parts.push(indexMask);
  if (x.kvLength) parts.push(b.op('Less', [cols, b.reshape(x.kvLength, [-1, 1, 1, 1, 1, 1], 'lsh_kv_length')], 'lsh_kv_length_mask'));
  const keep = parts.reduce((acc, m) => b.op('And', [acc, m], 'lsh_keep'));

  // 1 / (rounds in which each candidate is one), f32, for the distinct kept keys; undefined with one round
  let onceWeight: (() => Value) | undefined;
  if (R > 1) {
    // rounds in which each candidate pair is a candidate: chunk(j) ∈ {chunk(i), chunk(i) - 1} in round r'. In its own
    // round r every real candidate is one, so count = 1 + the other rounds, taken as shifts r' = r + s (mod R): the
    // chunk ids of round r + s gathered at round r's sorted rows, compared over [.., c, 2c] (contiguous rows of 2c keys;
    // with the R' axis innermost these passes took 4x the scores' MatMul at n = 4096). Padding candidates (row -1) get
    // some count here; the keep-mask drops them.
    const chunkIds = (pos: Value, what: string) => b.op('Div', [pos, i64(c, `${what}_c`)], `${what}_chunk_id`); // [B, H, R, n]
    const cqAll = chunkIds(oq.pos, 'lsh_q');
    const ckAll = chunkIds(ok.pos, 'lsh_k');
    const atRows = (t: Value, rows: Value, shape: number[], what: string) => {
      const at = b.reshape(b.op('Max', [rows, i64(0, `${what}_zero`)], `${what}_clamped`), [0, 0, 0, -1, 1], `${what}_index`);
      return b.reshape(b.op('GatherND', [t, at], `${what}_rows`, { batch_dims: int(3) }), shape, what);
    };
    const hits: Value[] = [];
    for (let s = 1; s < R; s++) {
      const roll = b.ints(`lsh_roll${s}`, Array.from({ length: R }, (_, r) => (r + s) % R));
      const shifted = (t: Value, what: string) => b.op('Gather', [t, roll], what, { axis: int(2) });
      const cq = atRows(shifted(cqAll, `lsh_q_chunks_roll${s}`), qRows, [0, 0, R, -1, c, 1], `lsh_q_chunks${s}`); // [B, H, R, nC, c, 1]
      const ck = atRows(shifted(ckAll, `lsh_k_chunks_roll${s}`), kRows, [0, 0, R, -1, 1, 2 * c], `lsh_k_chunks${s}`); // [B, H, R, nC, 1, 2c]
      const prev = b.op('Sub', [cq, i64(1, `lsh_one${s}`)], `lsh_q_prev_chunk${s}`);
      hits.push(b.op('Or', [b.op('Equal', [ck, cq], `lsh_same_chunk${s}`), b.op('Equal', [ck, prev], `lsh_prev_chunk${s}`)], `lsh_candidate${s}`));
    }
    if (R === 2) {
      // two rounds: a pair counts 1 or 2 rounds, so the logit drops log 2 where the other round has it too
      const hit = hits[0]!;
      logits = b.op('Where', [hit, b.op('Sub', [logits, b.scalar('lsh_log2', dtype, Math.LN2)], 'lsh_halved'), logits], 'lsh_dedup');
      onceWeight = () => b.op('Where', [hit, b.scalar('lsh_half', 'f32', 0.5), b.scalar('lsh_whole', 'f32', 1)], 'lsh_once_weight');
    } else {
      const count = hits.reduce((acc, h, t) => b.op('Add', [acc, b.cast(h, dtype, `lsh_candidate_f${t + 1}`)], `lsh_rounds${t + 1}`), b.scalar('lsh_own_round', dtype, 1) as Value);
      logits = b.op('Sub', [logits, b.op('Log', [count], 'lsh_log_rounds')], 'lsh_dedup');
      onceWeight = () => b.op('Reciprocal', [b.cast(count, 'f32', 'lsh_rounds_f32')], 'lsh_once_weight');
    }
  }

  // softmax per (round, query) with its logsumexp
  const minusInf = b.scalar('lsh_minus_inf', st, -Infinity);
  const masked = b.op('Where', [keep, st !== dtype ? b.cast(logits, st, 'lsh_logits_cast') : logits, minusInf], 'lsh_masked');
  const mx = reduce('ReduceMax', masked, 5, true, 'lsh_max');
  const mxSafe = b.op('Where', [b.op('Equal', [mx, minusInf], 'lsh_row_empty'), b.scalar('lsh_zero_f', st, 0), mx], 'lsh_max_safe');
  const e = b.op('Exp', [b.op('Sub', [masked, mxSafe], 'lsh_shifted')], 'lsh_exp');
  const sum = reduce('ReduceSum', e, 5, true, 'lsh_sum');
  const ratio = b.op('Div', [e, sum], 'lsh_ratio');
  const p = b.op('Where', [b.op('IsNaN', [ratio], 'lsh_isnan'), b.scalar('lsh_zero_p', st, 0), ratio], 'lsh_probs');
  const o = b.op('MatMul', [st !== dtype ? b.cast(p, dtype, 'lsh_probs_cast') : p, vs], 'lsh_o'); // [B, H, R, nC, c, Dv]

  // back to query order: row i of round r sits at sorted position pos_r(i)
  const at = b.reshape(oq.pos, [0, 0, 0, -1, 1], 'lsh_unsort_index');
  const unsort = (t: Value, d: number, what: string) =>
    b.op('GatherND', [b.reshape(t, [0, 0, 0, -1, d], `${what}_sorted`), at], what, { batch_dims: int(3) }); // [B, H, R, n, d]
  const oRows = unsort(o, x.vHeadDim, 'lsh_o_rows');
  let lseRows: Value | undefined;
  const roundLogSumExp = () => (lseRows ??= unsort(b.op('Add', [mxSafe, b.op('Log', [sum], 'lsh_log_sum')], 'lsh_lse'), 1, 'lsh_lse_rows')); // [B, H, R, n, 1]
  // distinct kept keys per query: each candidate weighs 1 / (rounds in which it is one), summed over the rounds
  let keptRows: Value | undefined;
  const keptKeys = () => {
    if (keptRows) return keptRows;
    // Where, not keep / count: a padding candidate may count 0 rounds (0 / 0)
    const w = onceWeight ? b.op('Where', [keep, onceWeight(), b.scalar('lsh_keep_none', 'f32', 0)], 'lsh_keep_once') : b.cast(keep, 'f32', 'lsh_keep_f');
    const perRound = unsort(reduce('ReduceSum', w, 5, true, 'lsh_kept_per_round'), 1, 'lsh_kept_rows'); // [B, H, R, n, 1]
    return (keptRows = reduce('ReduceSum', perRound, 2, false, 'lsh_kept_keys')); // [B, H, n, 1]
  };
  if (R === 1) return { y: b.squeeze(oRows, 2, 'lsh_y'), queryOrder: oq, keyOrder: ok, roundLogSumExp, keptKeys };
  const lse = roundLogSumExp();
  const top = reduce('ReduceMax', lse, 2, true, 'lsh_lse_max');
  const topSafe = b.op('Where', [b.op('Equal', [top, minusInf], 'lsh_query_empty'), b.scalar('lsh_zero_f2', st, 0), top], 'lsh_lse_max_safe');
  const w = b.op('Exp', [b.op('Sub', [lse, topSafe], 'lsh_lse_shifted')], 'lsh_round_weight');
  const wy = st !== dtype ? b.cast(w, dtype, 'lsh_round_weight_cast') : w;
  const num = reduce('ReduceSum', b.op('Mul', [wy, oRows], 'lsh_weighted'), 2, false, 'lsh_num');
  const den = reduce('ReduceSum', wy, 2, false, 'lsh_den');
  const y = b.op('Div', [num, den], 'lsh_y_ratio');
  return { y: b.op('Where', [b.op('IsNaN', [y], 'lsh_y_isnan'), b.scalar('lsh_zero_y', dtype, 0), y], 'lsh_y'), queryOrder: oq, keyOrder: ok, roundLogSumExp, keptKeys };
}
