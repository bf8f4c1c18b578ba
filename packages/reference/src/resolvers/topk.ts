// Top-k key blocks per query block (Quest, MoBA): the semantics (block scores, top-k selection and its tie
// rule) live in @attnopt/ir (spec/semantics/topk.ts); this adds the head checks and a cached resolver.

import { type IntervalSet, type TopKBlocks, topkBlocksRows as topkBlocksRowsOf } from '@attnopt/ir';
import { checkDims, checkHead, type HeadQK } from './head.js';

/** The kept keys of every query row for one topkBlocks leaf, computed once per query block. */
export function topkBlocksRows(leaf: TopKBlocks, head: HeadQK): IntervalSet[] {
  checkHead(head);
  return topkBlocksRowsOf(leaf, head);
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
