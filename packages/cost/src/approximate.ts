// Work of the low-rank forms and of the selection step of data-dependent specs (BOUNDS.md, "Cost"):
// low-rank replaces nk by the rank r plus the projections (2 · nk · r · d for each of K and V); LSH adds
// the hashing (2 · n · d · b/2 per round) and a sort; top-k blocks adds the block scores.

import type { LowRankSpec, MaskSpec } from '@attnopt/ir';
import { type OpWork, work } from './ops.js';
import type { Extent } from './shape.js';

/** The kernels of a low-rank form: projections, the attention over r, and for Nystrom the pseudo-inverse. */
export function lowRankOps(spec: LowRankSpec, x: Extent): OpWork[] {
  const { B, H, Hkv, d, dv, nq, nk, E } = x;
  const mm = (what: string, heads: number, m: number, k: number, n: number): OpWork =>
    work('MatMul', what, { flops: 2 * B * heads * m * k * n, bytes: E * B * heads * (m * k + k * n + m * n) });
  const softmax = (what: string, elements: number): OpWork =>
    work('Softmax', what, { softmaxFlops: 5 * elements, softmaxElements: elements, bytes: 2 * E * elements });
  switch (spec.kind) {
    case 'linformer': {
      const r = spec.rank;
      return [
        mm('project K to rank r', Hkv, r, nk, d),
        mm('project V to rank r', Hkv, r, nk, dv),
        mm('scores Q K̃ᵀ', H, nq, d, r),
        softmax('probabilities over r', B * H * nq * r),
        mm('P Ṽ', H, nq, r, dv),
      ];
    }
    case 'performer': {
      const f = spec.features;
      return [
        mm('features φ(Q)', H, nq, d, f),
        mm('features φ(K)', Hkv, nk, d, f),
        work('Exp', 'positive features', { bytes: 2 * E * B * (H * nq + Hkv * nk) * f }),
        mm('φ(K)ᵀ V', Hkv, f, nk, dv),
        mm('φ(Q) (φ(K)ᵀ V)', H, nq, f, dv),
        mm('normalizer φ(Q) Σφ(K)', H, nq, f, 1),
      ];
    }
    case 'nystrom': {
      const m = spec.landmarks;
      const pinv: OpWork[] = [];
      for (let it = 0; it < 6; it++) for (let k = 0; k < 4; k++) pinv.push(mm(`pseudo-inverse iteration ${it + 1}`, H, m, m, m));
      return [
        work('ReduceMean', 'landmarks', { bytes: E * B * (H * nq * d + Hkv * nk * d) }),
        mm('Q K̃ᵀ', H, nq, d, m),
        softmax('F1', B * H * nq * m),
        mm('Q̃ K̃ᵀ', H, m, d, m),
        softmax('A', B * H * m * m),
        mm('Q̃ Kᵀ', H, m, d, nk),
        softmax('F2', B * H * m * nk),
        ...pinv,
        mm('F2 V', H, m, nk, dv),
        mm('A⁺ (F2 V)', H, m, m, dv),
        mm('F1 (A⁺ F2 V)', H, nq, m, dv),
      ];
    }
  }
}

/** The selection work of a top-level data-dependent spec (hashing and sorting, block scores); [] otherwise. */
export function selectionOps(spec: MaskSpec, x: Extent): OpWork[] {
  const { B, H, Hkv, d, dv, nq, nk, E } = x;
  switch (spec.kind) {
    case 'lsh': {
      const n = nq + nk;
      return [
        work('MatMul', `LSH hashing, ${spec.hashes} rounds`, { flops: 2 * B * H * n * d * (spec.buckets / 2) * spec.hashes, bytes: E * B * H * n * d }),
        work('Sort', 'sort by bucket', { otherOps: B * H * spec.hashes * n * Math.log2(Math.max(2, n)), bytes: 2 * 8 * B * H * spec.hashes * n }),
        work('Gather', 'gather sorted Q, K, V', { bytes: 2 * E * B * spec.hashes * (H * nq * d + Hkv * nk * (d + dv)) }),
      ];
    }
    case 'topkBlocks': {
      const blocksK = Math.ceil(nk / spec.block);
      const blocksQ = Math.ceil(nq / spec.block);
      return [
        work('ReduceMax', 'key block min / max', { bytes: 2 * E * B * Hkv * nk * d }),
        work('MatMul', 'block scores', { flops: 4 * B * H * blocksQ * blocksK * d, bytes: E * B * H * (blocksQ + 2 * blocksK) * d }),
        work('TopK', `keep ${spec.k} blocks`, { otherOps: B * H * blocksQ * blocksK * Math.log2(Math.max(2, blocksK)), bytes: E * B * H * blocksQ * blocksK }),
      ];
    }
    default:
      return [];
  }
}
