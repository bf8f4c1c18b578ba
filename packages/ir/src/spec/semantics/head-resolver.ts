// The key sets of data-dependent leaves (top-k key blocks, LSH buckets) on one head's Q and K, as a LeafResolver:
// each leaf resolved by its rules (topk.ts: every row at once; lsh.ts: a row when asked), then answered from the cache.

import type { IntervalSet } from '../interval-set.js';
import type { LeafResolver } from '../mask-query.js';
import type { HeadQK } from './head.js';
import { lshRowKeys } from './lsh.js';
import { topkBlocksRows } from './topk.js';

/**
 * A LeafResolver for one head's data; asking it for other extents than the head's is an error. Top-k leaves are
 * resolved for every row at once; LSH rows as they are asked for (lshRowKeys), each kept once computed.
 */
export function headLeafResolver(head: HeadQK): LeafResolver {
  const cache = new Map<string, (row: number) => IntervalSet>();
  return (leaf, row, dims) => {
    if (dims.nq !== head.nq || dims.nk !== head.nk) throw new Error(`${leaf.kind}: asked for ${dims.nq} x ${dims.nk}, data is ${head.nq} x ${head.nk}`);
    const id = JSON.stringify(leaf);
    let rows = cache.get(id);
    if (!rows) {
      if (leaf.kind === 'topkBlocks') {
        const all = topkBlocksRows(leaf, head);
        rows = (i) => all[i]!;
      } else {
        const keysOf = lshRowKeys(leaf, head);
        const done: (IntervalSet | undefined)[] = new Array(head.nq);
        rows = (i) => (done[i] ??= keysOf(i));
      }
      cache.set(id, rows);
    }
    return rows(row);
  };
}
