// The float64 softmax and log-sum-exp, written once: the reference, the bounds, the passes and the library all
// use these (the IR imports nothing, so every package can reach them).

/**
 * log sum_j e^{x_j}, max-subtracted so no term overflows: -inf for an empty row or one of only -inf, +inf when
 * some x_j is +inf, NaN when some x_j is NaN.
 */
export function logSumExp(xs: ArrayLike<number>): number {
  let max = -Infinity;
  for (let j = 0; j < xs.length; j++) {
    const x = xs[j]!;
    if (Number.isNaN(x)) return NaN;
    if (x > max) max = x;
  }
  if (max === -Infinity || max === Infinity) return max;
  let sum = 0;
  for (let j = 0; j < xs.length; j++) sum += Math.exp(xs[j]! - max);
  return max + Math.log(sum);
}

/**
 * softmax of a row in place, max-subtracted: s_j <- exp(s_j - max) / sum_k exp(s_k - max); returns the row's
 * log-sum-exp log Z. A FULLY MASKED row (every score -inf, or an empty row) becomes all zeros with log Z = -inf,
 * as ONNX `Attention` defines (output 0 for such a row, not NaN). A NaN score makes the whole row NaN; a +inf
 * score gives NaN (inf - inf), as numpy does.
 */
export function softmaxInPlace(s: Float64Array): number {
  let max = -Infinity;
  for (let j = 0; j < s.length; j++) {
    const x = s[j]!;
    if (Number.isNaN(x)) {
      s.fill(NaN);
      return NaN;
    }
    if (x > max) max = x;
  }
  if (max === -Infinity) {
    s.fill(0);
    return -Infinity;
  }
  let sum = 0;
  for (let j = 0; j < s.length; j++) sum += s[j] = Math.exp(s[j]! - max);
  for (let j = 0; j < s.length; j++) s[j]! /= sum;
  return max + Math.log(sum);
}

/** softmax of a row into a new array (see softmaxInPlace). */
export function softmaxRow(scores: ArrayLike<number>): Float64Array {
  const p = Float64Array.from(scores);
  softmaxInPlace(p);
  return p;
}
