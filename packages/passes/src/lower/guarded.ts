// Guarded banded lowering (BOUNDS.md (b')) over a dense, causal or window baseline: the banded sparse form, a per-row certificate of the mass it drops,
// and the rows whose certificate exceeds the budget recomputed densely; standard ONNX ops (opset 13+, the
// reductions written per opset by guarded-ops.ts), no n x n tensor. The key block summaries, the score bound U,
// the certificate and the fallback rows are guarded-certificate.ts's (shared with the guarded block-gathered form);
// this file adds what is banded:
//
//   key bias              a bias constant along the query axis (key-bias.ts: ALiBi as slope · j, a padding
//                         mask): its largest value over the keys each row drops in each block
//                         (guarded-key-bias.ts), added to U                                         [Bb,Hb,S,nKB]
//   dropped keys          count[i, blk] = |blk ∩ baseline(i)| - |blk ∩ baseline(i) ∩ (band(i) ∪ sinks)|  [S,nKB]
//   log Z_S               the largest kept score and its probability per row from the banded softmax; rows that
//                         keep no key fall back when they drop one
// A lengths input (kvLength: keys at or past kvLength[b] are padding) caps the counted keys per batch
// ([B, 1, S, nKB]) and masks the fallback rows; the summaries and R include padding keys, copies of a valid key (padding.ts).
// Past keys (a KV cache input): the keys are past ⊕ new, query i sits at P + i under the past / bottom-right
// alignment (band, causal limit, global queries), the summaries, counts and R cover all of them, and the fallback
// rows attend densely over past ⊕ new (guarded-past.ts).

import {
  type AttentionSpec,
  attentionParams,
  blockGathered,
  hasRuntimeHeadDim,
  intervals,
  isDataDependent,
  isLowRank,
  type KeySupport,
  keySupport,
  type MaskSpec,
  type Node,
  printSpec,
  rowKeys,
  Tensor,
  type Value,
} from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';
import { type BandedInputs, bandedAttentionParts } from './banded.js';
import { type GuardedSite, guardedCertificate, guardedScoreBound, guardOps } from './guarded-certificate.js';
import { guardableBlocksSpec, guardedBlocksBlocker, isBlockGathered } from './guarded-blocks.js';
import { GUARDED_OPSET } from './guarded-ops.js';
import { droppedKeyBiasMax } from './guarded-key-bias.js';
import { keyBiasBlocker } from './key-bias.js';
import { relativeBiasOf } from './relative-bias.js';
import { guardedPastKeysBlocker, withPastBaseline } from './guarded-past.js';
import { SPARSIFY_DECISION } from '../sparsify/pass.js';
import { HEAD_GROUP, type HeadGroupAnnotation } from '../sparsify/split-heads.js';

export { GUARDED_OPSET } from './guarded-ops.js';
export { GUARD_FALLBACK_VALUE } from './guarded-certificate.js';

/** The causal offset kind of a baseline: dense, or causal or a window with its alignment. */
function baselineShape(spec: AttentionSpec): 'dense' | 'top-left' | 'bottom-right' | 'past' | undefined {
  if (spec.kind === 'dense') return 'dense';
  if (spec.kind === 'causal' || spec.kind === 'window') return spec.align;
  return undefined;
}

/**
 * The keys [p - left, p + right] a baseline keeps around the query's aligned position p: causal (-inf, 0], a
 * window (a proven sliding window: Mistral's, Gemma's local layers) its own; undefined for a dense baseline.
 */
function baselineReach(spec: AttentionSpec): { readonly left: number; readonly right: number } | undefined {
  if (spec.kind === 'causal') return { left: Infinity, right: 0 };
  if (spec.kind === 'window') return { left: spec.left, right: spec.right };
  return undefined;
}

/**
 * The alignment a row key set has once `past` is read as its offset 0 (the shapes guardableSpec compares have no
 * past keys). On a site with past keys P, `past` and `bottom-right` both put query i at P + i (the present keys are
 * past ⊕ new, T = P + S) and `top-left` at i: guardedInputsBlocker checks the spec and the baseline agree there.
 */
const structuralAlign = (a: string): 'top-left' | 'bottom-right' => (a === 'bottom-right' ? 'bottom-right' : 'top-left');

/**
 * Whether `spec` keeps exactly baseline ∩ (band ∪ extra keys) on every query, and all of the baseline's keys on a
 * global query: the row key sets compared on two shapes (nq = nk and nq < nk) long enough to hold the band, the
 * extra keys and the global queries away from the ends.
 */
function keepsBandExtrasGlobal(spec: MaskSpec, baseline: MaskSpec, s: KeySupport, align: 'top-left' | 'bottom-right'): boolean {
  const reach = Math.max(0, ...s.extra.map((e) => e + 1), ...s.globalQueries.map((g) => g + 1));
  const n = Math.max(64, 2 * (s.hi - s.lo) + 2 * reach + 16);
  const extra = intervals.fromPoints(s.extra);
  const global = new Set(s.globalQueries);
  for (const [nq, nk] of [
    [n, n],
    [n - 5, n],
  ] as const) {
    const dims = { nq, nk, past: 0 };
    const offset = align === 'bottom-right' ? nk - nq : 0;
    for (let i = 0; i < nq; i++) {
      const p = i + offset;
      const got = rowKeys(spec, i, dims);
      const base = rowKeys(baseline, i, dims);
      const want = global.has(p) ? base : intervals.intersectSets(base, intervals.unionSets(intervals.range(p + s.lo, p + s.hi + 1, nk), extra));
      if (got.length !== want.length || got.some((x, t) => x !== want[t])) return false;
    }
  }
  return true;
}

const checked = new Map<string, string | undefined>();

/**
 * Why `spec` has no guarded form over `baseline`, or undefined when it has. Banded: the baseline dense or causal,
 * the spec baseline ∩ (a band around the query ∪ fixed extra keys: sinks, global tokens), global queries seeing
 * the whole baseline, one alignment. Block-gathered (blocks, topkBlocks, alone or cut by a causal mask):
 * over a dense baseline, or over that causal one (guarded-blocks.ts). Pure and cached by the specs' text.
 */
export function guardableSpec(spec: AttentionSpec, baseline: AttentionSpec): string | undefined {
  const key = `${printSpec(spec)} | ${printSpec(baseline)}`;
  if (!checked.has(key)) checked.set(key, guardableUncached(spec, baseline));
  return checked.get(key);
}

function guardableUncached(spec: AttentionSpec, baseline: AttentionSpec): string | undefined {
  if (isBlockGathered(spec)) return guardableBlocksSpec(spec, baseline);
  const base = baselineShape(baseline);
  if (base === undefined) return `not lowered guarded yet: the baseline ${baseline.kind} (dense, causal and windows are)`;
  if (isLowRank(spec) || isDataDependent(spec)) return `no guarded form of ${printSpec(spec)} yet (dense/causal ∩ window ∪ sinks, and blocks / top-k blocks over a dense baseline or cut by the causal baseline)`;
  const support = keySupport(spec as MaskSpec);
  if (!support || !(support.lo <= support.hi) || !Number.isFinite(support.lo) || !Number.isFinite(support.hi)) {
    return 'not lowered guarded yet: the spec is not a window with sinks (no finite band)';
  }
  // compared without past keys (past = 0: top-left); with past keys guardedInputsBlocker checks the offsets agree
  const aligns = new Set(support.aligns.map(structuralAlign));
  if (aligns.size > 1) return 'not lowered guarded yet: mixed alignments';
  const align = [...aligns][0] ?? 'top-left';
  if (base !== 'dense' && structuralAlign(base) !== align) return 'not lowered guarded yet: the band and the causal baseline align differently';
  // over a window baseline a row's dropped keys start at the window's edge: sinks are counted from there, other
  // extra keys (global tokens, counted out per block) and global queries are not written for it
  if (baseline.kind === 'window' && (support.globalQueries.length > 0 || !support.extra.every((e, k) => e === k))) {
    return 'not lowered guarded yet: global tokens over a window baseline';
  }
  if (!keepsBandExtrasGlobal(spec as MaskSpec, baseline as MaskSpec, support, align)) {
    return 'not lowered guarded yet: the spec keeps other keys than baseline ∩ (band ∪ sinks / global tokens)';
  }
  return undefined;
}

/**
 * Why a site's inputs keep it from a guarded form (an n x n bias, scores output, kvLength with the past alignment
 * and no past keys, past keys with a form other than banded), or undefined. A kvLength input (keys at or past
 * kvLength[b] are padding) is taken: the padding keys are left out of the dropped counts and masked in the fallback
 * rows (the summaries may include them: only looser). A key bias (key-bias.ts) is taken: its largest value over the
 * keys a row drops in a block joins the score bound. Past keys are taken by the banded form (guarded-past.ts).
 */
export function guardedInputsBlocker(node: Node): string | undefined {
  const p = attentionParams(node);
  const [, , , bias, pastKey, , kvLength] = node.inputs;
  if (hasRuntimeHeadDim(p)) return 'the guarded form needs a static head size';
  if (pastKey !== undefined) {
    const why = guardedPastKeysBlocker(p.spec, p.guard?.baseline);
    if (why !== undefined) return why;
  }
  if (bias !== undefined && keyBiasBlocker(node) !== undefined && relativeBiasOf(node) === undefined) return `not lowered guarded yet: ${keyBiasBlocker(node)!}`;
  if (pastKey === undefined && kvLength !== undefined && (keySupport(p.spec as MaskSpec)?.aligns.includes('past') || blockGathered(p.spec)?.causal?.align === 'past')) return 'not lowered guarded yet: kvLength with the past alignment and no past keys (the query offset kvLength - nq differs per batch)';
  if (p.scoresMode !== undefined) return 'not lowered guarded yet: a scores output';
  return undefined;
}

/**
 * Why the guarded form of `form` (a candidate over `baseline`) does not apply at a site with these inputs, beyond
 * guardableSpec: with past keys only banded forms whose band and causal baseline put the query at the same
 * position (guardedPastKeysBlocker). The chooser asks it per candidate.
 */
export function guardedFormInputsBlocker(node: Node, form: AttentionSpec, baseline: AttentionSpec): string | undefined {
  return node.inputs[4] === undefined ? undefined : guardedPastKeysBlocker(form, baseline);
}

/** Why the guarded form (banded or block-gathered) does not apply to `node`, or undefined when it does. */
export function guardedBlocker(node: Node, opset: number): string | undefined {
  const p = attentionParams(node);
  if (!p.guard) return 'the site has no guard';
  if (opset < GUARDED_OPSET) return `the guarded form needs opset ${GUARDED_OPSET}, got ${opset}`;
  if (isBlockGathered(p.spec) && relativeBiasOf(node) !== undefined) return 'not lowered guarded yet: a block-gathered form with a relative-position bias';
  return guardedInputsBlocker(node) ?? (isBlockGathered(p.spec) ? guardedBlocksBlocker(p.spec, p.guard) : guardableSpec(p.spec, p.guard.baseline));
}

export interface GuardedInputs extends BandedInputs, GuardedSite {}

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
export function guardedBandedAttention(b: NodeBuilder, site: GuardedInputs): Value {
  const x = withPastBaseline(site);
  const guard = x.params.guard!;
  const kb = guard.blockSize;
  const s = x.support;
  // leading sinks [0, E) are left out of the dropped intervals; other extra keys (global tokens) are counted out
  // of them per block below
  const leadingSinks = s.extra.every((e, k) => e === k);
  const E = leadingSinks ? s.extra.length : 0;
  const { f32, toF32, reduce } = guardOps(b, x);

  const { y, logits, probs, offset } = bandedAttentionParts(b, x);
  // the extra keys (sinks, global tokens) are never dropped: left out of the key block summaries
  const bound = guardedScoreBound(b, x, kb, s.extra);
  const { S, T, nKB, padT, bottomRight, u, zero: zeroF } = bound;

  // dropped keys per row and block, in float32 (exact for integers below 2^24; onnxruntime's float kernels are
  // vectorized, its int64 broadcasts are not): the baseline keys of row i (from lower(i): a window baseline's
  // first key, else 0; below upper(i): causal or window limit, T, kvLength) are the sinks [0, E) there, the band
  // [bandLo(i), bandHi(i)), and dropped: [F, bandLo(i)) and [max(bandHi(i), F), upper(i)) with F = max(E, lower(i))
  // (the second empty when the baseline's limit is within the band), per block
  //   dropped[i, blk] = |blk ∩ [F, min(bandLo(i), upper(i)))| + |blk ∩ [max(bandHi(i), F), upper(i))|
  const float = (t: Value, what: string) => b.cast(t, 'f32', what);
  const i64 = (n: number, what: string) => b.scalar(what, 'i64', n);
  const Tf = float(T, 'guard_nk_f');
  const rows = b.reshape(float(b.op('Range', [i64(0, 'guard_r0'), S, i64(1, 'guard_r1')], 'guard_rows_1d'), 'guard_rows_f'), [-1, 1], 'guard_rows');
  const blockLo = b.reshape(b.op('Mul', [float(b.op('Range', [i64(0, 'guard_r2'), nKB, i64(1, 'guard_r3')], 'guard_block_index'), 'guard_block_index_f'), f32(kb, 'guard_block3')], 'guard_block_lo_1d'), [1, -1], 'guard_block_lo');
  const blockHi = b.op('Min', [b.op('Add', [blockLo, f32(kb, 'guard_block4')], 'guard_block_end'), Tf], 'guard_block_hi');
  const base = baselineShape(guard.baseline)!;
  const reach = baselineReach(guard.baseline);
  // the causal limit: row i sees keys j <= i + offset + right (bottom-right: T - S; past: the past keys' length P;
  // right 0 when causal, a window baseline's own right reach)
  const causalOffset = base === 'bottom-right' ? bottomRight : base === 'past' ? x.past : undefined;
  const basePos = causalOffset ? b.op('Add', [rows, float(causalOffset, 'guard_causal_offset_f')], 'guard_base_pos') : rows;
  const causalUpper =
    reach === undefined ? Tf : b.op('Min', [Tf, b.op('Add', [basePos, f32(reach.right + 1, 'guard_base_right_end')], 'guard_causal_limit')], 'guard_upper_causal');
  // a window baseline's first key p - left: keys before it are no baseline keys of the row (sinks included)
  const baseLower = reach !== undefined && Number.isFinite(reach.left) ? b.op('Sub', [basePos, f32(reach.left, 'guard_base_left')], 'guard_base_lower') : undefined;
  // padding keys (at or past kvLength[b]) are no baseline keys: per batch [B, 1, S, 1]
  const upper = x.kvLength ? b.op('Min', [causalUpper, b.reshape(float(x.kvLength, 'guard_kv_length_f'), [-1, 1, 1, 1], 'guard_kv_length_4d')], 'guard_upper') : causalUpper;
  const size = (lo: Value, hi: Value, what: string) => b.op('Max', [b.op('Sub', [hi, lo], `${what}_diff`), zeroF], what);
  const pos = b.op('Add', [rows, float(offset, 'guard_offset_f')], 'guard_band_pos');
  const bandLo = b.op('Add', [pos, f32(s.lo, 'guard_band_lo_off')], 'guard_band_lo');
  const bandHi = b.op('Add', [pos, f32(s.hi + 1, 'guard_band_hi_off')], 'guard_band_hi');
  const sinksF = f32(E, 'guard_sinks');
  // the first key a row may drop: past the sinks, and not before a window baseline's first key
  const firstDroppable = baseLower ? b.op('Max', [sinksF, baseLower], 'guard_first_droppable') : sinksF;
  const before = size(b.op('Max', [blockLo, firstDroppable], 'guard_before_start'), b.op('Min', [blockHi, b.op('Min', [bandLo, upper], 'guard_before_limit')], 'guard_before_end'), 'guard_count_before');
  const bandReachesUpper = reach !== undefined && s.hi >= reach.right;
  const intervals = bandReachesUpper
    ? before
    : b.op('Add', [before, size(b.op('Max', [blockLo, b.op('Max', [bandHi, firstDroppable], 'guard_after_limit')], 'guard_after_start'), b.op('Min', [blockHi, upper], 'guard_after_end'), 'guard_count_after')], 'guard_count_dropped');
  // extra keys other than leading sinks (global tokens g) inside the dropped intervals are kept: per block
  //   dropped[i, blk] -= |{g in blk : g < min(bandLo(i), upper(i)) or bandHi(i) <= g < upper(i)}|
  // as MatMul of the rows' [S, G] indicator with the tokens' blocks [G, nKB]; a global query drops nothing
  let dropped = intervals;
  if (!leadingSinks) {
    const tokens = b.constant('guard_extra_keys', Tensor.fromValues('f32', [1, s.extra.length], s.extra));
    const inBefore = b.op('Less', [tokens, b.op('Min', [bandLo, upper], 'guard_extra_before_limit')], 'guard_extra_before');
    const inAfter = b.op('And', [b.op('Not', [b.op('Less', [tokens, bandHi], 'guard_extra_in_band')], 'guard_extra_past_band'), b.op('Less', [tokens, upper], 'guard_extra_below_upper')], 'guard_extra_after');
    const droppedTokens = b.cast(b.op('Or', [inBefore, inAfter], 'guard_extra_dropped'), 'f32', 'guard_extra_dropped_f');
    const blockOf = b.op('Floor', [b.op('Div', [b.reshape(tokens, [-1, 1], 'guard_extra_col'), f32(kb, 'guard_extra_block')], 'guard_extra_block_f')], 'guard_extra_block_index');
    const tokenBlocks = b.cast(b.op('Equal', [blockOf, b.op('Div', [blockLo, f32(kb, 'guard_extra_block2')], 'guard_block_index_row')], 'guard_extra_in_block'), 'f32', 'guard_extra_in_block_f');
    dropped = b.op('Sub', [dropped, b.op('MatMul', [droppedTokens, tokenBlocks], 'guard_extra_counts')], 'guard_count_without_extra');
  }
  if (s.globalQueries.length > 0) {
    const queries = b.constant('guard_global_queries', Tensor.fromValues('f32', [1, s.globalQueries.length], s.globalQueries));
    const isGlobal = reduce('ReduceMax', b.cast(b.op('Equal', [pos, queries], 'guard_global_hit'), 'f32', 'guard_global_hit_f'), [1], 'guard_global_row', true);
    dropped = b.op('Mul', [dropped, b.op('Sub', [f32(1, 'guard_global_one'), isGlobal], 'guard_not_global_row')], 'guard_count_local_rows');
  }
  // the row keeps a key: a sink or extra key below upper, or the band [max(bandLo, 0), min(bandHi, upper)) not
  // empty (a global query's output is its dense row: it drops nothing, so it never falls back)
  const firstKey = baseLower ? b.op('Max', [baseLower, zeroF], 'guard_first_key') : zeroF;
  const bandKept = b.op('Sub', [b.op('Min', [bandHi, upper], 'guard_kept_end'), b.op('Max', [bandLo, firstKey], 'guard_kept_start')], 'guard_kept_band');
  const firstExtra = E === 0 && s.extra.length > 0 ? f32(Math.min(...s.extra), 'guard_first_extra') : undefined;
  // the sinks the row keeps: [first baseline key, min(E, upper))
  const keptSinks = b.op('Min', [upper, sinksF], 'guard_kept_sinks_end');
  const keepsSomeCol = b.op(
    'Greater',
    [E > 0 ? b.op('Max', [bandKept, baseLower ? b.op('Sub', [keptSinks, firstKey], 'guard_kept_sinks') : keptSinks], 'guard_kept_any') : firstExtra ? b.op('Max', [bandKept, b.op('Sub', [upper, firstExtra], 'guard_kept_extra')], 'guard_kept_any') : bandKept, zeroF],
    'guard_keeps_some_col',
  );
  const keepsSome = b.reshape(keepsSomeCol, x.kvLength ? [0, 0, -1] : [-1], 'guard_keeps_some');
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
              { lo: b.op('Max', [blockLo, firstDroppable], 'guard_bias_before_lo'), hi: b.op('Min', [blockHi, b.op('Min', [bandLo, causalUpper], 'guard_bias_before_limit')], 'guard_bias_before_hi') },
              ...(bandReachesUpper ? [] : [{ lo: b.op('Max', [blockLo, b.op('Max', [bandHi, firstDroppable], 'guard_bias_after_limit')], 'guard_bias_after_lo'), hi: b.op('Min', [blockHi, causalUpper], 'guard_bias_after_hi') }]),
            ],
          }),
        ],
        'guard_biased_bound',
      )
    : u;
  // a relative-position bias: its largest value over the offsets outside the band (every key a row drops lies there)
  const biasedBound = x.relative
    ? b.op('Add', [bounded, x.relative.maxOutside(b.op('Add', [offset, i64(s.lo, 'guard_rel_lo')], 'guard_rel_band_lo'), b.op('Add', [offset, i64(s.hi, 'guard_rel_hi')], 'guard_rel_band_hi'), 'guard_rel_dropped')], 'guard_rel_bound')
    : bounded;

  // the largest kept logit and its probability per row, from the banded softmax ([B, H, nBlocks, b] -> [B, H, S]);
  // on rows that keep no key (their empty-row key column is 0 there) keepsSome rules them out
  const rowsOf = (t: Value, what: string) =>
    b.op('Slice', [b.reshape(t, [0, 0, -1], `${what}_padded`), b.ints(`${what}_start`, [0]), b.reshape(S, [1], `${what}_end`), b.ints(`${what}_axis`, [2])], what);
  const maxLogit = rowsOf(reduce('ReduceMax', toF32(logits, 'guard_logits_f32'), [4], 'guard_max_logit_blocks'), 'guard_max_logit');
  // its probability only for the log-sum-exp (guard.logZ 'max-logit': the largest kept logit alone bounds log Z_S)
  const maxProb = guard.logZ === 'max-logit' ? undefined : rowsOf(reduce('ReduceMax', toF32(probs, 'guard_probs_f32'), [4], 'guard_max_prob_blocks'), 'guard_max_prob');
  return guardedCertificate(b, x, { y, bound, bounded: biasedBound, dropped, maxLogit, ...(maxProb ? { maxProb } : {}), keepsSome });
}
