// Top-k key blocks per query block (Quest arXiv 2406.10774, MoBA): the semantics every backend reproduces.
//
// For a leaf topkBlocks(block, k, score) on Q (nq x d) and K (nk x d) of one head:
// - query block r holds queries [r * block, (r + 1) * block) clipped to nq; key block c holds keys
//   [c * block, (c + 1) * block) clipped to nk; there are ceil(nk / block) key blocks;
// - each key block gets a score against the query block:
//     quest: max over the block's queries i of  scale * sum_d max(q_id * kmin_cd, q_id * kmax_cd),
//            kmin / kmax the per-dimension min / max over the block's keys (Quest's upper bound of
//            scale * q . k over the block);
//     mean:  scale * mean_i(q_i) . mean_j(k_j) over the block's queries and keys (MoBA);
// - the k key blocks of highest score are kept, ties broken towards the LOWER block index; a NaN score
//   ranks below every number; when k >= the number of blocks every block is kept;
// - every query of the block keeps every key of its kept blocks.
// - with causal = align (what sparsify writes on a causal site: causal(align) ∩ topkBlocks(.., causal=align)),
//   key block c scores -inf against query block r when its first key lies after the last query of the block can
//   see: c * block > min(nq, (r + 1) * block) - 1 + offset, offset 0 for top-left and nk - nq for bottom-right and
//   past (past: this call's keys as many as its queries, as on a self-attention step with a KV cache). Those
//   blocks are kept only when fewer than k blocks are visible, and the causal cut then removes them.
// Without `causal`, every key block is ranked, future ones included, and the cut of intersect(causal, topkBlocks)
// removes the future keys of the kept blocks afterwards: a query block may spend some of its k on blocks it cannot
// see.

import { fromRanges, type IntervalSet } from '../interval-set.js';
import type { TopKBlocks } from '../spec.js';
import type { HeadQK } from './head.js';

/** Per key block c and dimension t (index c * d + t): min, max and mean of the block's keys. */
export interface KeyBlockStats {
  readonly nBlocks: number;
  readonly kmin: Float64Array;
  readonly kmax: Float64Array;
  readonly kmean: Float64Array;
}

/** The per-dimension min, max and mean of every key block of k (nk x d), blocks of `block` keys. */
export function keyBlockStats(block: number, k: Float64Array, nk: number, d: number): KeyBlockStats {
  const nBlocks = Math.ceil(nk / block);
  const kmin = new Float64Array(nBlocks * d).fill(Infinity);
  const kmax = new Float64Array(nBlocks * d).fill(-Infinity);
  const kmean = new Float64Array(nBlocks * d);
  for (let j = 0; j < nk; j++) {
    const c = Math.floor(j / block);
    for (let t = 0; t < d; t++) {
      const x = k[j * d + t]!;
      kmin[c * d + t] = Math.min(kmin[c * d + t]!, x);
      kmax[c * d + t] = Math.max(kmax[c * d + t]!, x);
      kmean[c * d + t]! += x;
    }
  }
  for (let c = 0; c < nBlocks; c++) {
    const cnt = Math.min(nk, (c + 1) * block) - c * block;
    for (let t = 0; t < d; t++) kmean[c * d + t]! /= cnt;
  }
  return { nBlocks, kmin, kmax, kmean };
}

/** The score of every key block against query block r, from the key blocks' stats. */
export function queryBlockScores(leaf: TopKBlocks, head: HeadQK, r: number, stats: KeyBlockStats): Float64Array {
  const { q, nq, d, scale } = head;
  const { nBlocks, kmin, kmax, kmean } = stats;
  const i0 = r * leaf.block;
  const i1 = Math.min(nq, i0 + leaf.block);
  const scores = new Float64Array(nBlocks);
  const visible = leaf.causal === undefined ? nBlocks : lastVisibleBlock(leaf, head, r) + 1;
  for (let c = 0; c < nBlocks; c++) {
    if (c >= visible) scores[c] = -Infinity;
    else if (leaf.score === 'quest') {
      let best = -Infinity;
      for (let i = i0; i < i1; i++) {
        let s = 0;
        for (let t = 0; t < d; t++) {
          const x = q[i * d + t]!;
          s += Math.max(x * kmin[c * d + t]!, x * kmax[c * d + t]!);
        }
        best = Math.max(best, scale * s);
      }
      scores[c] = best;
    } else {
      let s = 0;
      for (let t = 0; t < d; t++) {
        let qm = 0;
        for (let i = i0; i < i1; i++) qm += q[i * d + t]!;
        s += (qm / (i1 - i0)) * kmean[c * d + t]!;
      }
      scores[c] = scale * s;
    }
  }
  return scores;
}

/** The last key block a query of block r can see under the leaf's causal ranking (may be < 0 or >= the block count). */
export function lastVisibleBlock(leaf: TopKBlocks, head: { readonly nq: number; readonly nk: number }, r: number): number {
  const offset = leaf.causal === undefined || leaf.causal === 'top-left' ? 0 : head.nk - head.nq;
  const lastQuery = Math.min(head.nq, (r + 1) * leaf.block) - 1;
  return Math.floor((lastQuery + offset) / leaf.block);
}

/** The score of every key block against query block r. */
export function blockScores(leaf: TopKBlocks, head: HeadQK, r: number): Float64Array {
  return queryBlockScores(leaf, head, r, keyBlockStats(leaf.block, head.k, head.nk, head.d));
}

/**
 * The indices of the k highest scores, in increasing order: higher score first, NaN after every number,
 * equal scores by lower index; every index when k >= scores.length.
 */
export function topkSelect(scores: Float64Array, k: number): number[] {
  const order = [...scores.keys()].sort((a, b) => {
    const sa = scores[a]!;
    const sb = scores[b]!;
    if (Number.isNaN(sa) || Number.isNaN(sb)) return Number.isNaN(sa) === Number.isNaN(sb) ? a - b : Number.isNaN(sa) ? 1 : -1;
    return sa > sb ? -1 : sa < sb ? 1 : a - b;
  });
  return order.slice(0, k).sort((a, b) => a - b);
}

/** The kept key blocks of query block r, in increasing order. */
export function topkBlockIndices(leaf: TopKBlocks, head: HeadQK, r: number): number[] {
  return topkSelect(blockScores(leaf, head, r), leaf.k);
}

/** The kept keys of every query row for one topkBlocks leaf, computed once per query block. */
export function topkBlocksRows(leaf: TopKBlocks, head: HeadQK): IntervalSet[] {
  const { nq, nk } = head;
  const B = leaf.block;
  const stats = keyBlockStats(B, head.k, nk, head.d);
  const rows: IntervalSet[] = [];
  for (let r = 0; r * B < nq; r++) {
    const kept = topkSelect(queryBlockScores(leaf, head, r, stats), leaf.k);
    const set = fromRanges(kept.map((c) => [c * B, Math.min(nk, (c + 1) * B)] as const));
    for (let i = r * B; i < Math.min(nq, (r + 1) * B); i++) rows.push(set);
  }
  return rows;
}
