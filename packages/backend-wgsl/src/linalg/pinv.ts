// The Moore-Penrose pseudo-inverse of a small square matrix on the host, in float64, by one-sided Jacobi
// SVD (Hestenes): columns of W = A V are orthogonalized by plane rotations until every pair is orthogonal
// to working precision; then sigma_t = |w_t| and A⁺ = sum over kept t of v_t w_tᵀ / sigma_t². Singular values
// at or below n * eps * sigma_max are treated as zero: the cutoff of @attnopt/reference's pinv (numpy's).

const MAX_SWEEPS = 60;

/** A⁺ of the n x n row-major matrix a (n x n, row-major). */
export function pinvSquare(a: ArrayLike<number>, n: number): Float64Array {
  const w = Float64Array.from({ length: n * n }, (_, x) => a[x]!);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < n; i++) {
          const wp = w[i * n + p]!;
          const wq = w[i * n + q]!;
          alpha += wp * wp;
          beta += wq * wq;
          gamma += wp * wq;
        }
        if (gamma === 0 || Math.abs(gamma) <= Number.EPSILON * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (const m of [w, v]) {
          for (let i = 0; i < n; i++) {
            const xp = m[i * n + p]!;
            const xq = m[i * n + q]!;
            m[i * n + p] = c * xp - s * xq;
            m[i * n + q] = s * xp + c * xq;
          }
        }
      }
    }
    if (!rotated) break;
  }
  const sigma = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    let sq = 0;
    for (let i = 0; i < n; i++) sq += w[i * n + t]! ** 2;
    sigma[t] = Math.sqrt(sq);
  }
  const smax = sigma.reduce((x, y) => Math.max(x, y), 0);
  const cutoff = n * Number.EPSILON * smax;
  const out = new Float64Array(n * n);
  for (let t = 0; t < n; t++) {
    if (!(sigma[t]! > cutoff)) continue;
    const inv2 = 1 / (sigma[t]! * sigma[t]!);
    for (let i = 0; i < n; i++) {
      const vi = v[i * n + t]! * inv2;
      for (let j = 0; j < n; j++) out[i * n + j]! += vi * w[j * n + t]!;
    }
  }
  return out;
}
