// Questions a spec answers without materializing its mask: does key j pass for query i, which keys does
// row i keep, how many, and which key blocks of a block row are empty, partial or full.

import {
  contains,
  differenceSets,
  EMPTY_SET,
  fromPoints,
  intersectSets,
  type IntervalSet,
  range,
  size,
  unionSets,
} from './interval-set.js';
import type { Align, DataDependentSpec, MaskSpec } from './spec.js';

/**
 * The extent of one attention call: nq queries against nk keys, `past` of which were cached before
 * this call (used by `past` alignment; 0 when absent).
 */
export interface MaskDims {
  readonly nq: number;
  readonly nk: number;
  readonly past?: number;
}

/**
 * Supplies the kept keys of a data-dependent leaf (top-k blocks, LSH) for query row i. The reference
 * package computes these from Q and K; without one, asking a data-dependent spec is an error.
 */
export type LeafResolver = (leaf: DataDependentSpec, row: number, dims: MaskDims) => IntervalSet;

/** The offset added to query index i before it is compared with key indices. */
export function queryOffset(align: Align, dims: MaskDims): number {
  switch (align) {
    case 'top-left':
      return 0;
    case 'bottom-right':
      return dims.nk - dims.nq;
    case 'past':
      return dims.past ?? 0;
  }
}

function unresolved(leaf: DataDependentSpec): never {
  throw new Error(
    `spec ${leaf.kind} is data-dependent: its key set needs Q and K (pass a LeafResolver, e.g. from @attnopt/reference)`,
  );
}

/** Whether query i keeps key j (0 <= i < nq, 0 <= j < nk): the predicate that defines the spec. */
export function keeps(spec: MaskSpec, i: number, j: number, dims: MaskDims, resolve?: LeafResolver): boolean {
  if (i < 0 || i >= dims.nq || j < 0 || j >= dims.nk) return false;
  switch (spec.kind) {
    case 'dense':
      return true;
    case 'empty':
      return false;
    case 'causal':
      return j <= i + queryOffset(spec.align, dims);
    case 'window': {
      const p = i + queryOffset(spec.align, dims);
      return j >= p - spec.left && j <= p + spec.right;
    }
    case 'dilated': {
      const p = i + queryOffset(spec.align, dims);
      return j >= p - spec.left && j <= p + spec.right && (p - j) % spec.dilation === 0;
    }
    case 'sinks':
      return j < spec.count;
    case 'global':
      return spec.tokens.includes(j) || spec.tokens.includes(i + queryOffset(spec.align, dims));
    case 'blocks': {
      const row = spec.rows[Math.floor(i / spec.blockQ)];
      return row !== undefined && row.includes(Math.floor(j / spec.blockK));
    }
    case 'topkBlocks':
    case 'lsh':
      if (!resolve) return unresolved(spec);
      return contains(resolve(spec, i, dims), j);
    case 'union':
      return spec.parts.some((p) => keeps(p, i, j, dims, resolve));
    case 'intersect':
      return spec.parts.every((p) => keeps(p, i, j, dims, resolve));
    case 'diff':
      return keeps(spec.base, i, j, dims, resolve) && !keeps(spec.minus, i, j, dims, resolve);
  }
}

/** The keys query row i keeps, as sorted disjoint ranges: O(terms + runs), never O(nk) for index specs. */
export function rowKeys(spec: MaskSpec, i: number, dims: MaskDims, resolve?: LeafResolver): IntervalSet {
  const { nk } = dims;
  if (i < 0 || i >= dims.nq) return EMPTY_SET;
  switch (spec.kind) {
    case 'dense':
      return range(0, nk, nk);
    case 'empty':
      return EMPTY_SET;
    case 'causal':
      return range(0, i + queryOffset(spec.align, dims) + 1, nk);
    case 'window': {
      const p = i + queryOffset(spec.align, dims);
      return range(p - spec.left, p + spec.right + 1, nk);
    }
    case 'dilated': {
      const p = i + queryOffset(spec.align, dims);
      const d = spec.dilation;
      const lo = Math.max(0, p - spec.left);
      const hi = Math.min(nk - 1, p + spec.right);
      const points: number[] = [];
      // first j >= lo with (p - j) % d == 0
      for (let j = lo + ((((p - lo) % d) + d) % d); j <= hi; j += d) points.push(j);
      return fromPoints(points);
    }
    case 'sinks':
      return range(0, spec.count, nk);
    case 'global':
      if (spec.tokens.includes(i + queryOffset(spec.align, dims))) return range(0, nk, nk);
      return fromPoints(spec.tokens.filter((t) => t < nk));
    case 'blocks': {
      const row = spec.rows[Math.floor(i / spec.blockQ)];
      if (row === undefined) return EMPTY_SET;
      let out: IntervalSet = EMPTY_SET;
      for (const c of row) out = unionSets(out, range(c * spec.blockK, (c + 1) * spec.blockK, nk));
      return out;
    }
    case 'topkBlocks':
    case 'lsh':
      if (!resolve) return unresolved(spec);
      return resolve(spec, i, dims);
    case 'union':
      return spec.parts.reduce<IntervalSet>((acc, p) => unionSets(acc, rowKeys(p, i, dims, resolve)), EMPTY_SET);
    case 'intersect':
      return spec.parts
        .slice(1)
        .reduce<IntervalSet>((acc, p) => intersectSets(acc, rowKeys(p, i, dims, resolve)), rowKeys(spec.parts[0]!, i, dims, resolve));
    case 'diff':
      return differenceSets(rowKeys(spec.base, i, dims, resolve), rowKeys(spec.minus, i, dims, resolve));
  }
}

/** How many keys query row i keeps. */
export function rowCount(spec: MaskSpec, i: number, dims: MaskDims, resolve?: LeafResolver): number {
  return size(rowKeys(spec, i, dims, resolve));
}

/**
 * Total number of (query, key) pairs kept: the work a sparse kernel does, in O(nq * runs). With rowStride s > 1,
 * an estimate from the rows 0, s, 2s, ... alone, each counted for itself and the s - 1 rows after it.
 */
export function keptPairs(spec: MaskSpec, dims: MaskDims, resolve?: LeafResolver, rowStride = 1): number {
  let n = 0;
  for (let i = 0; i < dims.nq; i += rowStride) n += rowCount(spec, i, dims, resolve) * Math.min(rowStride, dims.nq - i);
  return n;
}

/** A key block of a block row: no pair kept, some kept (mask work needed), or all kept (no mask work). */
export const BlockClass = { Empty: 0, Partial: 1, Full: 2 } as const;
export type BlockClass = (typeof BlockClass)[keyof typeof BlockClass];

/**
 * Classifies every key block of query block `r` (queries [r*blockQ, (r+1)*blockQ) clipped to nq) for
 * blocks of blockK keys. Edge blocks are judged on their clipped extent. Returns one BlockClass per
 * key block, ceil(nk / blockK) entries.
 */
export function classifyBlockRow(
  spec: MaskSpec,
  r: number,
  blockQ: number,
  blockK: number,
  dims: MaskDims,
  resolve?: LeafResolver,
): Uint8Array {
  const nBlocks = Math.ceil(dims.nk / blockK);
  const covered = new Float64Array(nBlocks);
  const i0 = r * blockQ;
  const i1 = Math.min(dims.nq, i0 + blockQ);
  for (let i = i0; i < i1; i++) {
    const set = rowKeys(spec, i, dims, resolve);
    for (let k = 0; k < set.length; k += 2) {
      const lo = set[k]!;
      const hi = set[k + 1]!;
      for (let c = Math.floor(lo / blockK); c * blockK < hi; c++) {
        covered[c]! += Math.min(hi, (c + 1) * blockK) - Math.max(lo, c * blockK);
      }
    }
  }
  const out = new Uint8Array(nBlocks);
  for (let c = 0; c < nBlocks; c++) {
    const area = Math.max(0, i1 - i0) * (Math.min(dims.nk, (c + 1) * blockK) - c * blockK);
    out[c] = covered[c] === 0 ? BlockClass.Empty : covered[c] === area ? BlockClass.Full : BlockClass.Partial;
  }
  return out;
}

/** classifyBlockRow for every query block: ceil(nq / blockQ) rows. */
export function classifyBlocks(
  spec: MaskSpec,
  blockQ: number,
  blockK: number,
  dims: MaskDims,
  resolve?: LeafResolver,
): Uint8Array[] {
  const rows: Uint8Array[] = [];
  for (let r = 0; r * blockQ < dims.nq; r++) rows.push(classifyBlockRow(spec, r, blockQ, blockK, dims, resolve));
  return rows;
}
