// The key sets of data-dependent leaves (top-k key blocks, LSH buckets) on one head's Q and K, as a LeafResolver:
// each leaf resolved once for every row by its rules (topk.ts, lsh.ts), then answered from the cache.

import type { IntervalSet } from '../interval-set.js';
import type { LeafResolver } from '../mask-query.js';
import type { HeadQK } from './head.js';
import { lshRows } from './lsh.js';
import { topkBlocksRows } from './topk.js';

/** A LeafResolver for one head's data; asking it for other extents than the head's is an error. */
export function headLeafResolver(head: HeadQK): LeafResolver {
  const cache = new Map<string, IntervalSet[]>();
  return (leaf, row, dims) => {
    if (dims.nq !== head.nq || dims.nk !== head.nk) throw new Error(`${leaf.kind}: asked for ${dims.nq} x ${dims.nk}, data is ${head.nq} x ${head.nk}`);
    const id = JSON.stringify(leaf);
    let rows = cache.get(id);
    if (!rows) cache.set(id, (rows = leaf.kind === 'topkBlocks' ? topkBlocksRows(leaf, head) : lshRows(leaf, head)));
    return rows[row]!;
  };
}
