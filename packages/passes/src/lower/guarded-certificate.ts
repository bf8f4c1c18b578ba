// The run-time certificate of a guarded lowering (BOUNDS.md (b')), shared by every sparse form that carries one
// (guarded.ts: banded; guarded-blocks.ts: block-gathered). Standard ONNX ops, no n x n tensor.
//
//   guardedScoreBound    key block summaries K [B,H,T,D] -edge pad-> [B,H,nKB,kb,D] -ReduceMin/ReduceMax->
//                        [B,H,nKB,D], box centre c = (Kmax + Kmin) / 2, radius r = ReduceMax ||k - c|| [B,H,nKB];
//                        the score bound per row and key block, the summaries scaled by |scale| (q sign-flipped
//                        for scale < 0): U = MatMul(q, c) + min(MatMul(|q|, (Kmax - Kmin) / 2), ||q|| r)
//                        (the smaller of Quest's sum_c max(q_c Kmin_c, q_c Kmax_c) and the ball's q.c + ||q|| r),
//                        softcapped like the scores                                                  [B,H,S,nKB]
//                        and the per-row rounding slack 1e-4 (|scale| ||q|| K* + 1) of log B (K*: the largest
//                        ||max(|Kmin|, |Kmax|)|| or ||c|| + r over the blocks, so at least every |U| of the row);
//                        guard.summaries 'box': U = MatMul(q, c) + MatMul(|q|, (Kmax - Kmin) / 2), no radius, and
//                        the slack 1e-4 (|q| . a + 1), a_c = |scale| max over the blocks of max(|Kmin_c|, |Kmax_c|)
//   guardedCertificate   given U (plus any key bias), the dropped key count per (row, block) and the largest kept
//                        logit and its softmax probability per row:
//                        log Z_S = max kept logit - log(its probability) (guard.logZ 'max-logit': the max
//                        kept logit alone, a lower bound: no pass over the probabilities), log B - log Z_S =
//                        log Σ exp(U + log count - log Z_S) (the per-row shift known before the blocks: no
//                        maximum over them), m_hat = Sigmoid(log B - log Z_S), bound = m_hat R (R: V's range
//                        over all keys), widened by 1e-3 relative; rows that drop a key and whose bound > budget
//                        (NaN counts as over, and a row that keeps no key gets NaN: its sparse output 0 is no
//                        convex combination of V), in any batch and head, are recomputed: NonZero, Gather, dense
//                        attention over the baseline's keys (scores as qf Kᵀ, the transpose fused into the
//                        MatMul: none of all of K; an additive 0 / -inf mask shared by the heads; rows with no key
//                        left zeroed on the output rows [F, Dv]), ScatterND of whole rows back over the sparse
//                        output.
// With a key bias, log B is also widened by 1e-4 (|largest term| + |largest kept score|) (the terms that carry the
// sums). Float32 rounding in the summaries, the bias and the scores so cannot turn a row over the budget into a
// kept one.

import { keptKeyStandIn } from '@attnopt/bounds';
import { type AttentionParams, type DType, type MaskSpec, Tensor, type Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';
import { reduceAt, type ReduceOp } from './guarded-ops.js';
import { specMask } from './mask.js';
import type { RelativeRows } from './relative-bias.js';

/** Slack on the score bound and on the output bound against float32 rounding (see the comment at the top). */
const SCORE_SLACK = 1e-4;
const BOUND_SLACK = 1e-3;

/** The last part of the name of a guarded site's fallback flags [B, H, S] (bool: the row was recomputed densely). */
export const GUARD_FALLBACK_VALUE = 'guard_falls_back';

/** What the certificate reads of a guarded site: its parameters (scale, softcap, guard) and its heads. */
export interface GuardedSite {
  readonly params: AttentionParams;
  /** The default-domain opset the nodes are written for (GUARDED_OPSET or above). */
  readonly opset: number;
  /** The site (and head group) the node implements, from guardedSiteLabel: names the fallback flags. */
  readonly site?: string;
  /** [B, H, S, D], [B, H, T, D], [B, H, T, Dv]: heads already repeated for GQA. */
  readonly q: Value;
  readonly k: Value;
  readonly v: Value;
  readonly headDim: number;
  /** The dtype of the scores (Q's). */
  readonly dtype: DType;
  /** The softmax's dtype (softmaxPrecision); default `dtype`. */
  readonly softmaxType?: DType;
  /** The scores after scale and softcap, for any scores tensor. */
  readonly score: (qk: Value, what: string) => Value;
  /** [B] int64 valid key counts. */
  readonly kvLength?: Value;
  /** A key bias [Bb, Hb, 1, T] in `dtype`, added to the scores. */
  readonly keyBias?: Value;
  /** A relative-position bias (relative-bias.ts), added to the scores: the fallback rows read it on their keys. */
  readonly relative?: RelativeRows;
}

/** Small builders every guarded form uses. */
export function guardOps(b: NodeBuilder, x: Pick<GuardedSite, 'dtype' | 'opset'>) {
  return {
    axis: (a: number) => ({ axis: { type: 'int', value: BigInt(a) } }) as const,
    i64: (n: number, what: string) => b.scalar(what, 'i64', n),
    f32: (n: number, what: string) => b.scalar(what, 'f32', n),
    toF32: (t: Value, what: string) => (x.dtype === 'f32' ? t : b.cast(t, 'f32', what)),
    reduce: (op: ReduceOp, t: Value, axes: number[], what: string, keep = false) => reduceAt(b, x.opset, op, t, axes, what, keep),
  };
}

export interface GuardedScoreBound {
  /** Query and key counts, key blocks of the summaries, keys added to T to fill whole blocks (int64 scalars). */
  readonly S: Value;
  readonly T: Value;
  readonly nKB: Value;
  readonly padT: Value;
  /** T - S (int64 scalar): the bottom-right causal offset. */
  readonly bottomRight: Value;
  /** The score bound U per row and key block [B, H, S, nKB], float32. */
  readonly u: Value;
  /** The per-row rounding slack of log B [B, H, S]. */
  readonly rowSlack: Value;
  /** A float32 0 (counts and empty intervals). */
  readonly zero: Value;
}

/**
 * The key index [T] that replaces each always-kept key e by its stand-in r (when r < T), or undefined when no key
 * moves:
 *   index[j] = j + Σ_e [j = e] (r'_e - e), r'_e = Where(r_e < T, r_e, e)
 */
function summaryIndex(b: NodeBuilder, x: GuardedSite, T: Value, kb: number, alwaysKept: readonly number[]): Value | undefined {
  const kept = new Set(alwaysKept);
  const pairs = [...kept].flatMap((e) => {
    const r = keptKeyStandIn(e, kept, kb, Number.MAX_SAFE_INTEGER);
    return r === undefined ? [] : [[e, r] as const];
  });
  if (pairs.length === 0) return undefined;
  const { i64, reduce } = guardOps(b, x);
  const from = b.constant('guard_kept_keys', Tensor.fromValues('i64', [1, pairs.length], pairs.map(([e]) => e)));
  const to = b.constant('guard_kept_stand_ins', Tensor.fromValues('i64', [1, pairs.length], pairs.map(([, r]) => r)));
  const shift = b.op('Sub', [b.op('Where', [b.op('Less', [to, T], 'guard_stand_in_inside'), to, from], 'guard_stand_in'), from], 'guard_stand_in_shift');
  const keys = b.op('Range', [i64(0, 'guard_key_r0'), T, i64(1, 'guard_key_r1')], 'guard_key_index');
  const hit = b.cast(b.op('Equal', [b.reshape(keys, [-1, 1], 'guard_key_index_col'), from], 'guard_kept_hit'), 'i64', 'guard_kept_hit_i64');
  return b.op('Add', [keys, reduce('ReduceSum', b.op('Mul', [hit, shift], 'guard_kept_shift'), [1], 'guard_kept_moves')], 'guard_summary_index');
}

/**
 * Key block summaries of `blockSize` keys and the score bound U per row and block (see the comment at the top).
 * `alwaysKept`: keys every row keeps (sinks, global tokens), left out of their block's summaries as
 * @attnopt/bounds' keyBlockSummaries leaves them out: K is gathered with each replaced by its stand-in key
 * (keptKeyStandIn; itself where the stand-in is past the keys).
 */
export function guardedScoreBound(b: NodeBuilder, x: GuardedSite, blockSize: number, alwaysKept: readonly number[] = []): GuardedScoreBound {
  const p = x.params;
  const kb = blockSize;
  const D = x.headDim;
  const { axis, i64, f32, toF32, reduce } = guardOps(b, x);

  // sequence lengths
  const dim = (t: Value, k: number, what: string) => b.op('Gather', [b.op('Shape', [t], `${what}_shape`), i64(k, `${what}_axis`)], what, axis(0));
  const S = dim(x.q, 2, 'guard_nq');
  const T = dim(x.k, 2, 'guard_nk');
  const nKB = b.op('Div', [b.op('Add', [T, i64(kb - 1, 'guard_round')], 'guard_nk_up'), i64(kb, 'guard_block')], 'guard_blocks');

  // key block summaries: pad the keys to whole blocks by repeating the last one (min, max and radius unchanged);
  // with always-kept keys moved, the padding and the move in one Gather (one copy of K, not two)
  const k32 = toF32(x.k, 'guard_k_f32');
  const paddedT = b.op('Mul', [nKB, i64(kb, 'guard_block2')], 'guard_nk_padded');
  const padT = b.op('Sub', [paddedT, T], 'guard_pad');
  const moved = summaryIndex(b, x, T, kb, alwaysKept);
  let kPadded: Value;
  if (moved) {
    const lastKey = b.op('Sub', [T, i64(1, 'guard_last_key_1')], 'guard_last_key');
    const at = b.op('Min', [b.op('Range', [i64(0, 'guard_pad_r0'), paddedT, i64(1, 'guard_pad_r1')], 'guard_padded_index'), lastKey], 'guard_padded_clamped');
    kPadded = b.op('Gather', [k32, b.op('Gather', [moved, at], 'guard_summary_padded_index', axis(0))], 'guard_k_summarized', axis(2));
  } else {
    const pads = b.op('Concat', [b.ints('guard_pads_head', [0, 0, 0, 0, 0, 0]), b.reshape(padT, [1], 'guard_pad_1'), b.ints('guard_pads_tail', [0])], 'guard_pads', axis(0));
    kPadded = b.op('Pad', [k32, pads], 'guard_k_padded', { mode: { type: 'string', value: 'edge' } });
  }
  const kBlocks = b.reshape(kPadded, [0, 0, -1, kb, D], 'guard_k_blocks');
  const kmin = reduce('ReduceMin', kBlocks, [3], 'guard_kmin');
  const kmax = reduce('ReduceMax', kBlocks, [3], 'guard_kmax');
  const center = b.op('Mul', [b.op('Add', [kmax, kmin], 'guard_box_sum'), f32(0.5, 'guard_half')], 'guard_box_center_raw');
  // the ball's radius per block, unless the site takes the box alone (guard.summaries 'box': the ball tightened no
  // calibration row's certificate, and its distances are passes over K, its width and Min two over [B, H, S, nKB])
  const withBall = p.guard?.summaries !== 'box';
  const squaredDistances = () => {
    const diff = b.op('Sub', [kBlocks, b.reshape(center, [0, 0, 0, 1, -1], 'guard_box_center_rows')], 'guard_k_minus_center');
    return reduce('ReduceSum', b.op('Mul', [diff, diff], 'guard_sq'), [4], 'guard_dist2'); // [B, H, nKB, kb]
  };
  const dist2 = withBall ? squaredDistances() : undefined;
  const radius = dist2 ? b.op('Sqrt', [reduce('ReduceMax', dist2, [3], 'guard_r2')], 'guard_radius') : undefined;
  // onnxruntime's ReduceMin / ReduceMax pass over a NaN key, a sum does not: the block's sum of distances (or, box
  // alone, of its keys) times 0 (NaN where the block holds a NaN or infinite key, else 0) joins the centre, so q . c
  // and U are NaN for that block and every row that drops any key falls back. Padding keys (at or past kvLength)
  // arrive as copies of a valid key (padding.ts): whatever the input held there, no row reads it
  const blockSum = dist2 ? reduce('ReduceSum', dist2, [3], 'guard_dist2_sum', true) : reduce('ReduceSum', reduce('ReduceSum', kBlocks, [4], 'guard_k_sum_rows'), [3], 'guard_k_sum', true);
  const nanCarrier = b.op('Mul', [blockSum, f32(0, 'guard_nan_zero')], 'guard_nan_carrier');
  const tr = (t: Value, what: string) => b.transpose(t, [0, 1, 3, 2], what);

  // the score bound per row and key block; |scale| applied to the block summaries (not to [S, nKB] per head)
  const absScale = f32(Math.abs(p.scale), 'guard_scale');
  const scaled = (t: Value, what: string) => b.op('Mul', [t, absScale], what);
  const q32 = toF32(x.q, 'guard_q_f32');
  const qs = p.scale >= 0 ? q32 : b.op('Neg', [q32], 'guard_q_neg_scale');
  const boxCenter = scaled(b.op('Add', [center, nanCarrier], 'guard_box_center_nan'), 'guard_box_center');
  const boxHalf = scaled(b.op('Mul', [b.op('Sub', [kmax, kmin], 'guard_box_width'), f32(0.5, 'guard_half2')], 'guard_box_half_raw'), 'guard_box_half');
  // both bounds around the box centre c: Quest = q.c + |q|.half, ball = q.c + ||q|| r; q.c computed once
  const qc = b.op('MatMul', [qs, tr(boxCenter, 'guard_box_center_t')], 'guard_q_center');
  const qAbs = b.op('Abs', [qs], 'guard_q_abs');
  const questWidth = b.op('MatMul', [qAbs, tr(boxHalf, 'guard_box_half_t')], 'guard_quest_width');
  // the per-row rounding slack 1e-4 (reach + 1): `reach` bounds every |U| of the row (|scale| already applied)
  const kAbs = scaled(b.op('Max', [b.op('Abs', [kmin], 'guard_kmin_abs'), b.op('Abs', [kmax], 'guard_kmax_abs')], 'guard_k_abs_raw'), 'guard_k_abs');
  let u: Value;
  let reach: Value; // [B, H, S]
  if (radius) {
    // ||q|| K*, K* the largest ||max(|Kmin|, |Kmax|)|| or ||c|| + r over the blocks (Cauchy-Schwarz for both bounds)
    const qNorm = reduce('ReduceL2', qs, [3], 'guard_q_norm', true); // no [B, H, S, D] of squares
    const radiusScaled = scaled(radius, 'guard_radius_scaled');
    const ballWidth = b.op('Mul', [qNorm, b.reshape(radiusScaled, [0, 0, 1, -1], 'guard_radius_row')], 'guard_q_radius');
    u = b.op('Add', [qc, b.op('Min', [questWidth, ballWidth], 'guard_width')], 'guard_dot_bound');
    const norm = (t: Value, what: string) => b.op('Sqrt', [reduce('ReduceSum', b.op('Mul', [t, t], `${what}_sq`), [3], `${what}_2`)], what);
    const kStar = reduce('ReduceMax', b.op('Max', [norm(kAbs, 'guard_k_abs_norm'), b.op('Add', [norm(boxCenter, 'guard_center_norm'), radiusScaled], 'guard_ball_reach')], 'guard_block_reach'), [2], 'guard_k_star', true);
    reach = b.op('Mul', [b.reshape(qNorm, [0, 0, -1], 'guard_q_norm_row'), kStar], 'guard_q_reach');
  } else {
    // box alone: |U| <= sum_c |q_c| max(|Kmin_c|, |Kmax_c|) <= |q| . a, a_c that maximum over the blocks (one
    // MatMul of [B, H, S, D] by [B, H, D, 1])
    u = b.op('Add', [qc, questWidth], 'guard_dot_bound');
    const a = tr(reduce('ReduceMax', kAbs, [2], 'guard_k_reach_channels', true), 'guard_k_reach_col');
    reach = b.reshape(b.op('MatMul', [qAbs, a], 'guard_q_reach_col'), [0, 0, -1], 'guard_q_reach');
  }
  if (p.softcap > 0) {
    const c = f32(p.softcap, 'guard_softcap');
    u = b.op('Mul', [b.op('Tanh', [b.op('Div', [u, c], 'guard_softcap_div')], 'guard_softcap_tanh'), c], 'guard_softcapped_bound');
  }
  const softcapSlack = p.softcap > 0 ? 1e-5 * p.softcap : 0;
  const rowSlack = b.op(
    'Add',
    [b.op('Mul', [b.op('Add', [reach, f32(1, 'guard_one_f')], 'guard_q_reach1'), f32(SCORE_SLACK, 'guard_score_slack')], 'guard_row_slack_raw'), f32(softcapSlack, 'guard_softcap_slack')],
    'guard_row_slack',
  );
  const bottomRight = b.op('Sub', [T, S], 'guard_bottom_right');
  const zero = f32(0, 'guard_zero_count');
  return { S, T, nKB, padT, bottomRight, u, rowSlack, zero };
}

export interface CertificateInputs {
  /** The sparse output [B, H, S, Dv] the fallback rows are scattered over. */
  readonly y: Value;
  readonly bound: GuardedScoreBound;
  /** The score bound with any key bias added [Bb, Hb, S, nKB] (-inf where a block drops nothing is fine). */
  readonly bounded: Value;
  /** Dropped baseline keys per row and key block, float32, broadcastable to [B, H, S, nKB]. */
  readonly dropped: Value;
  /**
   * The largest kept logit and its softmax probability per row [B, H, S], float32; the probability left out under
   * guard.logZ 'max-logit' (log Z_S is then the largest kept logit alone, a lower bound).
   */
  readonly maxLogit: Value;
  readonly maxProb?: Value;
  /**
   * Rows that keep a key (broadcastable to [B, H, S]); the others get log Z_S = NaN (over the budget: recomputed when
   * they drop a key). Without it, the largest kept logit -inf and probability 0 give NaN there too.
   */
  readonly keepsSome?: Value;
}

/** The certified output [B, H, S, Dv]: the sparse rows, and the rows over the budget recomputed densely. */
export function guardedCertificate(b: NodeBuilder, x: GuardedSite, c: CertificateInputs): Value {
  const { f32, reduce } = guardOps(b, x);
  const { T, nKB, bottomRight, rowSlack, zero: zeroF } = c.bound;
  const logZ = keptLogZ(b, c);

  // log(B / Z_S) = log Σ exp(U + log count - log Z_S), shifted per row by log Z_S (known before the blocks) rather
  // than by the largest term (no ReduceMax and no second pass over [B, H, S, nKB]). log 0 = -inf leaves a block
  // out. A term above float32's range gives +inf: the row's bound is then far over any budget, as it would be
  // unshifted. A term below it flushes to 0: each loses at most 2^-126 of the ratio, so nKB 2^-126 is added back.
  const logCount = b.op('Log', [c.dropped], 'guard_log_count');
  const terms = b.op('Add', [c.bounded, logCount], 'guard_log_terms');
  // with a key bias, the rounding of the biased terms: 1e-4 (|largest term| + |largest kept score|), infinities as 0
  const finiteAbs = (t: Value, what: string) => b.op('Where', [b.op('IsInf', [t], `${what}_inf`), zeroF, b.op('Abs', [t], `${what}_abs`)], what);
  const biasSlack = x.keyBias || x.relative
    ? b.op('Mul', [b.op('Add', [finiteAbs(reduce('ReduceMax', terms, [3], 'guard_terms_max'), 'guard_terms_reach'), finiteAbs(c.maxLogit, 'guard_logit_reach')], 'guard_bias_reach'), f32(SCORE_SLACK, 'guard_bias_slack_rate')], 'guard_bias_slack')
    : undefined;
  const slack = biasSlack ? b.op('Add', [rowSlack, biasSlack], 'guard_row_slack_biased') : rowSlack;
  const shift = b.reshape(b.op('Sub', [logZ, slack], 'guard_shift'), [0, 0, -1, 1], 'guard_shift_col');
  const sumExp = reduce('ReduceSum', b.op('Exp', [b.op('Sub', [terms, shift], 'guard_terms_shifted')], 'guard_terms_exp'), [3], 'guard_terms_sum');
  const underflow = b.op('Mul', [b.cast(nKB, 'f32', 'guard_blocks_f'), f32(2 ** -126, 'guard_flush')], 'guard_underflow');
  const logRatio = b.op('Log', [b.op('Add', [sumExp, underflow], 'guard_terms_sum_floor')], 'guard_log_ratio');
  return guardedFromLogRatio(b, x, {
    y: c.y,
    logRatio,
    // a row that drops no key is exact (m = 0): it never falls back, so every fallback row keeps a baseline key
    dropsSome: () => b.op('Greater', [reduce('ReduceSum', c.dropped, [-1], 'guard_dropped_total'), zeroF], 'guard_drops_some'),
    T,
    bottomRight,
  });
}

/** What guardedFromLogB reads: the sparse output, log B (slack included), log Z_S's parts and the rows that drop a key. */
export interface LogBInputs {
  /** The sparse output [B, H, S, Dv] the fallback rows are scattered over. */
  readonly y: Value;
  /** log B per row [B, H, S], float32, its rounding slack included (-inf: nothing dropped). */
  readonly logB: Value;
  /** The largest kept logit and its softmax probability per row (see CertificateInputs.maxProb). */
  readonly maxLogit: Value;
  readonly maxProb?: Value;
  /** Rows that keep a key (see CertificateInputs.keepsSome). */
  readonly keepsSome?: Value;
  /** Rows that drop a baseline key [B, H, S] (bool), built when the flags need it. */
  readonly dropsSome: () => Value;
  /** Key count and T - S (int64 scalars). */
  readonly T: Value;
  readonly bottomRight: Value;
}

/**
 * log Z_S per row [B, H, S]: the largest kept logit minus the log of its probability (the sparse form's softmax
 * gives it without a second exponential pass); NaN on a row that keeps no key, so it falls back when it drops one
 * (its sparse output, 0, is no convex combination of V: R bounds nothing there).
 * Without the probability (guard.logZ 'max-logit'): the largest kept logit alone, log Z_S >= it, NaN where it is not
 * finite (-inf: no key kept, whatever keepsSome says; +inf or NaN: no bound either).
 */
function keptLogZ(b: NodeBuilder, c: Pick<LogBInputs, 'maxLogit' | 'maxProb' | 'keepsSome'>): Value {
  const logZKept = c.maxProb
    ? b.op('Sub', [c.maxLogit, b.op('Log', [c.maxProb], 'guard_log_max_prob')], 'guard_log_z_kept')
    : b.op(
        'Where',
        [b.op('Less', [b.op('Abs', [c.maxLogit], 'guard_max_logit_abs'), b.scalar('guard_max_logit_inf', 'f32', Infinity)], 'guard_max_logit_finite'), c.maxLogit, b.scalar('guard_max_logit_nan', 'f32', NaN)],
        'guard_log_z_kept',
      );
  return c.keepsSome ? b.op('Where', [c.keepsSome, logZKept, b.scalar('guard_keeps_none', 'f32', NaN)], 'guard_log_z') : logZKept;
}

/**
 * The certified output [B, H, S, Dv] from log B per row (see guardedFromLogRatio). guardedCertificate computes
 * log B / Z_S from per-block terms; a form whose B is no per-block sum (the minimum over LSH rounds) gives log B.
 */
export function guardedFromLogB(b: NodeBuilder, x: GuardedSite, c: LogBInputs): Value {
  const logRatio = b.op('Sub', [c.logB, keptLogZ(b, c)], 'guard_log_ratio');
  return guardedFromLogRatio(b, x, { y: c.y, logRatio, dropsSome: c.dropsSome, T: c.T, bottomRight: c.bottomRight });
}

/** What guardedFromLogRatio reads: the sparse output, log(B / Z_S) per row and the rows that drop a key. */
interface LogRatioInputs {
  readonly y: Value;
  /** log(B / Z_S) per row [B, H, S], float32, rounding slack included (NaN: over the budget). */
  readonly logRatio: Value;
  readonly dropsSome: () => Value;
  readonly T: Value;
  readonly bottomRight: Value;
}

/**
 * The certified output [B, H, S, Dv] from log(B / Z_S) per row: m_hat = Sigmoid(log B - log Z_S), the bound
 * m_hat R, the rows over the budget that drop a key recomputed densely over the baseline's keys and scattered back
 * (see the comment at the top).
 */
function guardedFromLogRatio(b: NodeBuilder, x: GuardedSite, c: LogRatioInputs): Value {
  const guard = x.params.guard!;
  const { axis, i64, f32, toF32, reduce } = guardOps(b, x);
  const { T, bottomRight } = c;

  // the output bound m_hat R per row, and the rows over the budget (NaN counts as over)
  const v32 = toF32(x.v, 'guard_v_f32');
  const cols = b.op('Range', [i64(0, 'guard_r6'), T, i64(1, 'guard_r7')], 'guard_key_index');
  const kvLength4d = x.kvLength ? b.reshape(x.kvLength, [-1, 1, 1, 1], 'guard_lengths_4d') : undefined;
  // R, NaN where V holds a NaN (ReduceMin / ReduceMax pass over it; a sum times 0 does not): no bound, the head's
  // rows that drop a key fall back. Padding rows (at or past kvLength) arrive as copies of a valid row (padding.ts)
  const rangeRaw = reduce('ReduceMax', b.op('Sub', [reduce('ReduceMax', v32, [2], 'guard_v_max', true), reduce('ReduceMin', v32, [2], 'guard_v_min', true)], 'guard_v_range_c'), [2, 3], 'guard_v_range_raw');
  const vSum = reduce('ReduceSum', v32, [2, 3], 'guard_v_sum');
  const range = b.op('Add', [rangeRaw, b.op('Mul', [vSum, f32(0, 'guard_v_nan_zero')], 'guard_v_nan_carrier')], 'guard_v_range');
  const mHat = b.op('Sigmoid', [c.logRatio], 'guard_m_hat');
  const bound = b.op('Mul', [b.op('Mul', [mHat, b.reshape(range, [0, 0, 1], 'guard_range_row')], 'guard_bound_raw'), f32(1 + BOUND_SLACK, 'guard_bound_slack')], 'guard_bound');
  const within = b.op('Not', [b.op('Greater', [bound, f32(guard.budget, 'guard_budget')], 'guard_over')], 'guard_not_over');
  const ok = b.op('And', [within, b.op('Not', [b.op('IsNaN', [bound], 'guard_nan')], 'guard_finite')], 'guard_ok');
  const dropsSome = c.dropsSome();
  // named for the site (a verify-only copy of the model reads it as an output: the run-time fallback rate)
  const fallsBack = b.op('And', [b.op('Not', [ok], 'guard_over_or_nan'), dropsSome], x.site !== undefined ? `${GUARD_FALLBACK_VALUE}.${x.site}` : GUARD_FALLBACK_VALUE);
  const anyHead = reduce('ReduceMax', b.cast(fallsBack, 'f32', 'guard_falls_back_f'), [0, 1], 'guard_falls_back_rows');

  // the fallback rows, dense over the baseline's keys, scattered over the sparse output
  const idx = b.reshape(b.op('NonZero', [anyHead], 'guard_fallback_nz'), [-1], 'guard_fallback_rows');
  const qf = b.op('Gather', [x.q, idx], 'guard_q_rows', axis(2));
  // scores as qf Kᵀ with the transpose of K fused into the MatMul (onnxruntime's FusedMatMul transB): the Reshape
  // (no copy) keeps it from merging into the transpose that made K [B, H, T, D], which no MatMul can take
  const kRows = b.reshape(x.k, [0, 0, -1, x.headDim], 'guard_k_rows');
  const qk = b.op('MatMul', [qf, b.transpose(kRows, [0, 1, 3, 2], 'guard_k_t')], 'guard_qk');
  const baseKeep = specMask(b, guard.baseline as MaskSpec, { rows: b.reshape(idx, [-1, 1], 'guard_fallback_col'), cols, bottomRight });
  const notPadding = kvLength4d ? b.op('Less', [cols, kvLength4d], 'guard_fallback_not_padding') : undefined;
  const keep = baseKeep && notPadding ? b.op('And', [baseKeep, notPadding], 'guard_fallback_keep') : (baseKeep ?? notPadding);
  const relRows = x.relative?.rows(idx, 'guard_fallback_rel');
  const rowBias = x.keyBias && relRows ? b.op('Add', [x.keyBias, relRows], 'guard_fallback_biases') : (x.keyBias ?? relRows);
  const yRows = b.op('MatMul', [fallbackSoftmax(b, x, x.score(qk, 'guard_scores'), keep, rowBias), x.v], 'guard_y_rows');
  // a row with no key left (another batch's kvLength, a key bias -inf on every key) is all NaN: 0, the ONNX
  // Attention convention, zeroed on the output rows [F, Dv] rather than on the probabilities [F, T]
  const yf = x.kvLength || rowBias ? b.op('Where', [b.op('IsNaN', [yRows], 'guard_y_rows_isnan'), b.scalar('guard_y_rows_zero', x.dtype, 0), yRows], 'guard_y_rows_masked') : yRows;
  // ScatterND over (batch, head, row) index triples [B, H, F, 3]: each update a whole row of Dv values
  const yShape = b.op('Shape', [yf], 'guard_y_rows_shape');
  const indexAlong = (a: number, what: string) => b.op('Range', [i64(0, `${what}_0`), b.op('Gather', [yShape, i64(a, `${what}_axis`)], `${what}_count`, axis(0)), i64(1, `${what}_1`)], what);
  const batchIndex = b.reshape(indexAlong(0, 'guard_batch_index'), [-1, 1, 1, 1], 'guard_batch_index_4d');
  const headIndex = b.reshape(indexAlong(1, 'guard_head_index'), [1, -1, 1, 1], 'guard_head_index_4d');
  const rowIndex = b.reshape(idx, [1, 1, -1, 1], 'guard_fallback_4d');
  const full = b.op('Shape', [b.op('Add', [b.op('Add', [batchIndex, headIndex], 'guard_bh_index'), rowIndex], 'guard_bhf_index')], 'guard_scatter_shape');
  const spread = (t: Value, what: string) => b.op('Expand', [t, full], what);
  const at = b.op('Concat', [spread(batchIndex, 'guard_scatter_b'), spread(headIndex, 'guard_scatter_h'), spread(rowIndex, 'guard_scatter_f')], 'guard_scatter_index', axis(3));
  return b.op('ScatterND', [c.y, at, yf], 'guard_y');
}

/**
 * The fallback rows' softmax over the baseline's keys: the mask as an additive 0 / -inf bias [F, T] (per batch
 * [B, 1, F, T] with kvLength) shared by the heads, cheaper than a Where over [B, H, F, T]; with a key bias, the mask
 * folded into it. Each fallback row drops a
 * key, so it keeps one: no row is fully masked, except in another batch whose kvLength leaves it no key, or where a
 * key bias is -inf on every baseline key (its softmax NaN, zeroed on the output rows by the caller).
 */
function fallbackSoftmax(b: NodeBuilder, x: GuardedSite, scores: Value, keep: Value | undefined, bias: Value | undefined): Value {
  const sm = x.softmaxType ?? x.dtype;
  const minusInf = () => b.scalar('guard_fallback_minus_inf', sm, -Infinity);
  // a key bias with the mask in one [Bb, Hb, F, T] term when the softmax runs in the scores' dtype:
  // (s + bias) + 0 = s + Where(keep, bias, -inf) bit for bit, one pass over the scores fewer
  if (bias && keep && sm === x.dtype) {
    const biased = b.op('Add', [scores, b.op('Where', [keep, bias, minusInf()], 'guard_fallback_key_bias')], 'guard_fallback_logits');
    return b.op('Softmax', [biased], 'guard_fallback_softmax', { axis: { type: 'int', value: -1n } });
  }
  const withBias = bias ? b.op('Add', [scores, bias], 'guard_scores_key_bias') : scores;
  const logits = sm !== x.dtype ? b.cast(withBias, sm, 'guard_fallback_logits_cast') : withBias;
  const biased = keep ? b.op('Add', [logits, b.op('Where', [keep, b.scalar('guard_fallback_keep_0', sm, 0), minusInf()], 'guard_fallback_bias')], 'guard_fallback_logits') : logits;
  const probs = b.op('Softmax', [biased], 'guard_fallback_softmax', { axis: { type: 'int', value: -1n } });
  return sm !== x.dtype ? b.cast(probs, x.dtype, 'guard_fallback_probs_cast') : probs;
}
