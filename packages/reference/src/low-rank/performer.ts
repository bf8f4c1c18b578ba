// Performer FAVOR+ positive random features (arXiv 2009.14794, Lemma 2; BOUNDS.md (d)), for one head.
//
// Feature map of x in R^d with m features and projection rows w_1..w_m:
//   phi(x) = m^(-1/2) exp(-|x|^2 / 2) [exp(w_i . x)]_{i=1..m},  E[phi(x) . phi(y)] = exp(x . y)
// applied to x = sqrt(scale) * q and x = sqrt(scale) * k, so phi(q~) . phi(k~) estimates exp(scale q . k).
// The rows w_i are drawn from the seed as defined by performerW in @attnopt/ir (spec/semantics/performer-features.ts).
// Output: out_i = sum_j (phi(q_i) . phi(k_j)) v_j / sum_j phi(q_i) . phi(k_j).

import { performerW } from '@attnopt/ir';
import { type Matrix, matrix } from '../linalg.js';

/** The m x d projection rows w_i of a Performer spec (drawn as @attnopt/ir's performerW defines). */
export function performerProjection(features: number, d: number, seed: number, orthogonal: boolean): Matrix {
  return matrix(features, d, performerW(features, d, seed, orthogonal));
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
