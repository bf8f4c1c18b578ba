// Sums of exponentials in log space, so certificates never overflow (e^800) or lose a small term.

/**
 * log(sum_j exp(x_j)), max-subtracted. -inf for an empty list or when every x_j is -inf; +inf when some x_j is
 * +inf; NaN when some x_j is NaN.
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

/** log(e^a + e^b) for two log-space terms. */
export function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const max = Math.max(a, b);
  if (max === Infinity) return Infinity;
  return max + Math.log1p(Math.exp(-Math.abs(a - b)));
}
