// BOUNDS.md (b): certificates for the dropped mass m without computing the dense softmax.
// Z_S = sum_{j in S} e^{s_j} is computed anyway; any U_j >= s_j for the dropped keys give
//   m = Z_T / (Z_S + Z_T) <= B / (Z_S + B),  B = sum_{j not in S} e^{U_j}   (x / (Z_S + x) increases in x).
// Everything is in log space: log Z_S and the U_j are logits, never exponentiated on their own.

import { logSumExp } from './log-space.js';

/**
 * m <= B / (Z_S + B) with log B = logSumExp(U_j over the dropped keys)   (BOUNDS.md (b)).
 * `logZKept` = log Z_S (-inf for an empty kept set). Returns 0 when B = 0 (nothing can be dropped, also a
 * fully masked row), 1 when Z_S = 0 < B, computed as 1 / (1 + e^{log Z_S - log B}) (no overflow).
 */
export function droppedMassCertificate(logZKept: number, upperBoundsOfDropped: ArrayLike<number>): number {
  return droppedMassCertificateFromLog(logZKept, logSumExp(upperBoundsOfDropped));
}

/** The same certificate from log B directly (e.g. a per-block sum of n_block e^{U_block}). */
export function droppedMassCertificateFromLog(logZKept: number, logB: number): number {
  if (Number.isNaN(logZKept) || Number.isNaN(logB)) return NaN;
  if (logB === -Infinity) return 0;
  if (logZKept === -Infinity) return 1;
  return 1 / (1 + Math.exp(logZKept - logB));
}

/**
 * Cauchy-Schwarz (BOUNDS.md (b)): s_j = scale q . k_j + b_j <= U_j = |scale| ||q|| ||k_j|| + b_j, for every key of
 * `keys` (row-major n x d, d = q.length). `bias` is one number for every key (BOUNDS.md's max b_j) or one per
 * key; -inf gives U_j = -inf (a masked key never carries mass).
 */
export function cauchySchwarzUpperBounds(
  q: ArrayLike<number>,
  keys: ArrayLike<number>,
  scale: number,
  bias: number | ArrayLike<number> = 0,
): Float64Array {
  const d = q.length;
  const n = d === 0 ? 0 : keys.length / d;
  let qq = 0;
  for (let c = 0; c < d; c++) qq += q[c]! ** 2;
  const qNorm = Math.sqrt(qq);
  const out = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const b = typeof bias === 'number' ? bias : bias[j]!;
    if (b === -Infinity) {
      out[j] = -Infinity;
      continue;
    }
    let kk = 0;
    for (let c = 0; c < d; c++) kk += keys[j * d + c]! ** 2;
    out[j] = Math.abs(scale) * qNorm * Math.sqrt(kk) + b;
  }
  return out;
}

/**
 * Per key block (Quest, arXiv 2406.10774; BOUNDS.md (b)): with per-dimension min m_i and max M_i of the block's
 * keys, scale q . k <= scale sum_i max(q_i m_i, q_i M_i) for every key k of the block (scale >= 0; for
 * scale < 0 the min of the two products bounds q . k from below, so the bound uses it). Add the block's max bias.
 */
export function blockUpperBound(q: ArrayLike<number>, kmin: ArrayLike<number>, kmax: ArrayLike<number>, scale: number): number {
  let hi = 0;
  let lo = 0;
  for (let i = 0; i < q.length; i++) {
    const a = q[i]! * kmin[i]!;
    const b = q[i]! * kmax[i]!;
    hi += Math.max(a, b);
    lo += Math.min(a, b);
  }
  return scale >= 0 ? scale * hi : scale * lo;
}

/**
 * log B for blocks (BOUNDS.md (b)): B = sum over blocks of n_dropped(block) e^{U_block}, where n_dropped counts
 * the block's dropped keys (all of them when S keeps whole blocks) and U_block bounds every key of the block.
 */
export function blockLogB(droppedCounts: ArrayLike<number>, blockBounds: ArrayLike<number>): number {
  const terms: number[] = [];
  for (let b = 0; b < droppedCounts.length; b++) {
    if (droppedCounts[b]! > 0) terms.push(Math.log(droppedCounts[b]!) + blockBounds[b]!);
  }
  return logSumExp(terms);
}

/**
 * Top-k with a logit gap (BOUNDS.md (b)): n keys, the k largest kept, Delta = s_(k) - s_(k+1) >= 0:
 *   m <= (n - k) e^{-Delta} / (k + (n - k) e^{-Delta})  =  (n - k) / (k e^{Delta} + n - k).
 * Every kept key has e^{s} >= e^{s_(k)}, every dropped one e^{s} <= e^{s_(k) - Delta}. k = n gives 0,
 * Delta = +inf gives 0, k = 0 < n gives 1.
 */
export function topkGapBound(n: number, k: number, delta: number): number {
  if (k >= n || delta === Infinity) return 0;
  if (k <= 0) return 1;
  return (n - k) / (k * Math.exp(delta) + (n - k));
}

/**
 * topkGapBound from a row of scores (-inf = masked): sorts them, keeps the k largest. Returns 0 when at most k
 * scores are finite (nothing of positive probability is dropped) or the row is fully masked.
 */
export function topkGapBoundFromScores(scores: ArrayLike<number>, k: number): number {
  const sorted = Array.from(scores).sort((a, b) => b - a);
  const n = sorted.length;
  if (k >= n) return 0;
  if (k <= 0) return sorted[0] === -Infinity || n === 0 ? 0 : 1;
  const sk = sorted[k - 1]!;
  const next = sorted[k]!;
  if (next === -Infinity) return 0;
  return topkGapBound(n, k, sk - next);
}
