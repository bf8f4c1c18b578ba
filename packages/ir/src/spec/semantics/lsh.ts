// Angular LSH buckets (Reformer, arXiv 2001.04451): the semantics every backend reproduces.
//
// For a leaf lshBuckets(hashes, buckets, seed, chunk) on Q (nq x d) and K (nk x d) of one head:
// - the rotations: R = gaussian(seed, hashes * d * buckets/2) (random.ts), row-major
//   [round][dim][bucket]: R_r[c][t] = R[(r * d + c) * (buckets/2) + t];
// - the hash of a row x (a query or a key, unscaled) in round r: h_r(x) = argmax over the `buckets`
//   values [x R_r ; -x R_r], i.e. index t < buckets/2 for +(x R_r)_t and buckets/2 + t for -(x R_r)_t;
//   ties go to the LOWER index;
// - chunk = 0: query i keeps key j when h_r(q_i) == h_r(k_j) for SOME round r;
// - chunk > 0 (self-attention: nq must equal nk): in each round, the queries are sorted by
//   (h_r(q_i), i) and the keys by (h_r(k_j), j); position p of a sorted list lies in chunk floor(p / chunk);
//   query i keeps the keys of its own chunk and of the chunk just before it (no wrap-around: chunk 0 has
//   no predecessor), whatever their buckets; the kept sets of the rounds are united.

import { gaussian } from '../../random.js';
import { fromPoints, type IntervalSet } from '../interval-set.js';
import type { Lsh } from '../spec.js';
import type { HeadQK } from './head.js';

/** The rotations of a leaf for head size d: `hashes` matrices d x buckets/2, flattened [round][dim][bucket]. */
export function lshRotations(leaf: Lsh, d: number): Float64Array {
  return gaussian(leaf.seed, leaf.hashes * d * (leaf.buckets / 2));
}

/** h_r(x) for every row of x (n x d) and every round: result[r * n + i]. */
export function lshHashes(leaf: Lsh, x: Float64Array, n: number, d: number): Int32Array {
  const half = leaf.buckets / 2;
  const R = lshRotations(leaf, d);
  const out = new Int32Array(leaf.hashes * n);
  const proj = new Float64Array(half);
  for (let r = 0; r < leaf.hashes; r++) {
    for (let i = 0; i < n; i++) {
      for (let t = 0; t < half; t++) {
        let s = 0;
        for (let c = 0; c < d; c++) s += x[i * d + c]! * R[(r * d + c) * half + t]!;
        proj[t] = s;
      }
      // argmax over [xR ; -xR], first maximum wins (a NaN never wins)
      let best = -Infinity;
      let arg = 0;
      for (let t = 0; t < 2 * half; t++) {
        const v = t < half ? proj[t]! : -proj[t - half]!;
        if (v > best) {
          best = v;
          arg = t;
        }
      }
      out[r * n + i] = arg;
    }
  }
  return out;
}

/** The chunk of every row in round r: rows sorted by (bucket, index), cut into chunks of `chunk`. */
export function lshChunks(hashes: Int32Array, r: number, n: number, chunk: number): Int32Array {
  const order = [...Array(n).keys()].sort((a, b) => hashes[r * n + a]! - hashes[r * n + b]! || a - b);
  const out = new Int32Array(n);
  order.forEach((row, pos) => (out[row] = Math.floor(pos / chunk)));
  return out;
}

/**
 * The kept keys of query row i for one LSH leaf (q, k, nq, nk, d of the head; the scale is unused), as a function
 * of i: the hashes and each round's key groups computed once, a row's keys when it is asked for (a caller that
 * reads a stride of the rows pays for those alone).
 */
export function lshRowKeys(leaf: Lsh, head: Pick<HeadQK, 'q' | 'k' | 'nq' | 'nk' | 'd'>): (i: number) => IntervalSet {
  const { nq, nk, d } = head;
  const hq = lshHashes(leaf, head.q, nq, d);
  const hk = lshHashes(leaf, head.k, nk, d);
  if (leaf.chunk !== 0 && nq !== nk) {
    throw new Error(`lsh with chunk ${leaf.chunk} is defined for self-attention (nq == nk), got ${nq} x ${nk}`);
  }
  const rounds: { groups: Map<number, number[]>; queryGroups: (i: number) => number[] }[] = [];
  for (let r = 0; r < leaf.hashes; r++) {
    const groups = new Map<number, number[]>(); // bucket or chunk -> keys
    let keyOf: Int32Array;
    let queryGroups: (i: number) => number[];
    if (leaf.chunk === 0) {
      keyOf = hk.subarray(r * nk, (r + 1) * nk);
      queryGroups = (i) => [hq[r * nq + i]!];
    } else {
      keyOf = lshChunks(hk, r, nk, leaf.chunk);
      const cq = lshChunks(hq, r, nq, leaf.chunk);
      queryGroups = (i) => [cq[i]!, cq[i]! - 1];
    }
    for (let j = 0; j < nk; j++) {
      const g = keyOf[j]!;
      let list = groups.get(g);
      if (!list) groups.set(g, (list = []));
      list.push(j);
    }
    rounds.push({ groups, queryGroups });
  }
  return (i) => {
    const keys: number[] = [];
    for (const { groups, queryGroups } of rounds) for (const g of queryGroups(i)) keys.push(...(groups.get(g) ?? []));
    return fromPoints([...new Set(keys)].sort((a, b) => a - b));
  };
}

/** The kept keys of every query row for one LSH leaf (lshRowKeys of each row). */
export function lshRows(leaf: Lsh, head: Pick<HeadQK, 'q' | 'k' | 'nq' | 'nk' | 'd'>): IntervalSet[] {
  const row = lshRowKeys(leaf, head);
  return Array.from({ length: head.nq }, (_, i) => row(i));
}
