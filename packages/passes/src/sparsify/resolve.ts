// Data-dependent leaves (top-k key blocks, LSH buckets) resolved from one head's Q and K. Their semantics
// (block scores and top-k selection; LSH rotations, hashing and chunks) are defined once, in @attnopt/ir
// (spec/semantics/topk.ts, lsh.ts), shared with @attnopt/reference's resolvers and every backend.

import { type IntervalSet, type LeafResolver, lshRows, topkBlocksRows } from '@attnopt/ir';
import type { HeadData } from './calibration.js';

/** A LeafResolver for one head's data: each leaf resolved once for every row, then cached. */
export function headResolver(head: HeadData): LeafResolver {
  const cache = new Map<string, IntervalSet[]>();
  return (leaf, row, dims) => {
    if (dims.nq !== head.nq || dims.nk !== head.nk) throw new Error(`${leaf.kind}: asked for ${dims.nq} x ${dims.nk}, data is ${head.nq} x ${head.nk}`);
    const id = JSON.stringify(leaf);
    let rows = cache.get(id);
    if (!rows) cache.set(id, (rows = leaf.kind === 'topkBlocks' ? topkBlocksRows(leaf, head) : lshRows(leaf, head)));
    return rows[row]!;
  };
}
