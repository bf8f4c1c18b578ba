// Performer FAVOR+ positive random features (arXiv 2009.14794, Lemma 2; BOUNDS.md (d)): the projection W.
//
// Feature map of x in R^d with m features and projection rows w_1..w_m:
//   phi(x) = m^(-1/2) exp(-|x|^2 / 2) [exp(w_i . x)]_{i=1..m},  E[phi(x) . phi(y)] = exp(x . y)
// applied to x = sqrt(scale) * q and x = sqrt(scale) * k, so phi(q~) . phi(k~) estimates exp(scale q . k).
// The rows come from the stream g = gaussian(seed, ...) (random.ts):
// - orthogonal = false: w_i[c] = g[i * d + c] (i.i.d. N(0, I_d)), m * d draws;
// - orthogonal = true: B = ceil(m / d) blocks; block b takes the d Gaussian rows g[((b d + r) d + c)] (r < d),
//   orthonormalizes them by Gram-Schmidt in order, and row i = b d + r (kept while i < m) is rescaled to the
//   norm of an independent Gaussian vector g[B d d + i d + c] (c < d). Every row is marginally N(0, I_d)
//   and the rows of one block are exactly orthogonal.
// Output: out_i = sum_j (phi(q_i) . phi(k_j)) v_j / sum_j phi(q_i) . phi(k_j).

import { gaussian } from '../../random.js';

/** The m x d projection rows w_i of a Performer spec, row-major: W[i * d + c] = w_i[c]. */
export function performerW(features: number, d: number, seed: number, orthogonal: boolean): Float64Array {
  const m = features;
  if (!orthogonal) return gaussian(seed, m * d);
  const blocks = Math.ceil(m / d);
  const g = gaussian(seed, blocks * d * d + m * d);
  const w = new Float64Array(m * d);
  for (let b = 0; b < blocks; b++) {
    const rows: Float64Array[] = [];
    for (let r = 0; r < d; r++) {
      const x = g.slice((b * d + r) * d, (b * d + r + 1) * d);
      for (const y of rows) {
        let dot = 0;
        for (let c = 0; c < d; c++) dot += x[c]! * y[c]!;
        for (let c = 0; c < d; c++) x[c]! -= dot * y[c]!;
      }
      const norm = Math.hypot(...x);
      for (let c = 0; c < d; c++) x[c]! /= norm;
      rows.push(x);
      const i = b * d + r;
      if (i < m) {
        const len = Math.hypot(...g.slice(blocks * d * d + i * d, blocks * d * d + (i + 1) * d));
        for (let c = 0; c < d; c++) w[i * d + c] = x[c]! * len;
      }
    }
  }
  return w;
}
