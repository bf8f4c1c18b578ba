// Nystrom attention (Nystromformer, arXiv 2102.03902) for one head, in float64 with an exact pseudo-inverse.
//
// Landmarks: m = min(landmarks, nq, nk); the rows [floor(t n / m), floor((t + 1) n / m)) form segment t
// (t < m, nearly equal contiguous segments) and each landmark is its segment's mean, for Q (n = nq) and K
// (n = nk) separately. With s the scale:
//   out = softmax(s Q K~ᵀ) pinv(softmax(s Q~ K~ᵀ)) softmax(s Q~ Kᵀ) V
// landmarks >= n with nq == nk makes Q~ = Q and K~ = K, and A A⁺ A = A gives exactly dense attention.

import { type Matrix, matmul, matmulTransposed, matrix, pinvProduct, softmaxRows } from '../linalg.js';

/** The m segment means of the rows of x (n x d). */
export function segmentMeans(x: Matrix, m: number): Matrix {
  const { rows: n, cols: d } = x;
  const out = new Float64Array(m * d);
  for (let t = 0; t < m; t++) {
    const lo = Math.floor((t * n) / m);
    const hi = Math.floor(((t + 1) * n) / m);
    for (let i = lo; i < hi; i++) for (let c = 0; c < d; c++) out[t * d + c]! += x.data[i * d + c]!;
    for (let c = 0; c < d; c++) out[t * d + c]! /= hi - lo;
  }
  return matrix(m, d, out);
}

/** Nystrom attention output (nq x dv) for one head. */
export function nystromAttention(q: Matrix, k: Matrix, v: Matrix, scale: number, landmarks: number): Matrix {
  const m = Math.min(landmarks, q.rows, k.rows);
  if (m === 0) return matrix(q.rows, v.cols);
  const ql = segmentMeans(q, m);
  const kl = segmentMeans(k, m);
  const f = softmaxRows(matmulTransposed(q, kl), scale); // nq x m
  const a = softmaxRows(matmulTransposed(ql, kl), scale); // m x m
  const b = softmaxRows(matmulTransposed(ql, k), scale); // m x nk
  return pinvProduct(f, a, matmul(b, v)); // F A⁺ (B V), A⁺ never formed: see pinvProduct
}
