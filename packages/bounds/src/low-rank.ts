// BOUNDS.md (c): low-rank forms.

/**
 * Eckart-Young(-Mirsky) floor (BOUNDS.md (c)): any rank-r approximation P~ of P has ||P - P~||_2 >= sigma_{r+1}(P),
 * with equality for the truncated SVD. `singularValues` in any order; 0 when r >= their count (rank r is exact).
 */
export function eckartYoungFloor(singularValues: ArrayLike<number>, r: number): number {
  const s = Array.from(singularValues).sort((a, b) => b - a);
  if (!Number.isSafeInteger(r) || r < 0) throw new Error(`eckartYoungFloor: rank must be an integer >= 0, got ${r}`);
  return r < s.length ? s[r]! : 0;
}

/**
 * Johnson-Lindenstrauss tail (Linformer arXiv 2006.04768, Thm 2; BOUNDS.md (c)): for R (k x D) with i.i.d.
 * N(0, 1/k) entries and any x,  Pr(| ||Rx||^2 - ||x||^2 | > eps ||x||^2) <= 2 exp(-(eps^2 - eps^3) k / 4).
 * Clipped to 1 (eps >= 1 gives no information).
 */
export function jlTailProbability(eps: number, k: number): number {
  if (!(eps > 0)) return 1;
  return Math.min(1, 2 * Math.exp((-(eps * eps - eps ** 3) * k) / 4));
}
