// BOUNDS.md (d): Performer FAVOR+ positive random features (arXiv 2009.14794, Lemma 2).
// phi(x) = m^{-1/2} exp(-||x||^2 / 2) [exp(w_i . x)]_{i=1..m}, w_i ~ N(0, I_d) i.i.d.

function dot(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) throw new Error(`performer: vectors of sizes ${x.length} and ${y.length}`);
  let s = 0;
  for (let c = 0; c < x.length; c++) s += x[c]! * y[c]!;
  return s;
}

/** SM(x, y) = exp(x . y): what phi(x) . phi(y) estimates without bias (Lemma 2; BOUNDS.md (d)). */
export function softmaxKernel(x: ArrayLike<number>, y: ArrayLike<number>): number {
  return Math.exp(dot(x, y));
}

/**
 * MSE(x, y) = Var[phi(x) . phi(y)] = (1/m) exp(||x + y||^2) SM(x, y)^2 (1 - exp(-||x + y||^2)) for m i.i.d. features
 * (Performer arXiv 2009.14794, Lemma 2; BOUNDS.md (d)). Computed as (1/m) exp(a + 2 x.y) (-expm1(-a)), a = ||x+y||^2.
 */
export function performerKernelMse(x: ArrayLike<number>, y: ArrayLike<number>, m: number): number {
  let a = 0;
  for (let c = 0; c < x.length; c++) a += (x[c]! + y[c]!) ** 2;
  return (Math.exp(a + 2 * dot(x, y)) * -Math.expm1(-a)) / m;
}

/**
 * The 4th central moment of phi(x) . phi(y) for m i.i.d. features, for testing the MSE with a stated error:
 * the estimate is (1/m) sum_i Y_i, Y_i = mu U_i with mu = E[Y] = SM(x, y), U = e^{G - a/2}, G ~ N(0, a),
 * a = ||x + y||^2 (log-normal): var(U) = e^a - 1, mu4(U) = (e^a - 1)^2 (e^{4a} + 2 e^{3a} + 3 e^{2a} - 3).
 * For a mean of m i.i.d. terms: mu4 = (mu4(Y) + 3 (m - 1) var(Y)^2) / m^3. Written with expm1 so a -> 0 keeps
 * its relative precision (raw moments would cancel).
 */
export function performerKernelFourthMoment(x: ArrayLike<number>, y: ArrayLike<number>, m: number): number {
  let a = 0;
  for (let c = 0; c < x.length; c++) a += (x[c]! + y[c]!) ** 2;
  const mu = softmaxKernel(x, y);
  const e = Math.expm1(a);
  const varY = mu * mu * e;
  const mu4Y = mu ** 4 * e * e * (Math.exp(4 * a) + 2 * Math.exp(3 * a) + 3 * Math.exp(2 * a) - 3);
  return (mu4Y + 3 * (m - 1) * varY * varY) / m ** 3;
}
