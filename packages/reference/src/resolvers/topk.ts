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

import { intervals, type IntervalSet, type TopKBlocks } from '@attnopt/ir';
import { checkDims, checkHead, type HeadQK } from './head.js';

/** The score of every key block against query block r. */
export function blockScores(leaf: TopKBlocks, head: HeadQK, r: number): Float64Array {
  const { q, k, nq, nk, d, scale } = head;
  const B = leaf.block;
  const i0 = r * B;
  const i1 = Math.min(nq, i0 + B);
  const nBlocks = Math.ceil(nk / B);
  const out = new Float64Array(nBlocks);
  for (let c = 0; c < nBlocks; c++) {
    const j0 = c * B;
    const j1 = Math.min(nk, j0 + B);
    if (leaf.score === 'quest') {
      const kmin = new Float64Array(d).fill(Infinity);
      const kmax = new Float64Array(d).fill(-Infinity);
      for (let j = j0; j < j1; j++) {
        for (let t = 0; t < d; t++) {
          kmin[t] = Math.min(kmin[t]!, k[j * d + t]!);
          kmax[t] = Math.max(kmax[t]!, k[j * d + t]!);
        }
      }
      let best = -Infinity;
      for (let i = i0; i < i1; i++) {
        let s = 0;
        for (let t = 0; t < d; t++) {
          const x = q[i * d + t]!;
          s += Math.max(x * kmin[t]!, x * kmax[t]!);
        }
        best = Math.max(best, scale * s);
      }
      out[c] = best;
    } else {
      let s = 0;
      for (let t = 0; t < d; t++) {
        let qm = 0;
        for (let i = i0; i < i1; i++) qm += q[i * d + t]!;
        let km = 0;
        for (let j = j0; j < j1; j++) km += k[j * d + t]!;
        s += (qm / (i1 - i0)) * (km / (j1 - j0));
      }
      out[c] = scale * s;
    }
  }
  return out;
}

/** The kept key blocks of query block r, in increasing order. */
export function topkBlockIndices(leaf: TopKBlocks, head: HeadQK, r: number): number[] {
  const scores = blockScores(leaf, head, r);
  // Higher score first; NaN after every number; equal scores by lower block index.
  const order = [...scores.keys()].sort((a, b) => {
    const sa = scores[a]!;
    const sb = scores[b]!;
    if (Number.isNaN(sa) || Number.isNaN(sb)) return Number.isNaN(sa) === Number.isNaN(sb) ? a - b : Number.isNaN(sa) ? 1 : -1;
    return sa > sb ? -1 : sa < sb ? 1 : a - b;
  });
  return order.slice(0, leaf.k).sort((a, b) => a - b);
}

/** The kept keys of every query row for one topkBlocks leaf, computed once per query block. */
export function topkBlocksRows(leaf: TopKBlocks, head: HeadQK): IntervalSet[] {
  checkHead(head);
  const rows: IntervalSet[] = [];
  const B = leaf.block;
  for (let r = 0; r * B < head.nq; r++) {
    const set = intervals.fromRanges(
      topkBlockIndices(leaf, head, r).map((c) => [c * B, Math.min(head.nk, (c + 1) * B)] as const),
    );
    for (let i = r * B; i < Math.min(head.nq, (r + 1) * B); i++) rows.push(set);
  }
  return rows;
}

/** A resolver for topkBlocks leaves only (see dataLeafResolver for both kinds). */
export function topkBlocksResolver(head: HeadQK): (leaf: TopKBlocks, row: number, dims: { nq: number; nk: number }) => IntervalSet {
  const cache = new Map<string, IntervalSet[]>();
  return (leaf, row, dims) => {
    checkDims('topkBlocks', head, dims);
    const id = JSON.stringify(leaf);
    let rows = cache.get(id);
    if (!rows) cache.set(id, (rows = topkBlocksRows(leaf, head)));
    return rows[row]!;
  };
}
