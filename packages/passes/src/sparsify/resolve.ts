// Data-dependent leaves (top-k key blocks, LSH buckets) resolved from one head's Q and K. Their semantics
// (block scores and top-k selection; LSH rotations, hashing and chunks) and the cached resolver are defined once,
// in @attnopt/ir (spec/semantics/), shared with @attnopt/reference's resolvers and every backend.

import { headLeafResolver, type LeafResolver } from '@attnopt/ir';
import type { HeadData } from './calibration.js';

/** A LeafResolver for one head's data: each leaf resolved once for every row, then cached. */
export function headResolver(head: HeadData): LeafResolver {
  return headLeafResolver(head);
}
