// Largest and smallest of many numbers, and appending many items, without spreading them into a call's
// arguments (V8 overflows its stack past about 100k arguments: a row of 256k logits, a model of 1M nodes).

export function maxOf(values: Iterable<number>, start = -Infinity): number {
  let m = start;
  for (const v of values) if (v > m) m = v;
  return m;
}

export function minOf(values: Iterable<number>, start = Infinity): number {
  let m = start;
  for (const v of values) if (v < m) m = v;
  return m;
}

/** Appends every item of `items` to `to`; returns `to`. */
export function pushAll<T>(to: T[], items: Iterable<T>): T[] {
  for (const x of items) to.push(x);
  return to;
}
