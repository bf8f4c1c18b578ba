// Evaluating mask-shaped candidates on one head of calibration data, in float64, one query row at a time
// (never n x n memory; past EVALUATED_ROWS_PER_HEAD rows, a stride over them: work linear in the keys).
// Per row i, with p the softmax of the site's own (baseline) spec:
//   m_i     = sum of p_j over the keys the candidate drops          (the dropped mass, BOUNDS.md (a))
//   bound_i = m_i * max_c (max_j v_jc - min_j v_jc), j over the baseline row's keys   (BOUNDS.md (a))
//             (2 max_j |v_jc| when the candidate keeps no mass: the sparse row is then 0)
//   error_i = max_c |o_c - o_S,c|, o_S the softmax over the kept keys alone
// The bound is measured on this data (it holds for every calibration row, for no other input).
// Per row also the guarded certificate (BOUNDS.md (b')), what a guarded site computes at run time from per-block
// key summaries alone: m_hat >= m_i, and the row falls back (is recomputed densely) when m_hat R > the guard budget.
// An LSH leaf's certificate is @attnopt/bounds' lshDroppedMass over its own key groups (per round, the buckets).
// The fallback rate on calibration data predicts the guarded form's cost.

import { blockCount, droppedMassCertificateFromLog, guardedLogB, guardFallsBack, type KeyBlockSummaries, keyBlockSummaries, lshDroppedMass, lshHeadGroups, maskRowErrorBound } from '@attnopt/bounds';
import { intervals, type IntervalSet, keySupport, type LeafResolver, type MaskDims, type MaskSpec, rowKeys, softmaxInPlace } from '@attnopt/ir';
import { guardBlockSize, isBlockGathered } from '../lower/guarded-blocks.js';
import { guardedLshLeaf } from '../lower/guarded-lsh.js';
import type { HeadData } from './calibration.js';

/** Running results of one candidate over the rows evaluated so far. */
export interface CandidateStats {
  /** max over rows of the bound m_i R from the dropped mass measured on this data. */
  bound: number;
  /** max over measured rows of max_c |o_c - o_S,c|. */
  measuredError: number;
  /** Rows on which the error was measured. */
  measuredRows: number;
  /** Rows evaluated (bound computed). */
  rows: number;
  /** max dropped mass over rows. */
  maxDroppedMass: number;
  /** Rows whose guarded certificate m_hat R exceeds the guard budget (a guarded site recomputes them densely). */
  fallbackRows: number;
  /**
   * The ids (EvaluateOptions.rowBase + i) of the rows evaluated and of those that fell back: the guarded lowering
   * recomputes a row in every head of its Attention when any head falls back there, so over several heads the rows
   * recomputed are the union of the heads' fallback rows.
   */
  rowIds: Set<number>;
  fallbackIds: Set<number>;
  /** max over rows of the guarded certificate m_hat (>= maxDroppedMass). */
  maxCertifiedMass: number;
  /**
   * Rows within the budget by the certificate with the box and ball summaries that the box alone would recompute
   * (key block forms; LSH certificates always take both): 0 lets the lowering leave the ball out (summaries 'box').
   */
  ballOnlyRows: number;
  /**
   * Rows within the budget by that certificate (log Z_S the kept scores' log-sum-exp) that log Z_S taken as the
   * largest kept score would recompute, with the box and the ball / with the box alone (key block forms): 0 lets
   * the lowering skip the pass over the probabilities (guard.logZ 'max-logit').
   */
  exactLogZRows: number;
  exactLogZBoxRows: number;
  /** The statistical tier's fit / held-out split: bound (mask forms) or error (low-rank) max over the fit rows. */
  fitBound: number;
  /** The same per held-out row (the conformal quantile's samples). */
  heldOut: number[];
}

export function emptyStats(): CandidateStats {
  return { bound: 0, measuredError: 0, measuredRows: 0, rows: 0, maxDroppedMass: 0, fallbackRows: 0, rowIds: new Set(), fallbackIds: new Set(), maxCertifiedMass: 0, ballOnlyRows: 0, exactLogZRows: 0, exactLogZBoxRows: 0, fitBound: 0, heldOut: [] };
}

/** The share of (head, row) pairs whose certificate exceeds the budget (1 with no row: nothing is known). */
export function fallbackRowRate(s: Pick<CandidateStats, 'fallbackRows' | 'rows'>): number {
  return s.rows > 0 ? s.fallbackRows / s.rows : 1;
}

/** The share of rows a guarded Attention over these stats' heads recomputes (in every head): see CandidateStats.fallbackIds. */
export function recomputedRowRate(s: CandidateStats): number {
  return s.rowIds.size > 0 ? s.fallbackIds.size / s.rowIds.size : fallbackRowRate(s);
}

/** The stats of one form over several heads: the worst bound, error and masses, rows summed. */
export function mergedStats(stats: readonly CandidateStats[]): CandidateStats {
  return {
    bound: Math.max(...stats.map((s) => s.bound)),
    measuredError: Math.max(...stats.map((s) => s.measuredError)),
    measuredRows: stats.reduce((a, s) => a + s.measuredRows, 0),
    rows: stats.reduce((a, s) => a + s.rows, 0),
    maxDroppedMass: Math.max(...stats.map((s) => s.maxDroppedMass)),
    fallbackRows: stats.reduce((a, s) => a + s.fallbackRows, 0),
    rowIds: new Set(stats.flatMap((s) => [...s.rowIds])),
    fallbackIds: new Set(stats.flatMap((s) => [...s.fallbackIds])),
    maxCertifiedMass: Math.max(...stats.map((s) => s.maxCertifiedMass)),
    ballOnlyRows: stats.reduce((a, s) => a + s.ballOnlyRows, 0),
    exactLogZRows: stats.reduce((a, s) => a + s.exactLogZRows, 0),
    exactLogZBoxRows: stats.reduce((a, s) => a + s.exactLogZBoxRows, 0),
    fitBound: Math.max(...stats.map((s) => s.fitBound)),
    heldOut: stats.flatMap((s) => s.heldOut),
  };
}

/**
 * The largest score among the kept keys `S` (@attnopt/bounds' keptLogZ 'max-logit' of their scores), read from the
 * row's softmax p over the baseline and its log-sum-exp logZ: logZ + log max_S p (-inf: none kept or all 0).
 */
function largestKeptScore(S: IntervalSet, p: Float64Array, logZ: number): number {
  let most = 0;
  for (let t = 0; t < S.length; t += 2) for (let j = S[t]!; j < S[t + 1]!; j++) if (p[j]! > most) most = p[j]!;
  return most > 0 ? logZ + Math.log(most) : -Infinity;
}

/** The softmax input of row i: softcap(scale q_i . k_j) + bias, -inf outside `keys`. Returns the row. */
export function scoreRow(head: HeadData, i: number, keys: IntervalSet, out: Float64Array, bias?: Float64Array): Float64Array {
  const { q, k, d, scale, softcap } = head;
  out.fill(-Infinity);
  if (bias && head.biasRow) head.biasRow(i, bias);
  for (let t = 0; t < keys.length; t += 2) {
    for (let j = keys[t]!; j < keys[t + 1]!; j++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += q[i * d + c]! * k[j * d + c]!;
      s *= scale;
      if (softcap > 0) s = softcap * Math.tanh(s / softcap);
      out[j] = bias && head.biasRow ? s + bias[j]! : s;
    }
  }
  return out;
}

/** Per key prefix x: max over c of (max - min) of V's column c over keys [0, x); and the same over all keys. */
function prefixRanges(head: HeadData): Float64Array {
  const { v, nk, dv } = head;
  const lo = new Float64Array(dv).fill(Infinity);
  const hi = new Float64Array(dv).fill(-Infinity);
  const out = new Float64Array(nk + 1);
  for (let j = 0; j < nk; j++) {
    let r = 0;
    for (let c = 0; c < dv; c++) {
      const x = v[j * dv + c]!;
      if (x < lo[c]!) lo[c] = x;
      if (x > hi[c]!) hi[c] = x;
      r = Math.max(r, hi[c]! - lo[c]!);
    }
    out[j + 1] = r;
  }
  return out;
}

function maxAbsValue(head: HeadData): number {
  let big = 0;
  for (let t = 0; t < head.v.length; t++) big = Math.max(big, Math.abs(head.v[t]!));
  return big;
}

export interface EvaluateOptions {
  /** Candidates whose running bound exceeds this are measured only on every `stride`-th row from then on. */
  readonly fullMeasureUpTo: number;
  /** Row stride for the sampled error measurement of candidates already over `fullMeasureUpTo`. */
  readonly stride: number;
  /** Output error budget of the guarded form (default fullMeasureUpTo). */
  readonly guardBudget?: number;
  /** Key block size of the guarded form's summaries (default 64; a block-gathered form takes its own key block). */
  readonly guardBlockSize?: number;
  /** Rows held out of the fit (1) for the statistical tier's conformal quantile; default none. */
  readonly heldOut?: Uint8Array;
  /** Row i's id is rowBase + i (the same query row of the same sample and batch in every head); default 0. */
  readonly rowBase?: number;
  /**
   * Evaluate only the rows i = 0, rowStride, 2 rowStride, ... (default 1: every row): the chooser's work is then
   * linear in the keys, not quadratic (rowStrideFor). Every statistic is over the rows evaluated.
   */
  readonly rowStride?: number;
}

/** At most this many query rows per head and sample are evaluated (a stride over the rows beyond it). */
export const EVALUATED_ROWS_PER_HEAD = 1024;

/** The row stride that evaluates at most EVALUATED_ROWS_PER_HEAD of `nq` rows, spread over all of them. */
export function rowStrideFor(nq: number): number {
  return Math.max(1, Math.ceil(nq / EVALUATED_ROWS_PER_HEAD));
}

/** Default key block size of guarded forms: summaries cost n d / 64 per row. */
export const DEFAULT_GUARD_BLOCK = 64;

/**
 * Evaluates `candidates` (each already intersected with `baseline`) on one head, updating `stats` (one entry per
 * candidate, accumulated across heads and samples by the caller). `resolve` resolves data-dependent leaves.
 */
export function evaluateHead(
  head: HeadData,
  baseline: MaskSpec,
  candidates: readonly MaskSpec[],
  stats: CandidateStats[],
  resolve: LeafResolver,
  options: EvaluateOptions,
): void {
  const { nq, nk, dv, v } = head;
  const dims: MaskDims = { nq, nk, past: head.past ?? 0 };
  const ranges = prefixRanges(head);
  const globalRange = ranges[nk]!;
  const maxAbs = maxAbsValue(head);
  const p = new Float64Array(nk);
  const bias = head.biasRow ? new Float64Array(nk) : undefined;
  const prefix = new Float64Array(nk + 1);
  const o = new Float64Array(dv);
  const acc = new Float64Array(dv);
  const guardBudget = options.guardBudget ?? options.fullMeasureUpTo;
  // the summaries at each candidate's guard block (a block-gathered form's own key block, as its lowering takes them),
  // a banded form's extra keys (sinks, global tokens: never dropped) left out as its lowering leaves them out
  const summaryBlocks = new Map<string, { summaries: KeyBlockSummaries; counts: Float64Array; blockBias: Float64Array | undefined }>();
  const summariesAt = (blockSize: number, alwaysKept: readonly number[]) => {
    const key = `${blockSize}:${alwaysKept.join(',')}`;
    if (!summaryBlocks.has(key)) {
      const nb = blockCount(nk, blockSize);
      summaryBlocks.set(key, { summaries: keyBlockSummaries(head.k, nk, head.d, blockSize, alwaysKept), counts: new Float64Array(nb), blockBias: bias ? new Float64Array(nb) : undefined });
    }
    return summaryBlocks.get(key)!;
  };
  // the bias row's largest value per whole key block, per block size, computed once per row (row: the row it holds)
  const blockMaxima = new Map<number, { row: number; max: Float64Array }>();
  const biasBlockMax = (blockSize: number, row: number): Float64Array => {
    let e = blockMaxima.get(blockSize);
    if (!e) blockMaxima.set(blockSize, (e = { row: -1, max: new Float64Array(blockCount(nk, blockSize)) }));
    if (e.row !== row) {
      e.max.fill(-Infinity);
      for (let j = 0; j < nk; j++) {
        const b = Math.floor(j / blockSize);
        if (bias![j]! > e.max[b]!) e.max[b] = bias![j]!;
      }
      e.row = row;
    }
    return e.max;
  };
  const candidateBlocks = candidates.map((c) => guardBlockSize(c, options.guardBlockSize ?? DEFAULT_GUARD_BLOCK));
  // an LSH leaf's certificate (alone, or causal ∩ it over a causal baseline) reads its own key groups: per round, the
  // buckets (or sorted chunks) of the keys, all counted (future keys too: only looser)
  const lshGroups = candidates.map((c) => {
    const leaf = guardedLshLeaf(c, baseline);
    return leaf ? lshHeadGroups(leaf, head.q, nq, head.k, nk, head.d) : undefined;
  });
  const candidateKept = candidates.map((c) => (isBlockGathered(c) ? [] : (keySupport(c)?.extra ?? [])));
  const qRow = new Float64Array(head.d);
  for (let i = 0; i < nq; i += options.rowStride ?? 1) {
    const base = rowKeys(baseline, i, dims, resolve);
    const logZ = softmaxInPlace(scoreRow(head, i, base, p, bias));
    for (let c = 0; c < head.d; c++) qRow[c] = head.q[i * head.d + c]!;
    for (let j = 0; j < nk; j++) prefix[j + 1] = prefix[j]! + p[j]!;
    const range = base.length === 2 && base[0] === 0 ? ranges[base[1]!]! : globalRange;
    // the baseline output o, computed the first time a candidate's error is measured on this row
    let haveO = false;
    const baselineO = () => {
      if (haveO) return o;
      o.fill(0);
      for (let t = 0; t < base.length; t += 2) {
        for (let j = base[t]!; j < base[t + 1]!; j++) {
          const pj = p[j]!;
          if (pj === 0) continue;
          for (let c = 0; c < dv; c++) o[c]! += pj * v[j * dv + c]!;
        }
      }
      haveO = true;
      return o;
    };
    candidates.forEach((cand, ci) => {
      const st = stats[ci]!;
      const S = rowKeys(cand, i, dims, resolve);
      const dropped = intervals.differenceSets(base, S);
      let m = 0;
      for (let t = 0; t < dropped.length; t += 2) m += prefix[dropped[t + 1]!]! - prefix[dropped[t]!]!;
      m = Math.max(0, m);
      let kept = 0;
      for (let t = 0; t < S.length; t += 2) kept += prefix[S[t + 1]!]! - prefix[S[t]!]!;
      const rowBound = maskRowErrorBound(m, range, kept > 0, maxAbs);
      // the guarded certificate: per-block counts (and max bias) of the dropped keys, log Z_S from the kept mass
      const blockSize = candidateBlocks[ci]!;
      const { summaries, counts, blockBias } = summariesAt(blockSize, candidateKept[ci]!);
      counts.fill(0);
      blockBias?.fill(-Infinity);
      // per block of each dropped interval: the keys by arithmetic, the bias's largest value from the row's block
      // maxima where the interval covers the whole block, key by key at its two ends (O(blocks), not O(keys))
      const wholeMax = blockBias && dropped.length > 0 ? biasBlockMax(blockSize, i) : undefined;
      for (let t = 0; t < dropped.length; t += 2) {
        for (let lo = dropped[t]!, hi = dropped[t + 1]!; lo < hi; ) {
          const b = Math.floor(lo / blockSize);
          const end = Math.min(hi, (b + 1) * blockSize);
          counts[b]! += end - lo;
          if (blockBias) {
            if (lo === b * blockSize && end === Math.min(nk, (b + 1) * blockSize)) {
              if (wholeMax![b]! > blockBias[b]!) blockBias[b] = wholeMax![b]!;
            } else {
              for (let j = lo; j < end; j++) if (bias![j]! > blockBias[b]!) blockBias[b] = bias![j]!;
            }
          }
          lo = end;
        }
      }
      const logZKept = kept > 0 ? Math.log(kept) + logZ : -Infinity;
      const groups = lshGroups[ci];
      const nothingDropped = m === 0 && dropped.length === 0;
      const logB = nothingDropped || groups ? -Infinity : guardedLogB(qRow, summaries, head.scale, head.softcap, counts, blockBias);
      const mHat = nothingDropped
        ? 0
        : groups
          ? lshDroppedMass(qRow, groups.rounds, groups.keptGroups(i), head.scale, head.softcap, logZKept)
          : droppedMassCertificateFromLog(logZKept, logB);
      const id = (options.rowBase ?? 0) + i;
      st.rowIds.add(id);
      if (guardFallsBack(mHat, range, guardBudget)) {
        st.fallbackRows++;
        st.fallbackIds.add(id);
      } else if (!groups && mHat > 0) {
        // the cheaper certificates the lowering may take instead (guard.summaries 'box', guard.logZ 'max-logit'):
        // the rows this one certifies that they would recompute
        const logBBox = guardedLogB(qRow, summaries, head.scale, head.softcap, counts, blockBias, 'box');
        const logZMax = largestKeptScore(S, p, logZ);
        const recomputes = (logZKeptAs: number, logBAs: number) => guardFallsBack(droppedMassCertificateFromLog(logZKeptAs, logBAs), range, guardBudget);
        if (recomputes(logZKept, logBBox)) st.ballOnlyRows++;
        if (recomputes(logZMax, logB)) st.exactLogZRows++;
        if (recomputes(logZMax, logBBox)) st.exactLogZBoxRows++;
      }
      st.maxCertifiedMass = Math.max(st.maxCertifiedMass, mHat);
      st.rows++;
      st.bound = Math.max(st.bound, rowBound);
      if (options.heldOut?.[i] === 1) st.heldOut.push(rowBound);
      else st.fitBound = Math.max(st.fitBound, rowBound);
      st.maxDroppedMass = Math.max(st.maxDroppedMass, m);
      if (st.bound > options.fullMeasureUpTo && i % options.stride !== 0) return;
      st.measuredRows++;
      if (m === 0) return; // o_S = o exactly (the kept keys carry all the mass)
      // o_S from the smaller side: the kept keys directly, or o minus the dropped keys' part
      acc.fill(0);
      const direct = intervals.size(S) <= intervals.size(dropped) || kept === 0;
      const over = direct ? S : dropped;
      let mass = 0;
      for (let t = 0; t < over.length; t += 2) {
        for (let j = over[t]!; j < over[t + 1]!; j++) {
          const pj = p[j]!;
          if (pj === 0) continue;
          mass += pj;
          for (let c = 0; c < dv; c++) acc[c]! += pj * v[j * dv + c]!;
        }
      }
      const full = baselineO();
      let err = 0;
      for (let c = 0; c < dv; c++) {
        const oS = direct ? (mass > 0 ? acc[c]! / mass : 0) : (full[c]! - acc[c]!) / (1 - mass);
        err = Math.max(err, Math.abs(full[c]! - oS));
      }
      st.measuredError = Math.max(st.measuredError, err);
    });
  }
}
