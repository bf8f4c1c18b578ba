// Sums of exponentials in log space, so certificates never overflow (e^800) or lose a small term.

export { logSumExp } from '@attnopt/ir';

/** log(e^a + e^b) for two log-space terms. */
export function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const max = Math.max(a, b);
  if (max === Infinity) return Infinity;
  return max + Math.log1p(Math.exp(-Math.abs(a - b)));
}
