// Angular LSH buckets (Reformer): the semantics (rotations, hashing, chunks, kept keys) live in @attnopt/ir
// (spec/semantics/lsh.ts); this adds the head checks and a cached resolver.

import { type IntervalSet, type Lsh, lshRows as lshRowsOf } from '@attnopt/ir';
import { cachedResolver, checkHead, type HeadQK } from './head.js';

/** The kept keys of every query row for one LSH leaf. */
export function lshRows(leaf: Lsh, head: HeadQK): IntervalSet[] {
  checkHead(head);
  return lshRowsOf(leaf, head);
}

/** A resolver for LSH leaves only (see dataLeafResolver for both kinds). */
export function lshResolver(head: HeadQK): (leaf: Lsh, row: number, dims: { nq: number; nk: number }) => IntervalSet {
  return cachedResolver('lsh', head, lshRows);
}
