// Sorted, disjoint, half-open integer ranges [lo, hi): the kept keys of one query row, in O(runs) memory.

export type IntervalSet = readonly number[]; // flat pairs: lo0, hi0, lo1, hi1, ... with lo < hi, hi_k < lo_{k+1}

export const EMPTY_SET: IntervalSet = [];

/** [lo, hi) clipped to [0, n); empty when nothing remains. */
export function range(lo: number, hi: number, n: number): IntervalSet {
  const a = Math.max(0, lo);
  const b = Math.min(n, hi);
  return a < b ? [a, b] : EMPTY_SET;
}

/** Normalizes arbitrary (possibly overlapping, unsorted) ranges into an IntervalSet. */
export function fromRanges(pairs: readonly (readonly [number, number])[]): IntervalSet {
  const sorted = pairs.filter(([lo, hi]) => lo < hi).sort((x, y) => x[0] - y[0]);
  const out: number[] = [];
  for (const [lo, hi] of sorted) {
    const last = out.length - 1;
    if (last > 0 && lo <= out[last]!) out[last] = Math.max(out[last]!, hi);
    else out.push(lo, hi);
  }
  return out;
}

/** The set of the given (sorted or not) indices. */
export function fromPoints(points: Iterable<number>): IntervalSet {
  return fromRanges([...points].map((p) => [p, p + 1] as const));
}

export function size(set: IntervalSet): number {
  let n = 0;
  for (let k = 0; k < set.length; k += 2) n += set[k + 1]! - set[k]!;
  return n;
}

export function contains(set: IntervalSet, x: number): boolean {
  for (let k = 0; k < set.length; k += 2) {
    if (x < set[k]!) return false;
    if (x < set[k + 1]!) return true;
  }
  return false;
}

export function unionSets(a: IntervalSet, b: IntervalSet): IntervalSet {
  const pairs: [number, number][] = [];
  for (let k = 0; k < a.length; k += 2) pairs.push([a[k]!, a[k + 1]!]);
  for (let k = 0; k < b.length; k += 2) pairs.push([b[k]!, b[k + 1]!]);
  return fromRanges(pairs);
}

export function intersectSets(a: IntervalSet, b: IntervalSet): IntervalSet {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const lo = Math.max(a[i]!, b[j]!);
    const hi = Math.min(a[i + 1]!, b[j + 1]!);
    if (lo < hi) out.push(lo, hi);
    if (a[i + 1]! < b[j + 1]!) i += 2;
    else j += 2;
  }
  return out;
}

export function differenceSets(a: IntervalSet, b: IntervalSet): IntervalSet {
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < a.length; i += 2) {
    let lo = a[i]!;
    const hi = a[i + 1]!;
    while (j < b.length && b[j + 1]! <= lo) j += 2;
    let k = j;
    while (k < b.length && b[k]! < hi) {
      if (b[k]! > lo) out.push(lo, b[k]!);
      lo = Math.max(lo, b[k + 1]!);
      k += 2;
    }
    if (lo < hi) out.push(lo, hi);
  }
  return out;
}

/** Every member, in increasing order (for tests and small rows). */
export function members(set: IntervalSet): number[] {
  const out: number[] = [];
  for (let k = 0; k < set.length; k += 2) for (let x = set[k]!; x < set[k + 1]!; x++) out.push(x);
  return out;
}
