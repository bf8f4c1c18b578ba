// BOUNDS.md (b'): guarded forms. Per-block key summaries built once per call (O(n d)), read per query row
// (O(n d / block)), give an upper bound U_block >= s_j for every key j of a block; with the log-sum-exp of the kept
// scores they bound the dropped mass, m <= m_hat = B / (Z_S + B), and the output error, |o - o_S| <= m_hat R.
// Every function here streams per row: nothing is n x n.

import { droppedMassCertificateFromLog } from './certificates.js';
import { logSumExp } from './log-space.js';

/** Summaries of the keys [b * blockSize, min(n, (b + 1) * blockSize)) of one head, block b in order. */
export interface KeyBlockSummaries {
  readonly blockSize: number;
  /** Keys summarized. */
  readonly n: number;
  readonly d: number;
  /** Per block per channel min and max of K (Quest), blocks x d; NaN where the block holds a NaN in the channel. */
  readonly kmin: Float64Array;
  readonly kmax: Float64Array;
  /**
   * Per block the box centre c = (kmin + kmax) / 2 (blocks x d) and radius r = max_j ||k_j - c|| (the ball bound).
   * Any centre makes the ball sound; the box centre is the one Quest's bound already multiplies q by, so a lowering
   * computes q . c once for both bounds.
   */
  readonly center: Float64Array;
  readonly radius: Float64Array;
}

export function blockCount(n: number, blockSize: number): number {
  return Math.ceil(n / blockSize);
}

/**
 * Builds the per-block summaries of `keys` (row-major n x d) in O(n d). `alwaysKept`: keys every row of the form
 * keeps (sinks, global tokens), never dropped, so left out of their block's summary (a bound over the block's other
 * keys bounds every key the block can drop); a block with no other key keeps them (its bound stays finite).
 */
export function keyBlockSummaries(keys: ArrayLike<number>, n: number, d: number, blockSize: number, alwaysKept: readonly number[] = []): KeyBlockSummaries {
  if (!Number.isSafeInteger(blockSize) || blockSize < 1) throw new Error(`keyBlockSummaries: block size must be an integer >= 1, got ${blockSize}`);
  if (alwaysKept.length > 0) return keyBlockSummaries(withoutKeptKeys(keys, n, d, blockSize, alwaysKept), n, d, blockSize);
  const nb = blockCount(n, blockSize);
  const kmin = new Float64Array(nb * d).fill(Infinity);
  const kmax = new Float64Array(nb * d).fill(-Infinity);
  const center = new Float64Array(nb * d);
  const radius = new Float64Array(nb);
  for (let b = 0; b < nb; b++) {
    const j0 = b * blockSize;
    const j1 = Math.min(n, j0 + blockSize);
    for (let j = j0; j < j1; j++) {
      for (let c = 0; c < d; c++) {
        const x = keys[j * d + c]!;
        // a NaN key makes its channel's box NaN (so every bound over the block is +inf), not skipped
        if (Number.isNaN(x)) kmin[b * d + c] = kmax[b * d + c] = NaN;
        else if (x < kmin[b * d + c]!) kmin[b * d + c] = x;
        if (x > kmax[b * d + c]!) kmax[b * d + c] = x;
      }
    }
    for (let c = 0; c < d; c++) center[b * d + c] = (kmin[b * d + c]! + kmax[b * d + c]!) / 2;
    let r2 = 0;
    for (let j = j0; j < j1; j++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += (keys[j * d + c]! - center[b * d + c]!) ** 2;
      r2 = Math.max(r2, s);
    }
    // the centre and the distances are rounded: widen the radius by a relative margin so every key stays inside
    radius[b] = Math.sqrt(r2) * (1 + 1e-12) + 1e-300;
  }
  return { blockSize, n, d, kmin, kmax, center, radius };
}

/**
 * The position whose key stands in for always-kept key `e` in its block's summary: the nearest key of the block
 * below e that is not always kept, else the nearest above; undefined when the block has none (below `n` keys).
 * A guarded lowering gathers K by these positions before its block reductions, so both summarize the same keys.
 */
export function keptKeyStandIn(e: number, alwaysKept: ReadonlySet<number>, blockSize: number, n: number): number | undefined {
  const lo = Math.floor(e / blockSize) * blockSize;
  const hi = Math.min(n, lo + blockSize);
  for (let j = e - 1; j >= lo; j--) if (!alwaysKept.has(j)) return j;
  for (let j = e + 1; j < hi; j++) if (!alwaysKept.has(j)) return j;
  return undefined;
}

/** `keys` with every always-kept key replaced by its stand-in (keptKeyStandIn), or kept where it has none. */
function withoutKeptKeys(keys: ArrayLike<number>, n: number, d: number, blockSize: number, alwaysKept: readonly number[]): Float64Array {
  const out = Float64Array.from({ length: n * d }, (_, t) => keys[t]!);
  const kept = new Set(alwaysKept);
  for (const e of kept) {
    if (!(e >= 0 && e < n)) continue;
    const r = keptKeyStandIn(e, kept, blockSize, n);
    if (r !== undefined) for (let c = 0; c < d; c++) out[e * d + c] = out[r * d + c]!;
  }
  return out;
}

/**
 * Which summaries a score bound takes: 'box-ball' the smaller of Quest's box bound and the ball's, 'box' the box
 * alone (a lowering then computes no radius; each is an upper bound on its own).
 */
export type ScoreBoundSummaries = 'box' | 'box-ball';

/**
 * An upper bound on scale q . k over every key k of block b (scale >= 0), the smaller of two (BOUNDS.md (b')):
 * Quest's sum_i max(q_i m_i, q_i M_i), and the ball q . c + ||q|| r (left out for `summaries` 'box'). For scale < 0
 * both bound -q . k the same way. A non-finite key in the block gives +inf (no bound).
 */
export function blockScoreUpperBound(q: ArrayLike<number>, summaries: KeyBlockSummaries, b: number, scale: number, which: ScoreBoundSummaries = 'box-ball'): number {
  const { d, kmin, kmax, center, radius } = summaries;
  const sign = scale >= 0 ? 1 : -1;
  let quest = 0;
  let dot = 0;
  let qq = 0;
  for (let c = 0; c < d; c++) {
    const x = sign * q[c]!;
    const lo = x * kmin[b * d + c]!;
    const hi = x * kmax[b * d + c]!;
    quest += lo > hi ? lo : hi;
    dot += x * center[b * d + c]!;
    qq += x * x;
  }
  const u = which === 'box' ? quest : Math.min(quest, dot + Math.sqrt(qq) * radius[b]!);
  if (Number.isNaN(u)) return Infinity;
  return Math.abs(scale) * u;
}

/** softcap * tanh(x / softcap) is increasing: it maps an upper bound of the raw score to one of the capped score. */
export function softcappedUpperBound(u: number, softcap: number): number {
  return softcap > 0 ? softcap * Math.tanh(u / softcap) : u;
}

/** The kept keys' log Z_S = logSumExp of their scores (-inf: none kept). */
export function keptLogSumExp(keptScores: ArrayLike<number>): number {
  return logSumExp(keptScores);
}

/**
 * How a certificate takes the kept keys' log Z_S: 'kept-sum' their log-sum-exp, 'max-logit' the largest kept score
 * alone, a lower bound looser by -log of that key's softmax probability among the kept keys (a lowering then needs no
 * pass over the probabilities). A lower log Z_S only raises m_hat: both certificates are sound.
 */
export type KeptLogZ = 'kept-sum' | 'max-logit';

/** log Z_S of the kept keys' scores as `which` takes it (-inf: none kept). */
export function keptLogZ(keptScores: ArrayLike<number>, which: KeptLogZ = 'kept-sum'): number {
  if (which === 'kept-sum') return logSumExp(keptScores);
  let m = -Infinity;
  for (let j = 0; j < keptScores.length; j++) m = Math.max(m, keptScores[j]!);
  return m;
}

/**
 * One query row's dropped-mass certificate m_hat = B / (Z_S + B) >= m (BOUNDS.md (b), (b')), with
 * B = sum_b n_dropped(b) e^{U_b + maxBias_b}. `droppedCounts[b]` counts the block's keys the row drops (that the
 * model's own mask allows); `maxBias[b]` is the block's largest bias over those keys (omitted: 0; -inf: all masked).
 * `which`: the summaries U_b takes (blockScoreUpperBound).
 */
export function guardedDroppedMass(
  q: ArrayLike<number>,
  summaries: KeyBlockSummaries,
  scale: number,
  softcap: number,
  logZKept: number,
  droppedCounts: ArrayLike<number>,
  maxBias?: ArrayLike<number>,
  which: ScoreBoundSummaries = 'box-ball',
): number {
  return droppedMassCertificateFromLog(logZKept, guardedLogB(q, summaries, scale, softcap, droppedCounts, maxBias, which));
}

/**
 * log B of guardedDroppedMass, B = sum_b n_dropped(b) e^{U_b + maxBias_b} (-inf: nothing dropped): with one log B,
 * the certificate for any log Z_S is droppedMassCertificateFromLog(logZKept, logB).
 */
export function guardedLogB(
  q: ArrayLike<number>,
  summaries: KeyBlockSummaries,
  scale: number,
  softcap: number,
  droppedCounts: ArrayLike<number>,
  maxBias?: ArrayLike<number>,
  which: ScoreBoundSummaries = 'box-ball',
): number {
  const terms: number[] = [];
  for (let b = 0; b < droppedCounts.length; b++) {
    const count = droppedCounts[b]!;
    if (count <= 0) continue;
    const bias = maxBias ? maxBias[b]! : 0;
    if (bias === -Infinity) continue;
    const u = softcappedUpperBound(blockScoreUpperBound(q, summaries, b, scale, which), softcap) + bias;
    terms.push(Math.log(count) + u);
  }
  return logSumExp(terms);
}

/**
 * The output error bound of a guarded row: |o_c - o_S,c| <= m_hat R for every coordinate c (BOUNDS.md (a)),
 * R = max_c (max_j v_jc - min_j v_jc) over the keys of the union of kept and dropped sets. m_hat = 0 gives 0
 * (even for an infinite range); a row that keeps no mass (m_hat = 1) is only bounded by the range too when the
 * sparse kernel then recomputes it, so callers treat m_hat = 1 as "fall back".
 */
export function guardedOutputBound(mHat: number, valueRange: number): number {
  return mHat === 0 ? 0 : mHat * valueRange;
}

/** max over c of (max_j v_jc - min_j v_jc), j over the rows of `values` (n x dv); 0 without rows. */
export function valueRange(values: ArrayLike<number>, dv: number): number {
  const n = dv === 0 ? 0 : values.length / dv;
  let r = 0;
  for (let c = 0; c < dv; c++) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let j = 0; j < n; j++) {
      const x = values[j * dv + c]!;
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    if (n > 0) r = Math.max(r, hi - lo);
  }
  return r;
}

/**
 * Whether a guarded row must be recomputed exactly: its bound exceeds the budget, or nothing is certified
 * (m_hat = 1 or NaN), whatever the budget. m_hat = 1 covers a row that keeps no key but drops one
 * (guardedDroppedMass with log Z_S = -inf): its sparse output, 0, is no convex combination of V, so m_hat R bounds
 * nothing there (the error can reach max |v|, above R when V lies far from 0).
 */
export function guardFallsBack(mHat: number, valueRangeOfRow: number, budget: number): boolean {
  if (mHat === 0) return false;
  if (mHat >= 1 || Number.isNaN(mHat)) return true;
  const bound = guardedOutputBound(mHat, valueRangeOfRow);
  return !(bound <= budget);
}
