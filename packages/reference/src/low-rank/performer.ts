// Performer FAVOR+ positive random features (arXiv 2009.14794, Lemma 2; BOUNDS.md (d)), for one head.
//
// Feature map of x in R^d with m features and projection rows w_1..w_m:
//   phi(x) = m^(-1/2) exp(-|x|^2 / 2) [exp(w_i . x)]_{i=1..m},  E[phi(x) . phi(y)] = exp(x . y)
// applied to x = sqrt(scale) * q and x = sqrt(scale) * k, so phi(q~) . phi(k~) estimates exp(scale q . k).
// The rows come from the stream g = gaussian(seed, ...) of @attnopt/ir:
// - orthogonal = false: w_i[c] = g[i * d + c] (i.i.d. N(0, I_d)), m * d draws;
// - orthogonal = true: B = ceil(m / d) blocks; block b takes the d Gaussian rows g[((b d + r) d + c)] (r < d),
//   orthonormalizes them by Gram-Schmidt in order, and row i = b d + r (kept while i < m) is rescaled to the
//   norm of an independent Gaussian vector g[B d d + i d + c] (c < d). Every row is marginally N(0, I_d)
//   and the rows of one block are exactly orthogonal.
// Output: out_i = sum_j (phi(q_i) . phi(k_j)) v_j / sum_j phi(q_i) . phi(k_j).

import { gaussian } from '@attnopt/ir';
import { type Matrix, matrix } from '../linalg.js';

/** The m x d projection rows w_i of a Performer spec. */
export function performerProjection(features: number, d: number, seed: number, orthogonal: boolean): Matrix {
  const m = features;
  if (!orthogonal) return matrix(m, d, gaussian(seed, m * d));
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
  return matrix(m, d, w);
}

/** phi(x) for every row of x (n x d): n x m positive features. */
export function performerFeatures(x: Matrix, w: Matrix): Matrix {
  const { rows: n, cols: d } = x;
  const m = w.rows;
  if (w.cols !== d) throw new Error(`performer features: rows of size ${d} against projections of size ${w.cols}`);
  const out = new Float64Array(n * m);
  const norm = 1 / Math.sqrt(m);
  for (let i = 0; i < n; i++) {
    let sq = 0;
    for (let c = 0; c < d; c++) sq += x.data[i * d + c]! ** 2;
    for (let t = 0; t < m; t++) {
      let dot = 0;
      for (let c = 0; c < d; c++) dot += w.data[t * d + c]! * x.data[i * d + c]!;
      out[i * m + t] = norm * Math.exp(dot - sq / 2);
    }
  }
  return matrix(n, m, out);
}

/** Performer attention output (nq x dv) for one head. */
export function performerAttention(
  q: Matrix,
  k: Matrix,
  v: Matrix,
  scale: number,
  features: number,
  seed: number,
  orthogonal: boolean,
): Matrix {
  const d = q.cols;
  const w = performerProjection(features, d, seed, orthogonal);
  const root = Math.sqrt(scale);
  const pq = performerFeatures(matrix(q.rows, d, q.data.map((x) => x * root)), w);
  const pk = performerFeatures(matrix(k.rows, d, k.data.map((x) => x * root)), w);
  const m = w.rows;
  const out = new Float64Array(q.rows * v.cols);
  for (let i = 0; i < q.rows; i++) {
    let den = 0;
    for (let j = 0; j < k.rows; j++) {
      let kij = 0;
      for (let t = 0; t < m; t++) kij += pq.data[i * m + t]! * pk.data[j * m + t]!;
      den += kij;
      for (let c = 0; c < v.cols; c++) out[i * v.cols + c]! += kij * v.data[j * v.cols + c]!;
    }
    for (let c = 0; c < v.cols; c++) out[i * v.cols + c]! /= den;
  }
  return matrix(q.rows, v.cols, out);
}
