// Linformer (arXiv 2006.04768) with seeded random projections, for one head.
//
// E and F are rank x nk with i.i.d. N(0, 1/rank) entries from the stream g = gaussian(seed, 2 * rank * nk)
// of @attnopt/ir: E[r][j] = g[r * nk + j] / sqrt(rank), F[r][j] = g[rank * nk + r * nk + j] / sqrt(rank)
// (so E and F depend on nk). With s the scale:
//   out = softmax(s Q (E K)ᵀ) (F V)

import { gaussian } from '@attnopt/ir';
import { type Matrix, matmul, matmulTransposed, matrix, softmaxRows } from '../linalg.js';

/** The projections E and F (rank x nk) of a Linformer spec. */
export function linformerProjections(rank: number, seed: number, nk: number): { e: Matrix; f: Matrix } {
  const g = gaussian(seed, 2 * rank * nk);
  const sd = 1 / Math.sqrt(rank);
  const e = g.slice(0, rank * nk).map((x) => x * sd);
  const f = g.slice(rank * nk, 2 * rank * nk).map((x) => x * sd);
  return { e: matrix(rank, nk, e), f: matrix(rank, nk, f) };
}

/** Linformer attention output (nq x dv) for one head. */
export function linformerAttention(q: Matrix, k: Matrix, v: Matrix, scale: number, rank: number, seed: number): Matrix {
  const { e, f } = linformerProjections(rank, seed, k.rows);
  const p = softmaxRows(matmulTransposed(q, matmul(e, k)), scale); // nq x rank
  return matmul(p, matmul(f, v));
}
