// Guarded banded lowering (BOUNDS.md (b')): the banded sparse form, a per-row certificate of the mass it drops,
// and the rows whose certificate exceeds the budget recomputed densely; standard ONNX ops (opset 13+, the
// reductions written per opset by guarded-ops.ts), no n x n tensor.
//
//   key block summaries   K [B,H,T,D] -edge pad-> [B,H,nKB,kb,D] -ReduceMin/ReduceMax-> [B,H,nKB,D], the box
//                         centre c = (Kmax + Kmin) / 2, radius r = ReduceMax ||k - c||                  [B,H,nKB]
//   key bias              a bias constant along the query axis (key-bias.ts: ALiBi as slope · j, a padding
//                         mask): its largest value over the keys each row drops in each block
//                         (guarded-key-bias.ts), added to U                                         [Bb,Hb,S,nKB]
//   score upper bound     U = min(Quest, ball), the summaries scaled by |scale| (q sign-flipped for scale < 0):
//                         Quest = MatMul(q, c) + MatMul(|q|, (Kmax - Kmin) / 2)
//                         (= sum_c max(q_c Kmin_c, q_c Kmax_c)), ball = MatMul(q, c) + ||q|| r, so
//                         U = MatMul(q, c) + min(MatMul(|q|, (Kmax - Kmin) / 2), ||q|| r)              [B,H,S,nKB]
//   dropped keys          count[i, blk] = |blk ∩ baseline(i)| - |blk ∩ baseline(i) ∩ (band(i) ∪ sinks)|  [S,nKB]
//   certificate           log B = log-sum-exp(U + log count), log Z_S = max kept score - log(its softmax
//                         probability) from the banded softmax, m_hat = Sigmoid(log B - log Z_S),
//                         bound = m_hat R (R: V's range over all keys)                                  [B,H,S]
//   fallback              rows that drop a key and whose bound > budget, in any batch and head: NonZero,
//                         Gather, dense attention over the baseline's keys (scores as (K qfᵀ)ᵀ: no transpose
//                         of all of K, so no row costs almost nothing; an additive 0 / -inf mask shared by
//                         the heads), ScatterElements back over the banded output.
// A lengths input (kvLength: keys at or past kvLength[b] are padding) caps the counted keys per batch
// ([B, 1, S, nKB]) and masks the fallback rows; the summaries and R may include padding keys (only looser).
// Float32 rounding: log B is widened per row by 1e-4 (|scale| ||q|| K* + 1) (K*: the largest ||max(|Kmin|, |Kmax|)||
// or ||C|| + r over the blocks, so at least every |U| of the row: more than the rounding of a dot product of
// length D < 1000), with a key bias also by 1e-4 (|largest term| + |largest kept score|) (the terms that carry
// the sums, whose bias is at most that plus |U| in size), and the bound by 1e-3 relative, so rounding in the
// summaries, the bias and the scores cannot turn a row over the budget into a kept one.

import {
  type AttentionParams,
  type AttentionSpec,
  attentionParams,
  hasRuntimeHeadDim,
  intersect,
  isDataDependent,
  isLowRank,
  type KeySupport,
  keySupport,
  type MaskSpec,
  type Node,
  printSpec,
  rowKeys,
  sinks,
  slidingWindow,
  union,
  type Value,
} from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';
import { type BandedInputs, bandedAttentionParts } from './banded.js';
import { GUARDED_OPSET, reduceAt, type ReduceOp } from './guarded-ops.js';
import { droppedKeyBiasMax } from './guarded-key-bias.js';
import { keyBiasBlocker } from './key-bias.js';
import { specMask } from './mask.js';
import { SPARSIFY_DECISION } from '../sparsify/pass.js';
import { HEAD_GROUP, type HeadGroupAnnotation } from '../sparsify/split-heads.js';

export { GUARDED_OPSET } from './guarded-ops.js';

/** Slack on the score bound and on the output bound against float32 rounding (see the comment at the top). */
const SCORE_SLACK = 1e-4;
const BOUND_SLACK = 1e-3;

/**
 * The causal offset kind of a baseline: dense, or causal with its alignment. A guarded site has no past keys
 * (guardedInputsBlocker), so the `past` alignment (query i at i + past) is top-left there.
 */
function baselineShape(spec: AttentionSpec): 'dense' | 'top-left' | 'bottom-right' | undefined {
  if (spec.kind === 'dense') return 'dense';
  if (spec.kind === 'causal') return spec.align === 'bottom-right' ? 'bottom-right' : 'top-left';
  return undefined;
}

/**
 * Whether `spec` keeps exactly baseline ∩ (band ∪ sinks) on every query: the row key sets compared on two
 * shapes (nq = nk and nq < nk) long enough to hold the band and the sinks away from the ends.
 */
function keepsBandAndSinks(spec: MaskSpec, baseline: MaskSpec, s: KeySupport, align: 'top-left' | 'bottom-right'): boolean {
  const E = s.extra.length;
  const band = slidingWindow(-s.lo, s.hi, align);
  const expected = intersect(baseline, E > 0 ? union(band, sinks(E)) : band) as MaskSpec;
  const n = Math.max(64, 2 * (s.hi - s.lo) + 2 * E + 16);
  for (const [nq, nk] of [
    [n, n],
    [n - 5, n],
  ] as const) {
    const dims = { nq, nk, past: 0 };
    for (let i = 0; i < nq; i++) {
      const got = rowKeys(spec, i, dims);
      const want = rowKeys(expected, i, dims);
      if (got.length !== want.length || got.some((x, t) => x !== want[t])) return false;
    }
  }
  return true;
}

const checked = new Map<string, string | undefined>();

/**
 * Why `spec` has no guarded banded form over `baseline`, or undefined when it has: the baseline dense or causal,
 * the spec baseline ∩ (a band around the query ∪ leading sinks), one alignment. Pure and cached by the specs' text.
 */
export function guardableSpec(spec: AttentionSpec, baseline: AttentionSpec): string | undefined {
  const key = `${printSpec(spec)} | ${printSpec(baseline)}`;
  if (!checked.has(key)) checked.set(key, guardableUncached(spec, baseline));
  return checked.get(key);
}

function guardableUncached(spec: AttentionSpec, baseline: AttentionSpec): string | undefined {
  const base = baselineShape(baseline);
  if (base === undefined) return `not lowered guarded yet: the baseline ${baseline.kind} (dense and causal are)`;
  if (isLowRank(spec) || isDataDependent(spec)) return `no guarded form of ${spec.kind} yet (dense/causal ∩ window ∪ sinks only)`;
  const support = keySupport(spec as MaskSpec);
  if (!support || !(support.lo <= support.hi) || !Number.isFinite(support.lo) || !Number.isFinite(support.hi)) {
    return 'not lowered guarded yet: the spec is not a window with sinks (no finite band)';
  }
  if (support.globalQueries.length > 0) return 'not lowered guarded yet: global queries';
  if (support.extra.some((e, k) => e !== k)) return 'not lowered guarded yet: extra keys other than leading sinks';
  // without past keys (guardedInputsBlocker) the past alignment is top-left
  const aligns = new Set(support.aligns.map((a) => (a === 'past' ? 'top-left' : a)));
  if (aligns.size > 1) return 'not lowered guarded yet: mixed alignments';
  const align = ([...aligns][0] ?? 'top-left') as 'top-left' | 'bottom-right';
  if (base !== 'dense' && base !== align) return 'not lowered guarded yet: the band and the causal baseline align differently';
  if (!keepsBandAndSinks(spec as MaskSpec, baseline as MaskSpec, support, align)) {
    return 'not lowered guarded yet: the spec keeps other keys than baseline ∩ (band ∪ sinks)';
  }
  return undefined;
}

/**
 * Why a site's inputs keep it from a guarded form (an n x n bias, past keys, scores output, kvLength with the past
 * alignment), or undefined. A kvLength input (keys at or past kvLength[b] are padding) is taken: the padding keys
 * are left out of the dropped counts and masked in the fallback rows (the summaries may include them: only looser).
 * A key bias (key-bias.ts) is taken: its largest value over the keys a row drops in a block joins the score bound.
 */
export function guardedInputsBlocker(node: Node): string | undefined {
  const p = attentionParams(node);
  const [, , , bias, pastKey, , kvLength] = node.inputs;
  if (hasRuntimeHeadDim(p)) return 'the guarded form needs a static head size';
  if (pastKey !== undefined) return 'not lowered guarded yet: a past keys input';
  if (bias !== undefined && keyBiasBlocker(node) !== undefined) return `not lowered guarded yet: ${keyBiasBlocker(node)!}`;
  if (kvLength !== undefined && keySupport(p.spec as MaskSpec)?.aligns.includes('past')) return 'not lowered guarded yet: kvLength with the past alignment';
  if (p.scoresMode !== undefined) return 'not lowered guarded yet: a scores output';
  return undefined;
}

/** Why the guarded banded form does not apply to `node`, or undefined when it does. */
export function guardedBlocker(node: Node, opset: number): string | undefined {
  const p = attentionParams(node);
  if (!p.guard) return 'the site has no guard';
  if (opset < GUARDED_OPSET) return `the guarded form needs opset ${GUARDED_OPSET}, got ${opset}`;
  return guardedInputsBlocker(node) ?? guardableSpec(p.spec, p.guard.baseline);
}

export interface GuardedInputs extends BandedInputs {
  readonly params: AttentionParams;
  /** The site (and head group) the node implements, from guardedSiteLabel: names the fallback flags. */
  readonly site?: string;
  /** The default-domain opset the nodes are written for (GUARDED_OPSET or above). */
  readonly opset: number;
}

/** The last part of the name of a guarded site's fallback flags [B, H, S] (bool: the row was recomputed densely). */
export const GUARD_FALLBACK_VALUE = 'guard_falls_back';

/** The site label a guarded lowering wrote into its fallback flags' name `<node>/guard_falls_back.<label>`, if any. */
export function guardFallbackLabel(valueName: string): string | undefined {
  const m = /\/guard_falls_back\.([^/]+)$/.exec(valueName);
  return m?.[1];
}

/**
 * The site a lowered node implements, as the sparsify pass annotated it: `site<k>`, or `site<k>.heads<a>-<b>` for
 * a head group; undefined for a node no sparsify decision reached.
 */
export function guardedSiteLabel(node: Node): string | undefined {
  const group = node.annotations.get(HEAD_GROUP) as HeadGroupAnnotation | undefined;
  const decision = node.annotations.get(SPARSIFY_DECISION) as { readonly id?: string } | undefined;
  const site = group?.site ?? decision?.id;
  if (site === undefined) return undefined;
  const heads = group?.heads ?? [];
  return heads.length > 0 ? `${site}.heads${heads[0]}-${heads[heads.length - 1]}` : site;
}

/** The guarded banded output [B, H, S, Dv] (see the comment at the top). Call only where guardedBlocker allows. */
export function guardedBandedAttention(b: NodeBuilder, x: GuardedInputs): Value {
  const p = x.params;
  const guard = p.guard!;
  const kb = guard.blockSize;
  const s = x.support;
  const E = s.extra.length;
  const D = x.headDim;
  const axis = (a: number) => ({ axis: { type: 'int', value: BigInt(a) } }) as const;
  const i64 = (n: number, what: string) => b.scalar(what, 'i64', n);
  const f32 = (n: number, what: string) => b.scalar(what, 'f32', n);
  const toF32 = (t: Value, what: string) => (x.dtype === 'f32' ? t : b.cast(t, 'f32', what));
  const reduce = (op: ReduceOp, t: Value, axes: number[], what: string, keep = false) => reduceAt(b, x.opset, op, t, axes, what, keep);

  const { y, logits, probs, offset } = bandedAttentionParts(b, x);

  // sequence lengths
  const dim = (t: Value, k: number, what: string) => b.op('Gather', [b.op('Shape', [t], `${what}_shape`), i64(k, `${what}_axis`)], what, axis(0));
  const S = dim(x.q, 2, 'guard_nq');
  const T = dim(x.k, 2, 'guard_nk');
  const nKB = b.op('Div', [b.op('Add', [T, i64(kb - 1, 'guard_round')], 'guard_nk_up'), i64(kb, 'guard_block')], 'guard_blocks');

  // key block summaries: pad the keys to whole blocks by repeating the last one (min, max and radius unchanged)
  const k32 = toF32(x.k, 'guard_k_f32');
  const padT = b.op('Sub', [b.op('Mul', [nKB, i64(kb, 'guard_block2')], 'guard_nk_padded'), T], 'guard_pad');
  const pads = b.op('Concat', [b.ints('guard_pads_head', [0, 0, 0, 0, 0, 0]), b.reshape(padT, [1], 'guard_pad_1'), b.ints('guard_pads_tail', [0])], 'guard_pads', axis(0));
  const kBlocks = b.reshape(b.op('Pad', [k32, pads], 'guard_k_padded', { mode: { type: 'string', value: 'edge' } }), [0, 0, -1, kb, D], 'guard_k_blocks');
  const kmin = reduce('ReduceMin', kBlocks, [3], 'guard_kmin');
  const kmax = reduce('ReduceMax', kBlocks, [3], 'guard_kmax');
  const center = b.op('Mul', [b.op('Add', [kmax, kmin], 'guard_box_sum'), f32(0.5, 'guard_half')], 'guard_box_center_raw');
  const diff = b.op('Sub', [kBlocks, b.reshape(center, [0, 0, 0, 1, -1], 'guard_box_center_rows')], 'guard_k_minus_center');
  const radius = b.op('Sqrt', [reduce('ReduceMax', reduce('ReduceSum', b.op('Mul', [diff, diff], 'guard_sq'), [4], 'guard_dist2'), [3], 'guard_r2')], 'guard_radius');
  const tr = (t: Value, what: string) => b.transpose(t, [0, 1, 3, 2], what);

  // the score bound per row and key block; |scale| applied to the block summaries (not to [S, nKB] per head)
  const absScale = f32(Math.abs(p.scale), 'guard_scale');
  const scaled = (t: Value, what: string) => b.op('Mul', [t, absScale], what);
  const q32 = toF32(x.q, 'guard_q_f32');
  const qs = p.scale >= 0 ? q32 : b.op('Neg', [q32], 'guard_q_neg_scale');
  const boxCenter = scaled(center, 'guard_box_center');
  const boxHalf = scaled(b.op('Mul', [b.op('Sub', [kmax, kmin], 'guard_box_width'), f32(0.5, 'guard_half2')], 'guard_box_half_raw'), 'guard_box_half');
  // both bounds around the box centre c: Quest = q.c + |q|.half, ball = q.c + ||q|| r; q.c computed once
  const qc = b.op('MatMul', [qs, tr(boxCenter, 'guard_box_center_t')], 'guard_q_center');
  const questWidth = b.op('MatMul', [b.op('Abs', [qs], 'guard_q_abs'), tr(boxHalf, 'guard_box_half_t')], 'guard_quest_width');
  const qNorm = b.op('Sqrt', [reduce('ReduceSum', b.op('Mul', [qs, qs], 'guard_q_sq'), [3], 'guard_q_norm2', true)], 'guard_q_norm');
  const radiusScaled = scaled(radius, 'guard_radius_scaled');
  const ballWidth = b.op('Mul', [qNorm, b.reshape(radiusScaled, [0, 0, 1, -1], 'guard_radius_row')], 'guard_q_radius');
  let u = b.op('Add', [qc, b.op('Min', [questWidth, ballWidth], 'guard_width')], 'guard_dot_bound');
  if (p.softcap > 0) {
    const c = f32(p.softcap, 'guard_softcap');
    u = b.op('Mul', [b.op('Tanh', [b.op('Div', [u, c], 'guard_softcap_div')], 'guard_softcap_tanh'), c], 'guard_softcapped_bound');
  }
  // the per-row rounding slack: K* bounds ||k|| for every dot product the row's U took, |scale| already applied
  const norm = (t: Value, what: string) => b.op('Sqrt', [reduce('ReduceSum', b.op('Mul', [t, t], `${what}_sq`), [3], `${what}_2`)], what);
  const kAbs = b.op('Max', [b.op('Abs', [kmin], 'guard_kmin_abs'), b.op('Abs', [kmax], 'guard_kmax_abs')], 'guard_k_abs');
  const kStar = reduce(
    'ReduceMax',
    b.op('Max', [norm(scaled(kAbs, 'guard_k_abs_scaled'), 'guard_k_abs_norm'), b.op('Add', [norm(boxCenter, 'guard_center_norm'), radiusScaled], 'guard_ball_reach')], 'guard_block_reach'),
    [2],
    'guard_k_star',
    true,
  );
  const softcapSlack = p.softcap > 0 ? 1e-5 * p.softcap : 0;
  const rowSlack = b.op(
    'Add',
    [b.op('Mul', [b.op('Add', [b.op('Mul', [b.reshape(qNorm, [0, 0, -1], 'guard_q_norm_row'), kStar], 'guard_q_reach'), f32(1, 'guard_one_f')], 'guard_q_reach1'), f32(SCORE_SLACK, 'guard_score_slack')], 'guard_row_slack_raw'), f32(softcapSlack, 'guard_softcap_slack')],
    'guard_row_slack',
  );

  // dropped keys per row and block, in float32 (exact for integers below 2^24; onnxruntime's float kernels are
  // vectorized, its int64 broadcasts are not): the baseline keys of row i (below upper(i): causal limit, T,
  // kvLength) are the sinks [0, E), the band [bandLo(i), bandHi(i)), and dropped: [E, bandLo(i)) and
  // [max(bandHi(i), E), upper(i)) (empty when the baseline is causal and the band reaches the diagonal), per block
  //   dropped[i, blk] = |blk ∩ [E, min(bandLo(i), upper(i)))| + |blk ∩ [max(bandHi(i), E), upper(i))|
  const bottomRight = b.op('Sub', [T, S], 'guard_bottom_right');
  const float = (t: Value, what: string) => b.cast(t, 'f32', what);
  const Tf = float(T, 'guard_nk_f');
  const rows = b.reshape(float(b.op('Range', [i64(0, 'guard_r0'), S, i64(1, 'guard_r1')], 'guard_rows_1d'), 'guard_rows_f'), [-1, 1], 'guard_rows');
  const blockLo = b.reshape(b.op('Mul', [float(b.op('Range', [i64(0, 'guard_r2'), nKB, i64(1, 'guard_r3')], 'guard_block_index'), 'guard_block_index_f'), f32(kb, 'guard_block3')], 'guard_block_lo_1d'), [1, -1], 'guard_block_lo');
  const blockHi = b.op('Min', [b.op('Add', [blockLo, f32(kb, 'guard_block4')], 'guard_block_end'), Tf], 'guard_block_hi');
  const base = baselineShape(guard.baseline)!;
  const causalUpper =
    base === 'dense'
      ? Tf
      : b.op('Min', [Tf, b.op('Add', [rows, base === 'bottom-right' ? b.op('Add', [float(bottomRight, 'guard_bottom_right_f'), f32(1, 'guard_one')], 'guard_causal_end') : f32(1, 'guard_one2')], 'guard_causal_limit')], 'guard_upper_causal');
  // padding keys (at or past kvLength[b]) are no baseline keys: per batch [B, 1, S, 1]
  const upper = x.kvLength ? b.op('Min', [causalUpper, b.reshape(float(x.kvLength, 'guard_kv_length_f'), [-1, 1, 1, 1], 'guard_kv_length_4d')], 'guard_upper') : causalUpper;
  const zeroF = f32(0, 'guard_zero_count');
  const size = (lo: Value, hi: Value, what: string) => b.op('Max', [b.op('Sub', [hi, lo], `${what}_diff`), zeroF], what);
  const pos = b.op('Add', [rows, float(offset, 'guard_offset_f')], 'guard_band_pos');
  const bandLo = b.op('Add', [pos, f32(s.lo, 'guard_band_lo_off')], 'guard_band_lo');
  const bandHi = b.op('Add', [pos, f32(s.hi + 1, 'guard_band_hi_off')], 'guard_band_hi');
  const sinksF = f32(E, 'guard_sinks');
  const before = size(b.op('Max', [blockLo, sinksF], 'guard_before_start'), b.op('Min', [blockHi, b.op('Min', [bandLo, upper], 'guard_before_limit')], 'guard_before_end'), 'guard_count_before');
  const bandReachesUpper = base !== 'dense' && s.hi >= 0;
  const dropped = bandReachesUpper
    ? before
    : b.op('Add', [before, size(b.op('Max', [blockLo, b.op('Max', [bandHi, sinksF], 'guard_after_limit')], 'guard_after_start'), b.op('Min', [blockHi, upper], 'guard_after_end'), 'guard_count_after')], 'guard_count_dropped');
  // the row keeps a key: a sink below upper, or the band [max(bandLo, 0), min(bandHi, upper)) not empty
  const bandKept = b.op('Sub', [b.op('Min', [bandHi, upper], 'guard_kept_end'), b.op('Max', [bandLo, zeroF], 'guard_kept_start')], 'guard_kept_band');
  const keepsSomeCol = b.op('Greater', [E > 0 ? b.op('Max', [bandKept, b.op('Min', [upper, sinksF], 'guard_kept_sinks')], 'guard_kept_any') : bandKept, zeroF], 'guard_keeps_some_col');
  const keepsSome = b.reshape(keepsSomeCol, x.kvLength ? [0, 0, -1] : [-1], 'guard_keeps_some');
  // log count: log 0 = -inf leaves a block out; a row with no dropped key gets NaN here and never falls back
  const logCount = b.op('Log', [dropped], 'guard_log_count');
  // log-sum-exp over the blocks as ReduceMax, Exp, ReduceSum, Log (onnxruntime's Exp is vectorized, its
  // ReduceLogSumExp is not)
  const bounded = x.keyBias
    ? b.op(
        'Add',
        [
          u,
          droppedKeyBiasMax(b, {
            keyBias: toF32(x.keyBias, 'guard_key_bias_f32'),
            blockSize: kb,
            padT,
            keys: Tf,
            parts: [
              { lo: b.op('Max', [blockLo, sinksF], 'guard_bias_before_lo'), hi: b.op('Min', [blockHi, b.op('Min', [bandLo, causalUpper], 'guard_bias_before_limit')], 'guard_bias_before_hi') },
              ...(bandReachesUpper ? [] : [{ lo: b.op('Max', [blockLo, b.op('Max', [bandHi, sinksF], 'guard_bias_after_limit')], 'guard_bias_after_lo'), hi: b.op('Min', [blockHi, causalUpper], 'guard_bias_after_hi') }]),
            ],
          }),
        ],
        'guard_biased_bound',
      )
    : u;
  const terms = b.op('Add', [bounded, logCount], 'guard_log_terms');
  const termsMax = reduce('ReduceMax', terms, [3], 'guard_terms_max', true);
  const sumExp = reduce('ReduceSum', b.op('Exp', [b.op('Sub', [terms, termsMax], 'guard_terms_shifted')], 'guard_terms_exp'), [3], 'guard_terms_sum');
  const logBRaw = b.op('Add', [b.op('Log', [sumExp], 'guard_terms_log'), b.reshape(termsMax, [0, 0, -1], 'guard_terms_max_row')], 'guard_log_b_raw');

  // log Z_S = the largest kept score - log of its probability (the softmax the banded form computed gives it
  // without a second exponential pass); -inf on rows that keep no key (their empty-row key column is 0 there)
  const rowsOf = (t: Value, what: string) =>
    b.op('Slice', [b.reshape(t, [0, 0, -1], `${what}_padded`), b.ints(`${what}_start`, [0]), b.reshape(S, [1], `${what}_end`), b.ints(`${what}_axis`, [2])], what);
  const maxLogit = rowsOf(reduce('ReduceMax', toF32(logits, 'guard_logits_f32'), [4], 'guard_max_logit_blocks'), 'guard_max_logit');
  // with a key bias, the rounding of the biased terms: 1e-4 (|largest term| + |largest kept score|), infinities as 0
  const finiteAbs = (t: Value, what: string) => b.op('Where', [b.op('IsInf', [t], `${what}_inf`), zeroF, b.op('Abs', [t], `${what}_abs`)], what);
  const biasSlack = x.keyBias
    ? b.op('Mul', [b.op('Add', [finiteAbs(b.reshape(termsMax, [0, 0, -1], 'guard_terms_max_rows'), 'guard_terms_reach'), finiteAbs(maxLogit, 'guard_logit_reach')], 'guard_bias_reach'), f32(SCORE_SLACK, 'guard_bias_slack_rate')], 'guard_bias_slack')
    : undefined;
  const logB = b.op('Add', [logBRaw, biasSlack ? b.op('Add', [rowSlack, biasSlack], 'guard_row_slack_biased') : rowSlack], 'guard_log_b');
  const maxProb = rowsOf(reduce('ReduceMax', toF32(probs, 'guard_probs_f32'), [4], 'guard_max_prob_blocks'), 'guard_max_prob');
  const logZKept = b.op('Sub', [maxLogit, b.op('Log', [maxProb], 'guard_log_max_prob')], 'guard_log_z_kept');
  const logZ = b.op('Where', [keepsSome, logZKept, f32(-Infinity, 'guard_minus_inf')], 'guard_log_z');

  // the output bound m_hat R per row, and the rows over the budget (NaN counts as over)
  const v32 = toF32(x.v, 'guard_v_f32');
  const range = reduce('ReduceMax', b.op('Sub', [reduce('ReduceMax', v32, [2], 'guard_v_max', true), reduce('ReduceMin', v32, [2], 'guard_v_min', true)], 'guard_v_range_c'), [2, 3], 'guard_v_range');
  const mHat = b.op('Sigmoid', [b.op('Sub', [logB, logZ], 'guard_log_ratio')], 'guard_m_hat');
  const bound = b.op('Mul', [b.op('Mul', [mHat, b.reshape(range, [0, 0, 1], 'guard_range_row')], 'guard_bound_raw'), f32(1 + BOUND_SLACK, 'guard_bound_slack')], 'guard_bound');
  const within = b.op('Not', [b.op('Greater', [bound, f32(guard.budget, 'guard_budget')], 'guard_over')], 'guard_not_over');
  const ok = b.op('And', [within, b.op('Not', [b.op('IsNaN', [bound], 'guard_nan')], 'guard_finite')], 'guard_ok');
  // a row that drops no key is exact (m = 0): it never falls back, so every fallback row keeps a baseline key
  const dropsSome = b.op('Greater', [reduce('ReduceSum', dropped, [-1], 'guard_dropped_total'), zeroF], 'guard_drops_some');
  // named for the site (a verify-only copy of the model reads it as an output: the run-time fallback rate)
  const fallsBack = b.op('And', [b.op('Not', [ok], 'guard_over_or_nan'), dropsSome], x.site !== undefined ? `${GUARD_FALLBACK_VALUE}.${x.site}` : GUARD_FALLBACK_VALUE);
  const anyHead = reduce('ReduceMax', b.cast(fallsBack, 'f32', 'guard_falls_back_f'), [0, 1], 'guard_falls_back_rows');

  // the fallback rows, dense over the baseline's keys, scattered over the banded output
  const idx = b.reshape(b.op('NonZero', [anyHead], 'guard_fallback_nz'), [-1], 'guard_fallback_rows');
  const qf = b.op('Gather', [x.q, idx], 'guard_q_rows', axis(2));
  // scores as (K qfᵀ)ᵀ: every transpose is of F rows, none of all of K (nothing when no row falls back)
  const qkT = b.op('MatMul', [x.k, b.transpose(qf, [0, 1, 3, 2], 'guard_q_rows_t')], 'guard_qk_t');
  const qk = b.transpose(qkT, [0, 1, 3, 2], 'guard_qk');
  const cols = b.op('Range', [i64(0, 'guard_r6'), T, i64(1, 'guard_r7')], 'guard_key_index');
  const baseKeep = specMask(b, guard.baseline as MaskSpec, { rows: b.reshape(idx, [-1, 1], 'guard_fallback_col'), cols, bottomRight });
  const notPadding = x.kvLength ? b.op('Less', [cols, b.reshape(x.kvLength, [-1, 1, 1, 1], 'guard_fallback_kv_length')], 'guard_fallback_not_padding') : undefined;
  const keep = baseKeep && notPadding ? b.op('And', [baseKeep, notPadding], 'guard_fallback_keep') : (baseKeep ?? notPadding);
  const fallbackScores = x.keyBias ? b.op('Add', [x.score(qk, 'guard_scores'), x.keyBias], 'guard_scores_key_bias') : x.score(qk, 'guard_scores');
  const yf = b.op('MatMul', [fallbackSoftmax(b, x, fallbackScores, keep), x.v], 'guard_y_rows');
  const at = b.op('Expand', [b.reshape(idx, [1, 1, -1, 1], 'guard_fallback_4d'), b.op('Shape', [yf], 'guard_y_rows_shape')], 'guard_scatter_index');
  return b.op('ScatterElements', [y, at, yf], 'guard_y', axis(2));
}

/**
 * The fallback rows' softmax over the baseline's keys: the mask as an additive 0 / -inf bias [F, T] (per batch
 * [B, 1, F, T] with kvLength) shared by the heads, cheaper than a Where over [B, H, F, T]. Each fallback row drops a
 * key, so it keeps one: no row is fully masked, except in another batch whose kvLength leaves it no key, or where a
 * key bias is -inf on every baseline key (then NaN -> 0, the ONNX Attention convention, only with kvLength or a key
 * bias).
 */
function fallbackSoftmax(b: NodeBuilder, x: GuardedInputs, scores: Value, keep: Value | undefined): Value {
  const sm = x.softmaxType ?? x.dtype;
  const logits = sm !== x.dtype ? b.cast(scores, sm, 'guard_fallback_logits_cast') : scores;
  const biased = keep ? b.op('Add', [logits, b.op('Where', [keep, b.scalar('guard_fallback_keep_0', sm, 0), b.scalar('guard_fallback_minus_inf', sm, -Infinity)], 'guard_fallback_bias')], 'guard_fallback_logits') : logits;
  let probs = b.op('Softmax', [biased], 'guard_fallback_softmax', { axis: { type: 'int', value: -1n } });
  if (x.kvLength || x.keyBias) probs = b.op('Where', [b.op('IsNaN', [probs], 'guard_fallback_isnan'), b.scalar('guard_fallback_zero_prob', sm, 0), probs], 'guard_fallback_probs');
  return sm !== x.dtype ? b.cast(probs, x.dtype, 'guard_fallback_probs_cast') : probs;
}
