// Evaluating low-rank candidates (Nystrom, Linformer, Performer) on one head of calibration data, in float64.
// These forms replace the softmax: they carry no certificate (BOUNDS.md (c), (d)), so their error is
// measured on the calibration data against the site's own (baseline) output and reported, never assumed.
// The outputs follow the reference's definitions exactly, with the seeded draws of @attnopt/ir:
//   linformer(r, seed): out = softmax(s Q (E K)ᵀ) (F V), E, F = linformerEF(r, seed, nk)       (r x nk)
//   performer(m, seed): phi(x) = m^-1/2 exp(W x - |x|²/2) on x = sqrt(s) q, sqrt(s) k, W = performerW(m, d, seed, orth)
//                       out_i = sum_j (phi(q_i) . phi(k_j)) v_j / sum_j phi(q_i) . phi(k_j)
//   nystrom(m):         out = softmax(s Q K~ᵀ) pinv(softmax(s Q~ K~ᵀ)) softmax(s Q~ Kᵀ) V, segment-mean landmarks
//                       Q~, K~ and the exact SVD pseudo-inverse of @attnopt/ir (nystromOutput)
// Like the reference, no form applies the site's mask, bias or softcap: the measured error includes that.

import {
  type LeafResolver,
  type Linformer,
  linformerEF,
  type MaskDims,
  type MaskSpec,
  type Nystrom,
  nystromOutput,
  type Performer,
  performerW,
  rowKeys,
  softmaxInPlace,
} from '@attnopt/ir';
import type { HeadData } from './calibration.js';
import { type CandidateStats, scoreRow } from './evaluate.js';

/** The low-rank forms sparsify can evaluate. */
export type EvaluableLowRank = Nystrom | Linformer | Performer;

/** Stats of a low-rank candidate before any row: no certificate (bound Infinity), no dropped mass (NaN). */
export function emptyLowRankStats(): CandidateStats {
  return { bound: Infinity, measuredError: 0, measuredRows: 0, rows: 0, maxDroppedMass: NaN, fallbackRows: NaN, rowIds: new Set(), fallbackIds: new Set(), maxCertifiedMass: NaN, ballOnlyRows: 0, exactLogZRows: 0, exactLogZBoxRows: 0, fitBound: 0, heldOut: [] };
}

/** The site's own output (nq x dv, row-major) on one head: softmax over the baseline's keys, bias and softcap applied. */
export function baselineOutput(head: HeadData, baseline: MaskSpec, resolve: LeafResolver): Float64Array {
  const { nq, nk, dv, v } = head;
  const dims: MaskDims = { nq, nk, past: head.past ?? 0 };
  const out = new Float64Array(nq * dv);
  const p = new Float64Array(nk);
  const bias = head.biasRow ? new Float64Array(nk) : undefined;
  for (let i = 0; i < nq; i++) {
    const keys = rowKeys(baseline, i, dims, resolve);
    softmaxInPlace(scoreRow(head, i, keys, p, bias));
    for (let t = 0; t < keys.length; t += 2) {
      for (let j = keys[t]!; j < keys[t + 1]!; j++) {
        const pj = p[j]!;
        if (pj === 0) continue;
        for (let c = 0; c < dv; c++) out[i * dv + c]! += pj * v[j * dv + c]!;
      }
    }
  }
  return out;
}

/** Linformer output (nq x dv) on one head: softmax(s Q (E K)ᵀ) (F V). */
export function linformerOutput(head: HeadData, spec: Linformer): Float64Array {
  const { q, k, v, nq, nk, d, dv, scale } = head;
  const r = spec.rank;
  const { e, f } = linformerEF(r, spec.seed, nk);
  const ek = new Float64Array(r * d);
  const fv = new Float64Array(r * dv);
  for (let t = 0; t < r; t++) {
    for (let c = 0; c < d; c++) {
      let s = 0;
      for (let j = 0; j < nk; j++) s += e[t * nk + j]! * k[j * d + c]!;
      ek[t * d + c] = s;
    }
    for (let c = 0; c < dv; c++) {
      let s = 0;
      for (let j = 0; j < nk; j++) s += f[t * nk + j]! * v[j * dv + c]!;
      fv[t * dv + c] = s;
    }
  }
  const out = new Float64Array(nq * dv);
  const row = new Float64Array(r);
  for (let i = 0; i < nq; i++) {
    for (let t = 0; t < r; t++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += q[i * d + c]! * ek[t * d + c]!;
      row[t] = scale * s;
    }
    softmaxInPlace(row);
    for (let t = 0; t < r; t++) {
      const pt = row[t]!;
      for (let c = 0; c < dv; c++) out[i * dv + c]! += pt * fv[t * dv + c]!;
    }
  }
  return out;
}

/** phi of every row of x (n x d), pre-scaled by `root`: n x m positive features. */
function features(x: Float64Array, n: number, d: number, w: Float64Array, m: number, root: number): Float64Array {
  const out = new Float64Array(n * m);
  const norm = 1 / Math.sqrt(m);
  const xi = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    let sq = 0;
    for (let c = 0; c < d; c++) {
      xi[c] = x[i * d + c]! * root;
      sq += xi[c]! ** 2;
    }
    for (let t = 0; t < m; t++) {
      let dot = 0;
      for (let c = 0; c < d; c++) dot += w[t * d + c]! * xi[c]!;
      out[i * m + t] = norm * Math.exp(dot - sq / 2);
    }
  }
  return out;
}

/** Performer FAVOR+ output (nq x dv) on one head. Needs scale >= 0 (sqrt(scale) pre-scales q and k). */
export function performerOutput(head: HeadData, spec: Performer): Float64Array {
  const { q, k, v, nq, nk, d, dv, scale } = head;
  if (!(scale >= 0)) throw new Error(`sparsify: performer needs scale >= 0, got ${scale}`);
  const m = spec.features;
  const w = performerW(m, d, spec.seed, spec.orthogonal);
  const root = Math.sqrt(scale);
  const pq = features(q, nq, d, w, m, root);
  const pk = features(k, nk, d, w, m, root);
  // phi(K)ᵀ V (m x dv) and phi(K)ᵀ 1 (m): out_i = phi(q_i) (phi(K)ᵀ V) / phi(q_i) . (phi(K)ᵀ 1)
  const kv = new Float64Array(m * dv);
  const ksum = new Float64Array(m);
  for (let j = 0; j < nk; j++) {
    for (let t = 0; t < m; t++) {
      const x = pk[j * m + t]!;
      ksum[t]! += x;
      for (let c = 0; c < dv; c++) kv[t * dv + c]! += x * v[j * dv + c]!;
    }
  }
  const out = new Float64Array(nq * dv);
  for (let i = 0; i < nq; i++) {
    let den = 0;
    for (let t = 0; t < m; t++) {
      const x = pq[i * m + t]!;
      den += x * ksum[t]!;
      for (let c = 0; c < dv; c++) out[i * dv + c]! += x * kv[t * dv + c]!;
    }
    for (let c = 0; c < dv; c++) out[i * dv + c]! /= den;
  }
  return out;
}

/** Nystrom output (nq x dv) on one head: the semantics of @attnopt/ir, min(landmarks, nq, nk) landmarks. */
export function nystromHeadOutput(head: HeadData, spec: Nystrom): Float64Array {
  return nystromOutput(head, spec.landmarks);
}

/** The low-rank output (nq x dv) of `spec` on one head. */
export function lowRankOutput(head: HeadData, spec: EvaluableLowRank): Float64Array {
  switch (spec.kind) {
    case 'nystrom':
      return nystromHeadOutput(head, spec);
    case 'linformer':
      return linformerOutput(head, spec);
    case 'performer':
      return performerOutput(head, spec);
  }
}

/**
 * Measures `forms` on one head against the baseline's output, updating `stats` (one entry per form, made by
 * emptyLowRankStats, accumulated across heads and samples by the caller): every row is measured.
 * `baseOut` is baselineOutput(head, ...) when the caller already has it.
 */
export function evaluateLowRankHead(
  head: HeadData,
  baseline: MaskSpec,
  forms: readonly EvaluableLowRank[],
  stats: CandidateStats[],
  resolve: LeafResolver,
  baseOut?: Float64Array,
  heldOut?: Uint8Array,
): void {
  if (forms.length === 0) return;
  const o = baseOut ?? baselineOutput(head, baseline, resolve);
  const dv = o.length / head.nq;
  forms.forEach((form, fi) => {
    const st = stats[fi]!;
    const y = lowRankOutput(head, form);
    let err = 0;
    for (let i = 0; i < head.nq; i++) {
      let row = 0;
      for (let x = i * dv; x < (i + 1) * dv; x++) {
        const e = Math.abs(y[x]! - o[x]!);
        // a non-finite output (overflowed features) is an unbounded error, not a skipped one
        row = Number.isNaN(e) ? Infinity : Math.max(row, e);
      }
      err = Math.max(err, row);
      if (heldOut?.[i] === 1) st.heldOut.push(row);
      else st.fitBound = Math.max(st.fitBound, row);
    }
    st.rows += head.nq;
    st.measuredRows += head.nq;
    st.measuredError = Math.max(st.measuredError, err);
  });
}
