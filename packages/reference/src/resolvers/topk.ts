// Top-k key blocks per query block (Quest, MoBA): the semantics (block scores, top-k selection and its tie
// rule) live in @attnopt/ir (spec/semantics/topk.ts); this adds the head checks and a cached resolver.

import { type IntervalSet, type TopKBlocks, topkBlocksRows as topkBlocksRowsOf } from '@attnopt/ir';
import { cachedResolver, checkHead, type HeadQK } from './head.js';

/** The kept keys of every query row for one topkBlocks leaf, computed once per query block. */
export function topkBlocksRows(leaf: TopKBlocks, head: HeadQK): IntervalSet[] {
  checkHead(head);
  return topkBlocksRowsOf(leaf, head);
}

/** A resolver for topkBlocks leaves only (see dataLeafResolver for both kinds). */
export function topkBlocksResolver(head: HeadQK): (leaf: TopKBlocks, row: number, dims: { nq: number; nk: number }) => IntervalSet {
  return cachedResolver('topkBlocks', head, topkBlocksRows);
}
