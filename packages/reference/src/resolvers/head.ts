// The data of one (batch, head) that data-dependent leaves are evaluated on: HeadQK (from @attnopt/ir),
// checked against the sizes it claims.

import type { HeadQK, IntervalSet } from '@attnopt/ir';

export type { HeadQK } from '@attnopt/ir';

export function checkHead(head: HeadQK): void {
  if (head.q.length !== head.nq * head.d || head.k.length !== head.nk * head.d) {
    throw new Error(`head data: q needs ${head.nq} x ${head.d} and k ${head.nk} x ${head.d} values`);
  }
}

export function checkDims(what: string, head: HeadQK, dims: { nq: number; nk: number }): void {
  if (dims.nq !== head.nq || dims.nk !== head.nk) {
    throw new Error(`${what}: asked for ${dims.nq} x ${dims.nk} but built from Q, K of ${head.nq} x ${head.nk}`);
  }
}

/** A resolver that computes every row of a leaf once (per distinct leaf) from `rowsOf`, then answers from the cache. */
export function cachedResolver<L>(
  kind: string,
  head: HeadQK,
  rowsOf: (leaf: L, head: HeadQK) => IntervalSet[],
): (leaf: L, row: number, dims: { nq: number; nk: number }) => IntervalSet {
  const cache = new Map<string, IntervalSet[]>();
  return (leaf, row, dims) => {
    checkDims(kind, head, dims);
    const id = JSON.stringify(leaf);
    let rows = cache.get(id);
    if (!rows) cache.set(id, (rows = rowsOf(leaf, head)));
    return rows[row]!;
  };
}
