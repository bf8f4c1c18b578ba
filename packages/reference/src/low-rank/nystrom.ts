// Nystrom attention (Nystromformer, arXiv 2102.03902) for one head: the semantics of @attnopt/ir
// (spec/semantics/nystrom.ts: segment-mean landmarks, exact SVD pseudo-inverse) on reference matrices.
//   out = softmax(s Q K~ᵀ) pinv(softmax(s Q~ K~ᵀ)) softmax(s Q~ Kᵀ) V,   m = min(landmarks, nq, nk)

import { nystromOutput, segmentMeans as irSegmentMeans } from '@attnopt/ir';
import { type Matrix, matrix } from '../linalg.js';

/** The m segment means of the rows of x (n x d). */
export function segmentMeans(x: Matrix, m: number): Matrix {
  return irSegmentMeans(x, m);
}

/** Nystrom attention output (nq x dv) for one head. */
export function nystromAttention(q: Matrix, k: Matrix, v: Matrix, scale: number, landmarks: number): Matrix {
  if (q.cols !== k.cols || k.rows !== v.rows) throw new Error(`nystrom: Q ${q.rows} x ${q.cols}, K ${k.rows} x ${k.cols}, V ${v.rows} x ${v.cols} do not fit`);
  const out = nystromOutput({ q: q.data, k: k.data, v: v.data, nq: q.rows, nk: k.rows, d: q.cols, dv: v.cols, scale }, landmarks);
  return matrix(q.rows, v.cols, out);
}
