// BOUNDS.md (b'), for LSH key sets (Reformer, arXiv 2001.04451): the run-time certificate of a guarded LSH site.
// Each round r of the hash puts every key in one group g_r(j): its bucket (chunk = 0), or its chunk of the keys
// sorted by (bucket, index) (chunk > 0). A query keeps, in round r, the keys of some of the groups (its own bucket;
// its own chunk and the one before), and the kept set S is the union over the rounds. So a dropped key j (not in S)
// is dropped in EVERY round: with D_r the keys round r alone drops, D = ∩_r D_r ⊆ D_r for each r, and
//   Σ_{j ∈ D} e^{s_j} <= min_r B_r,   B_r = Σ_{groups g not kept in round r} n_g e^{U_g}
// with U_g >= s_j for every key of group g from per-group key summaries (Quest's per-channel min / max, or the
// ball around the box centre, the smaller; key-blocks.ts's blockScoreUpperBound). Then m <= B / (Z_S + B) with
// B = min_r B_r (x / (Z_S + x) increases in x). Counting every key of a group (also keys the model's own mask
// removes) only loosens B. Summaries O(rounds n d) once per head, O(rounds groups d) per row: nothing n x n.

import { type Lsh, lshChunks, lshHashes } from '@attnopt/ir';
import { droppedMassCertificateFromLog } from './certificates.js';
import { blockScoreUpperBound, type KeyBlockSummaries, softcappedUpperBound } from './key-blocks.js';
import { logSumExp } from './log-space.js';

/**
 * Summaries of the keys of each group of one round: the fields of KeyBlockSummaries with a "block" meaning a group
 * (any set of keys, not a contiguous range: blockSize is 0), plus the key count of each group.
 */
export interface KeyGroupSummaries extends KeyBlockSummaries {
  /** Keys per group. */
  readonly counts: Float64Array;
}

/**
 * Per-group summaries of `keys` (row-major n x d): `groupOf[j]` in [0, groups) is key j's group. A group without
 * keys gets count 0 and zero summaries (it bounds nothing and is never read).
 */
export function keyGroupSummaries(keys: ArrayLike<number>, n: number, d: number, groupOf: ArrayLike<number>, groups: number): KeyGroupSummaries {
  if (groupOf.length < n) throw new Error(`keyGroupSummaries: ${groupOf.length} group ids for ${n} keys`);
  const kmin = new Float64Array(groups * d).fill(Infinity);
  const kmax = new Float64Array(groups * d).fill(-Infinity);
  const counts = new Float64Array(groups);
  for (let j = 0; j < n; j++) {
    const g = groupOf[j]!;
    if (!(g >= 0 && g < groups)) throw new Error(`keyGroupSummaries: key ${j} in group ${g}, outside [0, ${groups})`);
    counts[g]!++;
    for (let c = 0; c < d; c++) {
      const x = keys[j * d + c]!;
      if (x < kmin[g * d + c]!) kmin[g * d + c] = x;
      if (x > kmax[g * d + c]!) kmax[g * d + c] = x;
    }
  }
  const center = new Float64Array(groups * d);
  for (let g = 0; g < groups; g++) {
    for (let c = 0; c < d; c++) {
      if (counts[g] === 0) kmin[g * d + c] = kmax[g * d + c] = 0;
      center[g * d + c] = (kmin[g * d + c]! + kmax[g * d + c]!) / 2;
    }
  }
  const r2 = new Float64Array(groups);
  for (let j = 0; j < n; j++) {
    const g = groupOf[j]!;
    let s = 0;
    for (let c = 0; c < d; c++) s += (keys[j * d + c]! - center[g * d + c]!) ** 2;
    if (s > r2[g]!) r2[g] = s;
  }
  // the centre and the distances are rounded: widen the radius by a relative margin so every key stays inside
  const radius = r2.map((x) => Math.sqrt(x) * (1 + 1e-12) + 1e-300);
  return { blockSize: 0, n, d, kmin, kmax, center, radius, counts };
}

/**
 * log B_r for one round: logSumExp over the groups the row does not keep in that round of log n_g + U_g, U_g the
 * softcapped score bound of group g. `kept` lists the groups the row keeps in the round (ids outside [0, groups)
 * are ignored: the chunk before chunk 0).
 */
export function lshRoundLogB(q: ArrayLike<number>, summaries: KeyGroupSummaries, scale: number, softcap: number, kept: readonly number[]): number {
  const terms: number[] = [];
  const groups = summaries.counts.length;
  for (let g = 0; g < groups; g++) {
    const count = summaries.counts[g]!;
    if (count <= 0 || kept.includes(g)) continue;
    terms.push(Math.log(count) + softcappedUpperBound(blockScoreUpperBound(q, summaries, g, scale), softcap));
  }
  return logSumExp(terms);
}

/**
 * One query row's dropped-mass certificate m_hat >= m for an LSH key set (see the comment at the top): per round
 * the group summaries and the groups the row keeps in that round; log B = min over the rounds of log B_r.
 * `logZKept` = log Z_S over the union of the kept keys (-inf: none kept, then m_hat = 1 when B > 0).
 */
export function lshDroppedMass(
  q: ArrayLike<number>,
  rounds: readonly KeyGroupSummaries[],
  keptGroups: readonly (readonly number[])[],
  scale: number,
  softcap: number,
  logZKept: number,
): number {
  if (rounds.length === 0) throw new Error('lshDroppedMass: no rounds');
  if (keptGroups.length !== rounds.length) throw new Error(`lshDroppedMass: ${keptGroups.length} kept-group lists for ${rounds.length} rounds`);
  let logB = Infinity;
  rounds.forEach((summaries, r) => {
    logB = Math.min(logB, lshRoundLogB(q, summaries, scale, softcap, keptGroups[r]!));
  });
  return droppedMassCertificateFromLog(logZKept, logB);
}

/** The groups of one head under an LSH leaf: per round the key group summaries, per query row its kept groups. */
export interface LshHeadGroups {
  readonly rounds: readonly KeyGroupSummaries[];
  /** The groups query i keeps in each round (its bucket; or its chunk and the one before, -1 for none). */
  readonly keptGroups: (i: number) => number[][];
}

/**
 * The key groups of one head (q: nq x d, k: nk x d, row-major) under `leaf`, as @attnopt/ir's LSH semantics
 * hashes and chunks them (lshHashes, lshChunks): chunk = 0, `buckets` groups per round; chunk > 0 (nq == nk), the
 * ceil(nk / chunk) chunks of the keys sorted by (bucket, index).
 */
export function lshHeadGroups(leaf: Lsh, q: Float64Array, nq: number, k: Float64Array, nk: number, d: number): LshHeadGroups {
  const hq = lshHashes(leaf, q, nq, d);
  const hk = lshHashes(leaf, k, nk, d);
  const R = leaf.hashes;
  if (leaf.chunk === 0) {
    const rounds = Array.from({ length: R }, (_, r) => keyGroupSummaries(k, nk, d, hk.subarray(r * nk, (r + 1) * nk), leaf.buckets));
    return { rounds, keptGroups: (i) => Array.from({ length: R }, (_, r) => [hq[r * nq + i]!]) };
  }
  if (nq !== nk) throw new Error(`lshHeadGroups: lsh with chunk ${leaf.chunk} is defined for self-attention (nq == nk), got ${nq} x ${nk}`);
  const groups = Math.ceil(nk / leaf.chunk);
  const rounds = Array.from({ length: R }, (_, r) => keyGroupSummaries(k, nk, d, lshChunks(hk, r, nk, leaf.chunk), groups));
  const cq = Array.from({ length: R }, (_, r) => lshChunks(hq, r, nq, leaf.chunk));
  return { rounds, keptGroups: (i) => cq.map((c) => [c[i]!, c[i]! - 1]) };
}
