// Host side of the guarded kernels: the key segments that carry summaries, the dropped segments of each
// query block, and the summaries themselves (built once per call, O(n d)).
//
// Segments are the key blocks of `block` keys, also split at the spec's row-independent keys (keySegmentBounds
// of @attnopt/ir, shared with the WGSL backend).
// For query rows i0 .. i1 - 1 the dropped keys of row i are D_i = modelMask(i) \ spec(i) below `valid`; an
// entry names a segment that meets some D_i, with count = max_i |D_i ∩ segment| and the row range [lo, hi)
// of the rows whose D_i meets it.

import { intervals, type IntervalSet, keySegmentBounds, type LeafResolver, type MaskDims, type MaskSpec, rowKeys } from '@attnopt/ir';

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
 * Writes the summary record of keys j0 .. j1 - 1 at f32 index `out` of F: per channel min and max, the mean
 * key (center), the largest distance of a key from it (radius) and the largest key norm (both rounded up by a
 * relative 2^-20 so the float32 ball still holds every key). `row(j)` is the f32 index of key j's first channel.
 */
export function writeSegmentSummary(F: Float32Array, row: (j: number) => number, j0: number, j1: number, d: number, dPad: number, out: number): void {
  const LO = out;
  const HI = out + dPad;
  const CE = out + 2 * dPad;
  F.fill(0, out, out + 3 * dPad + 4);
  const r0 = row(j0);
  for (let c = 0; c < d; c++) {
    F[LO + c] = F[r0 + c]!;
    F[HI + c] = F[r0 + c]!;
  }
  const mean = scratchMean.length >= d ? scratchMean.fill(0, 0, d) : (scratchMean = new Float64Array(d));
  for (let j = j0; j < j1; j++) {
    const r = row(j);
    for (let c = 0; c < d; c++) {
      const x = F[r + c]!;
      if (x < F[LO + c]!) F[LO + c] = x;
      if (x > F[HI + c]!) F[HI + c] = x;
      mean[c] += x;
    }
  }
  const n = j1 - j0;
  for (let c = 0; c < d; c++) F[CE + c] = mean[c]! / n;
  let r2 = 0;
  let n2 = 0;
  for (let j = j0; j < j1; j++) {
    const r = row(j);
    let s = 0;
    let t = 0;
    for (let c = 0; c < d; c++) {
      s += (F[r + c]! - F[CE + c]!) ** 2;
      t += F[r + c]! ** 2;
    }
    if (s > r2) r2 = s;
    if (t > n2) n2 = t;
  }
  F[out + 3 * dPad] = Math.sqrt(r2) * (1 + 2 ** -20);
  F[out + 3 * dPad + 1] = Math.sqrt(n2) * (1 + 2 ** -20);
}
let scratchMean = new Float64Array(0);
