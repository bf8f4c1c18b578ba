// One LeafResolver for every data-dependent leaf, built from Q and K of one (batch, head).

import type { LeafResolver } from '@attnopt/ir';
import type { HeadQK } from './head.js';
import { lshResolver } from './lsh.js';
import { topkBlocksResolver } from './topk.js';

/** Resolves topkBlocks and lsh leaves from the head's Q and K (each leaf computed once, then cached). */
export function dataLeafResolver(head: HeadQK): LeafResolver {
  const topk = topkBlocksResolver(head);
  const lsh = lshResolver(head);
  return (leaf, row, dims) => (leaf.kind === 'topkBlocks' ? topk(leaf, row, dims) : lsh(leaf, row, dims));
}

export type { HeadQK } from './head.js';
export { topkBlocksResolver, topkBlocksRows } from './topk.js';
export { lshResolver, lshRows } from './lsh.js';
// The semantics themselves, from @attnopt/ir (public names of this package since before they moved).
export { blockScores, topkBlockIndices, lshHashes, lshRotations } from '@attnopt/ir';
