// Linformer (arXiv 2006.04768) with seeded random projections, for one head.
//
// E and F (rank x nk, i.i.d. N(0, 1/rank), depending on nk) are drawn from the seed as defined by
// linformerEF in @attnopt/ir (spec/semantics/linformer.ts). With s the scale:
//   out = softmax(s Q (E K)ᵀ) (F V)

import { linformerEF } from '@attnopt/ir';
import { type Matrix, matmul, matmulTransposed, matrix, softmaxRows } from '../linalg.js';

/** The projections E and F (rank x nk) of a Linformer spec. */
export function linformerProjections(rank: number, seed: number, nk: number): { e: Matrix; f: Matrix } {
  const { e, f } = linformerEF(rank, seed, nk);
  return { e: matrix(rank, nk, e), f: matrix(rank, nk, f) };
}

/** Linformer attention output (nq x dv) for one head. */
export function linformerAttention(q: Matrix, k: Matrix, v: Matrix, scale: number, rank: number, seed: number): Matrix {
  const { e, f } = linformerProjections(rank, seed, k.rows);
  const p = softmaxRows(matmulTransposed(q, matmul(e, k)), scale); // nq x rank
  return matmul(p, matmul(f, v));
}
