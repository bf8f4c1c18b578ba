// The row softmax (one copy, in @attnopt/ir) and the dropped mass of a key subset (BOUNDS.md (a)).

import { softmaxRow } from '@attnopt/ir';

export { softmaxRow } from '@attnopt/ir';

/**
 * The dropped mass m = 1 - P_S of a row (BOUNDS.md (a)): the softmax probability of the keys NOT kept,
 * where `kept(j)` says whether key j is in S. Computed as the sum over dropped keys (not 1 - P_S) so a
 * small m keeps its relative precision. A fully masked row has m = 0 (there is no mass to drop).
 */
export function droppedMass(scores: ArrayLike<number>, kept: (j: number) => boolean): number {
  const p = softmaxRow(scores);
  let m = 0;
  for (let j = 0; j < p.length; j++) if (!kept(j)) m += p[j]!;
  return m;
}
