// Linformer (arXiv 2006.04768) with seeded random projections: E and F.
//
// E and F are rank x nk with i.i.d. N(0, 1/rank) entries from the stream g = gaussian(seed, 2 * rank * nk)
// (random.ts): E[r][j] = g[r * nk + j] / sqrt(rank), F[r][j] = g[rank * nk + r * nk + j] / sqrt(rank)
// (so E and F depend on nk). With s the scale:
//   out = softmax(s Q (E K)ᵀ) (F V)

import { gaussian } from '../../random.js';

/** The projections E and F (rank x nk, row-major) of a Linformer spec for nk keys. */
export function linformerEF(rank: number, seed: number, nk: number): { e: Float64Array; f: Float64Array } {
  const g = gaussian(seed, 2 * rank * nk);
  const sd = 1 / Math.sqrt(rank);
  const e = g.slice(0, rank * nk).map((x) => x * sd);
  const f = g.slice(rank * nk, 2 * rank * nk).map((x) => x * sd);
  return { e, f };
}
