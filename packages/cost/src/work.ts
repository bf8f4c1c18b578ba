// How many (query, key) pairs a spec keeps per head, and how many a block-tiled kernel computes: counted
// from the spec's row and block queries, never from an n x n mask. Data-dependent leaves (top-k blocks,
// LSH) are counted exactly with a LeafResolver and otherwise by their expected size at the top level.

import { BlockClass, classifyBlocks, keptPairs, type LeafResolver, type MaskDims, type MaskSpec, printSpec } from '@attnopt/ir';

export interface BlockCounts {
  readonly empty: number;
  readonly partial: number;
  readonly full: number;
  /** Σ over partial and full blocks of their (edge-clipped) area: the pairs a tiled kernel computes. */
  readonly area: number;
  /** Σ over query block rows of the keys of their non-empty blocks: what a tiled kernel loads of K (and V). */
  readonly keyLoads: number;
}

/**
 * Pairs kept per head: exact for index specs (O(nq · runs)), expected for unresolved data-dependent leaves; resolved
 * ones on every rowStride-th row (an estimate where rowStride > 1).
 */
export function pairsKept(spec: MaskSpec, dims: MaskDims, resolve?: LeafResolver, rowStride = 1): number {
  if (resolve !== undefined) return keptPairs(spec, dims, resolve, rowStride);
  const expected = expectedPairs(spec, dims);
  if (expected !== undefined) return expected;
  // an index spec's count is a function of the spec and the lengths: the chooser prices the same candidates at
  // the same lengths for every site and head group (O(nq) rows each time)
  const key = `${printSpec(spec)}|${dims.nq}|${dims.nk}|${dims.past ?? 0}`;
  let n = COUNTED.get(key);
  if (n === undefined) {
    if (COUNTED.size >= COUNTED_MAX) COUNTED.clear();
    COUNTED.set(key, (n = keptPairs(spec, dims)));
  }
  return n;
}

/** Kept pairs of index specs already counted, by spec text and lengths (cleared past COUNTED_MAX entries). */
const COUNTED = new Map<string, number>();
const COUNTED_MAX = 4096;

/**
 * Expected kept pairs of a top-level data-dependent leaf without its data:
 * - top-k blocks: each query keeps min(nk, k · block) keys;
 * - LSH chunked: a query sees its own chunk and the one before, per round: min(nk, 2 · chunk · hashes);
 * - LSH unchunked: a key shares a query's bucket in some round with probability 1 - (1 - 1/b)^hashes.
 */
export function expectedPairs(spec: MaskSpec, dims: MaskDims): number | undefined {
  const { nq, nk } = dims;
  switch (spec.kind) {
    case 'topkBlocks':
      return nq * Math.min(nk, spec.k * spec.block);
    case 'lsh':
      if (spec.chunk > 0) return nq * Math.min(nk, 2 * spec.chunk * spec.hashes);
      return nq * nk * (1 - Math.pow(1 - 1 / spec.buckets, spec.hashes));
    default:
      return undefined;
  }
}

/**
 * The block classes of `spec` on a (blockQ x blockK) grid, summed: O((nq / blockQ) · (nk / blockK) + nq · runs).
 * Unresolved data-dependent leaves at the top level count as their expected number of full blocks per row.
 */
export function blockCounts(spec: MaskSpec, blockQ: number, blockK: number, dims: MaskDims, resolve?: LeafResolver): BlockCounts {
  const { nq, nk } = dims;
  const rowsQ = Math.ceil(nq / blockQ);
  const colsK = Math.ceil(nk / blockK);
  if (resolve === undefined && (spec.kind === 'topkBlocks' || spec.kind === 'lsh')) {
    const keysPerRow = (expectedPairs(spec, dims) ?? 0) / Math.max(1, nq);
    const perRow = Math.min(colsK, Math.ceil(keysPerRow / blockK));
    const full = rowsQ * perRow;
    return { empty: rowsQ * colsK - full, partial: 0, full, area: nq * Math.min(nk, perRow * blockK), keyLoads: rowsQ * Math.min(nk, perRow * blockK) };
  }
  const classes = classifyBlocks(spec, blockQ, blockK, dims, resolve);
  let empty = 0;
  let partial = 0;
  let full = 0;
  let area = 0;
  let keyLoads = 0;
  classes.forEach((row, r) => {
    const rows = Math.min(nq, (r + 1) * blockQ) - r * blockQ;
    for (let c = 0; c < row.length; c++) {
      const cls = row[c]!;
      if (cls === BlockClass.Empty) {
        empty++;
        continue;
      }
      if (cls === BlockClass.Full) full++;
      else partial++;
      const cols = Math.min(nk, (c + 1) * blockK) - c * blockK;
      area += rows * cols;
      keyLoads += cols;
    }
  });
  return { empty, partial, full, area, keyLoads };
}
