// Host side of the guarded kernels: the key segments that carry summaries, the dropped segments of each
// query block, and the summaries themselves (built once per call, O(n d)).
//
// Segments are the key blocks of `block` keys, also split at the spec's row-independent keys (keySegmentBounds
// of @attnopt/ir, shared with the WGSL backend).
// For query rows i0 .. i1 - 1 the dropped keys of row i are D_i = modelMask(i) \ spec(i) below `valid`; an
// entry names a segment that meets some D_i, with count = max_i |D_i ∩ segment| and the row range [lo, hi)
// of the rows whose D_i meets it.

import { intervals, type IntervalSet, keySegmentBounds, type LeafResolver, type MaskDims, type MaskSpec, rowKeys } from '@attnopt/ir';
import { segmentFloats, segmentOffsets, SUMMARY_WIDENING } from './guard-shape.js';

/** Segment boundaries over [0, valid): starts[k] .. starts[k + 1]. */
export function keySegments(spec: MaskSpec, valid: number, block: number): Int32Array {
  return Int32Array.from(keySegmentBounds(spec, valid, block));
}

export interface DroppedEntry {
  readonly segment: number;
  readonly count: number;
  readonly rowLo: number;
  readonly rowHi: number;
}

/** The dropped segments of query rows i0 .. i1 - 1 (rows relative to i0 in the result). */
export function droppedEntries(
  spec: MaskSpec,
  modelMask: MaskSpec,
  i0: number,
  i1: number,
  dims: MaskDims,
  valid: number,
  starts: Int32Array,
  resolve?: LeafResolver,
): DroppedEntry[] {
  const nSeg = starts.length - 1;
  const count = new Int32Array(nSeg);
  const lo = new Int32Array(nSeg).fill(-1);
  const hi = new Int32Array(nSeg);
  const rowCount = new Int32Array(nSeg);
  const touched: number[] = [];
  const below = intervals.range(0, valid, dims.nk);
  for (let i = i0; i < i1; i++) {
    const dropped: IntervalSet = intervals.intersectSets(intervals.differenceSets(rowKeys(modelMask, i, dims), rowKeys(spec, i, dims, resolve)), below);
    const rowTouched: number[] = [];
    for (let e = 0; e < dropped.length; e += 2) {
      const a = dropped[e]!;
      const z = dropped[e + 1]!;
      let k = upperBound(starts, a) - 1;
      for (; k < nSeg && starts[k]! < z; k++) {
        const n = Math.min(z, starts[k + 1]!) - Math.max(a, starts[k]!);
        if (n <= 0) continue;
        if (rowCount[k] === 0) rowTouched.push(k);
        rowCount[k] += n;
      }
    }
    for (const k of rowTouched) {
      if (lo[k] < 0) {
        lo[k] = i - i0;
        touched.push(k);
      }
      hi[k] = i - i0 + 1;
      if (rowCount[k]! > count[k]!) count[k] = rowCount[k]!;
      rowCount[k] = 0;
    }
  }
  touched.sort((a, b) => a - b);
  return touched.map((k) => ({ segment: k, count: count[k]!, rowLo: lo[k]!, rowHi: hi[k]! }));
}

/** First index with starts[index] > x. */
function upperBound(starts: Int32Array, x: number): number {
  let a = 0;
  let b = starts.length;
  while (a < b) {
    const mid = (a + b) >> 1;
    if (starts[mid]! <= x) a = mid + 1;
    else b = mid;
  }
  return a;
}

/**
 * Writes the summary record of keys j0 .. j1 - 1 at f32 index `out` of F (guard-shape.ts): per channel the box
 * centre c = (lo + hi) / 2 and the half-width max(hi - c, c - lo), the largest distance of a key from c (radius)
 * and the largest key norm (the last three rounded up by SUMMARY_WIDENING, so the float32 box and ball still hold
 * every key). `row(j)` is the f32 index of key j's first channel.
 */
export function writeSegmentSummary(F: Float32Array, row: (j: number) => number, j0: number, j1: number, d: number, dPad: number, out: number): void {
  const at = segmentOffsets(dPad);
  F.fill(0, out, out + segmentFloats(dPad));
  for (let c = 0; c < d; c++) {
    let lo = F[row(j0) + c]!;
    let hi = lo;
    for (let j = j0 + 1; j < j1; j++) {
      const x = F[row(j) + c]!;
      // NaN propagates (a NaN key leaves the segment with no bound)
      lo = x < lo || Number.isNaN(x) ? x : lo;
      hi = x > hi || Number.isNaN(x) ? x : hi;
    }
    const center = Math.fround((lo + hi) / 2);
    F[out + at.center + c] = center;
    F[out + at.half + c] = Math.max(hi - center, center - lo) * SUMMARY_WIDENING;
  }
  let r2 = 0;
  let n2 = 0;
  for (let j = j0; j < j1; j++) {
    const r = row(j);
    let s = 0;
    let t = 0;
    for (let c = 0; c < d; c++) {
      s += (F[r + c]! - F[out + at.center + c]!) ** 2;
      t += F[r + c]! ** 2;
    }
    // NaN propagates here too
    if (s > r2 || Number.isNaN(s)) r2 = s;
    if (t > n2 || Number.isNaN(t)) n2 = t;
  }
  F[out + at.radius] = Math.sqrt(r2) * SUMMARY_WIDENING;
  F[out + at.norm] = Math.sqrt(n2) * SUMMARY_WIDENING;
}
