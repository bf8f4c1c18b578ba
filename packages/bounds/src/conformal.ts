// Split-conformal (order-statistic) upper bound on a per-row error, distribution-free.
// Statement: let e_1..e_n be the errors of n held-out rows and e_{n+1} that of a new row, the n + 1 exchangeable
// (for example drawn i.i.d. from the same input distribution) and independent of how the form was fitted. With
// k = ceil((n + 1)(1 - alpha)) <= n, q = the k-th smallest of e_1..e_n satisfies
//     P(e_{n+1} <= q) >= 1 - alpha
// (by exchangeability the rank of e_{n+1} among the n + 1 is uniform on 1..n+1, ties only help). With k > n no finite
// q has that coverage: the quantile is +Infinity. Source: Vovk, Gammerman, Shafer, Algorithmic Learning in a Random
// World (2005); Lei et al., Distribution-Free Predictive Inference for Regression (2018), Theorem 2.1.

/** What a statistical form states: P(the error of a new exchangeable row <= quantile) >= 1 - alpha. */
export interface ConformalConfidence {
  readonly alpha: number;
  /** Held-out rows the quantile is taken over. */
  readonly samples: number;
  /** The k-th smallest held-out error, k = ceil((samples + 1)(1 - alpha)); +Infinity when k > samples. */
  readonly quantile: number;
}

/** k = ceil((n + 1)(1 - alpha)), the rank of the conformal quantile among n held-out errors (may exceed n). */
export function conformalRank(n: number, alpha: number): number {
  if (!(alpha > 0 && alpha < 1)) throw new Error(`conformal: alpha must be in (0, 1), got ${alpha}`);
  if (!(Number.isInteger(n) && n >= 0)) throw new Error(`conformal: the sample count must be a whole number >= 0, got ${n}`);
  // the small tolerance keeps (n + 1)(1 - alpha) = 19.000000000000004 from rounding up to 20
  return Math.ceil((n + 1) * (1 - alpha) - 1e-9);
}

/** The conformal quantile of `errors` (NaN counts as +Infinity: an unbounded error). */
export function conformalQuantile(errors: ArrayLike<number>, alpha: number): ConformalConfidence {
  const n = errors.length;
  const k = conformalRank(n, alpha);
  if (k > n) return { alpha, samples: n, quantile: Infinity };
  const sorted = Float64Array.from(errors, (e) => (Number.isNaN(e) ? Infinity : e)).sort();
  return { alpha, samples: n, quantile: sorted[k - 1]! };
}
