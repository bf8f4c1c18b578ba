// The run-time certificate of a guarded site (the guarded lowerings of @attnopt/passes, guarded-certificate.ts;
// the guarded kernels do the same work in one pass), as kernels over its tensors, so that a guarded form is
// priced with its certificate and not as its sparse form alone:
//   key block summaries   K [B,H,nk,d]: Pad, ReduceMin, ReduceMax, the ball's distances (Sub, Mul, ReduceSum,
//                         ReduceMax, Sqrt)                                                  ~7 passes over K
//                         (guard.summaries 'box': no distances, one sum (a NaN check)     ~4 passes over K)
//   |q| and ||q||         Abs, ReduceL2 (box alone: |q| . a, a MatMul by one column)        2 passes over q
//   score bound U         MatMul(q, centres) and MatMul(|q|, half-widths): 2 · 2 · B·H·nq·d·nKB FLOPs
//   per (row, block)      ball width, Min, Add, dropped counts, log count, terms, shift by log Z_S, Exp, sum
//                                                                ~10 passes over [B,H,nq,nKB] (box alone: ~8)
//   kept mass             ReduceMax of the kept logits and of their probabilities: 2 passes over the sparse scores
//                         (guard.logZ 'max-logit': the logits' alone, 1 pass)
//   V's range and rows    ReduceMin / ReduceMax over V and its sum (a NaN check); per row (log B, log Z_S,
//                         Sigmoid, bound, flags) ~16 passes over [B,H,nq]; NonZero, the fallback gathers on no row
//   and about 150 nodes of index arithmetic, each the profile's per-op overhead (a fused kernel runs all of it as
//   three steps: the summaries, the bound, the per-row certificate).
// The fallback rows' dense recomputation is not here: the chooser adds it at the predicted fallback rate.

import type { AttentionParams } from '@attnopt/ir';
import { type OpWork, timeOp, work } from './ops.js';
import type { TargetProfile } from './profile.js';
import { type CallDims, extentOf } from './shape.js';

/** The certificate's kernels for a call of `dims` (summaries of `blockSize` keys, `scoresPerQuery` kept scores). */
export function guardCertificateOps(p: AttentionParams, dims: CallDims, blockSize: number, scoresPerQuery: number, fused = false): OpWork[] {
  const x = extentOf(p, dims, 4);
  const { B, H, d, dv, nq, nk } = x;
  const BH = B * H;
  const nKB = Math.ceil(nk / blockSize);
  const F = 4; // the certificate runs in float32
  if (fused) {
    return [
      work('Reduce', 'key summaries', { bytes: 2 * F * BH * nk * d }),
      work('MatMul', 'U per (row, block)', { flops: 4 * BH * nq * d * nKB, bytes: F * BH * (nq * d + 2 * nKB * d) }),
      work('Add', 'certificate per row', { bytes: F * BH * nq * (nKB + scoresPerQuery) }),
    ];
  }
  const ops: OpWork[] = [];
  const ball = p.guard?.summaries !== 'box';
  for (const what of ['pad K to blocks', 'block minima', 'block maxima', ...(ball ? ['K - centre', 'squares', 'distances', 'radius'] : ['sum (NaN check)'])]) {
    ops.push(work('Reduce', `key summaries: ${what}`, { bytes: 2 * F * BH * nk * d }));
  }
  ops.push(work('Add', '|q|', { bytes: 2 * F * BH * nq * d }), work('Reduce', ball ? '||q||' : '|q| . a', { bytes: F * BH * nq * d }));
  ops.push(work('MatMul', 'U: q · centres', { flops: 2 * BH * nq * d * nKB, bytes: F * BH * (nq * d + nKB * d + nq * nKB) }));
  ops.push(work('MatMul', 'U: |q| · half-widths', { flops: 2 * BH * nq * d * nKB, bytes: F * BH * (nq * d + nKB * d + nq * nKB) }));
  for (let k = 0; k < (ball ? 10 : 8); k++) ops.push(work('Add', 'certificate per (row, block)', { bytes: 3 * F * BH * nq * nKB }));
  ops.push(work('ReduceMax', 'largest kept logit', { bytes: F * BH * nq * (scoresPerQuery + 1) }));
  if (p.guard?.logZ !== 'max-logit') ops.push(work('ReduceMax', 'its probability', { bytes: F * BH * nq * (scoresPerQuery + 1) }));
  ops.push(work('ReduceMax', "V's range and NaN check", { bytes: 3 * F * BH * nk * dv }));
  for (let k = 0; k < 16; k++) ops.push(work('Mul', 'certificate per row', { bytes: 3 * F * BH * nq }));
  for (let k = 0; k < 150; k++) ops.push(work('Shape/Gather', 'certificate index arithmetic', { bytes: 64 }));
  return ops;
}

/** Predicted seconds of the certificate on `target` (see guardCertificateOps). */
export function guardCertificateCost(p: AttentionParams, dims: CallDims, target: TargetProfile, blockSize: number, scoresPerQuery: number): number {
  return guardCertificateOps(p, dims, blockSize, scoresPerQuery, target.execution !== 'unfused').reduce((t, w) => t + timeOp(target, w).seconds, 0);
}
