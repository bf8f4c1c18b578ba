// The row softmax and the dropped mass of a key subset (BOUNDS.md (a)).

/**
 * softmax over one row of scores, max-subtracted: p_j = exp(s_j - max) / sum_k exp(s_k - max).
 * A FULLY MASKED row (every score -inf, or an empty row) gives all zeros, not NaN, as ONNX `Attention`
 * defines (attention output 0 for such a row). NaN scores propagate (the whole row becomes NaN);
 * a +inf score gives NaN (inf - inf), as numpy does.
 */
export function softmaxRow(scores: ArrayLike<number>): Float64Array {
  const n = scores.length;
  const p = new Float64Array(n);
  let max = -Infinity;
  let nan = false;
  for (let j = 0; j < n; j++) {
    const s = scores[j]!;
    if (Number.isNaN(s)) nan = true;
    else if (s > max) max = s;
  }
  if (nan) return p.fill(NaN);
  if (max === -Infinity) return p; // fully masked row
  let sum = 0;
  for (let j = 0; j < n; j++) {
    p[j] = Math.exp(scores[j]! - max);
    sum += p[j]!;
  }
  for (let j = 0; j < n; j++) p[j]! /= sum;
  return p;
}

/**
 * The dropped mass m = 1 - P_S of a row (BOUNDS.md (a)): the softmax probability of the keys NOT kept,
 * where `kept(j)` says whether key j is in S. Computed as the sum over dropped keys (not 1 - P_S) so a
 * small m keeps its relative precision. A fully masked row has m = 0 (there is no mass to drop).
 */
export function droppedMass(scores: ArrayLike<number>, kept: (j: number) => boolean): number {
  const p = softmaxRow(scores);
  let m = 0;
  for (let j = 0; j < p.length; j++) if (!kept(j)) m += p[j]!;
  return m;
}
