// Data-dependent leaves (top-k key blocks, LSH buckets) resolved from one head's Q and K, with the semantics
// of @attnopt/reference's resolvers (the tests check them against each other):
// - topkBlocks: per query block, every key block is scored (quest: max over the block's queries of
//   scale * sum_t max(q_t kmin_t, q_t kmax_t); mean: scale * mean(q) . mean(k)), the k best kept, ties to
//   the lower block index;
// - lsh: R = gaussian(seed, hashes * d * buckets/2), h_r(x) = argmax [x R_r ; -x R_r] (first maximum);
//   chunk = 0: a query keeps the keys sharing its bucket in some round; chunk > 0: per round, queries and
//   keys sorted by (bucket, index), cut in chunks; a query keeps its chunk's keys and the previous chunk's.

import { gaussian, intervals, type IntervalSet, type LeafResolver, type Lsh, type TopKBlocks } from '@attnopt/ir';
import type { HeadData } from './calibration.js';

function topkRows(leaf: TopKBlocks, head: HeadData): IntervalSet[] {
  const { q, k, nq, nk, d, scale } = head;
  const B = leaf.block;
  const nBlocks = Math.ceil(nk / B);
  const kmin = new Float64Array(nBlocks * d).fill(Infinity);
  const kmax = new Float64Array(nBlocks * d).fill(-Infinity);
  const kmean = new Float64Array(nBlocks * d);
  for (let j = 0; j < nk; j++) {
    const c = Math.floor(j / B);
    for (let t = 0; t < d; t++) {
      const x = k[j * d + t]!;
      kmin[c * d + t] = Math.min(kmin[c * d + t]!, x);
      kmax[c * d + t] = Math.max(kmax[c * d + t]!, x);
      kmean[c * d + t]! += x;
    }
  }
  for (let c = 0; c < nBlocks; c++) {
    const cnt = Math.min(nk, (c + 1) * B) - c * B;
    for (let t = 0; t < d; t++) kmean[c * d + t]! /= cnt;
  }
  const rows: IntervalSet[] = [];
  for (let r = 0; r * B < nq; r++) {
    const i0 = r * B;
    const i1 = Math.min(nq, i0 + B);
    const scores = new Float64Array(nBlocks);
    for (let c = 0; c < nBlocks; c++) {
      if (leaf.score === 'quest') {
        let best = -Infinity;
        for (let i = i0; i < i1; i++) {
          let s = 0;
          for (let t = 0; t < d; t++) {
            const x = q[i * d + t]!;
            s += Math.max(x * kmin[c * d + t]!, x * kmax[c * d + t]!);
          }
          best = Math.max(best, scale * s);
        }
        scores[c] = best;
      } else {
        let s = 0;
        for (let t = 0; t < d; t++) {
          let qm = 0;
          for (let i = i0; i < i1; i++) qm += q[i * d + t]!;
          s += (qm / (i1 - i0)) * kmean[c * d + t]!;
        }
        scores[c] = scale * s;
      }
    }
    const order = [...scores.keys()].sort((a, b) => {
      const sa = scores[a]!;
      const sb = scores[b]!;
      if (Number.isNaN(sa) || Number.isNaN(sb)) return Number.isNaN(sa) === Number.isNaN(sb) ? a - b : Number.isNaN(sa) ? 1 : -1;
      return sa > sb ? -1 : sa < sb ? 1 : a - b;
    });
    const kept = order.slice(0, leaf.k).sort((a, b) => a - b);
    const set = intervals.fromRanges(kept.map((c) => [c * B, Math.min(nk, (c + 1) * B)] as const));
    for (let i = i0; i < i1; i++) rows.push(set);
  }
  return rows;
}

function hashes(leaf: Lsh, x: Float64Array, n: number, d: number): Int32Array {
  const half = leaf.buckets / 2;
  const R = gaussian(leaf.seed, leaf.hashes * d * half);
  const out = new Int32Array(leaf.hashes * n);
  const proj = new Float64Array(half);
  for (let r = 0; r < leaf.hashes; r++) {
    for (let i = 0; i < n; i++) {
      for (let t = 0; t < half; t++) {
        let s = 0;
        for (let c = 0; c < d; c++) s += x[i * d + c]! * R[(r * d + c) * half + t]!;
        proj[t] = s;
      }
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

function chunksOf(h: Int32Array, r: number, n: number, chunk: number): Int32Array {
  const order = [...Array(n).keys()].sort((a, b) => h[r * n + a]! - h[r * n + b]! || a - b);
  const out = new Int32Array(n);
  order.forEach((row, pos) => (out[row] = Math.floor(pos / chunk)));
  return out;
}

function lshRows(leaf: Lsh, head: HeadData): IntervalSet[] {
  const { nq, nk, d } = head;
  const hq = hashes(leaf, head.q, nq, d);
  const hk = hashes(leaf, head.k, nk, d);
  const kept: number[][] = Array.from({ length: nq }, () => []);
  for (let r = 0; r < leaf.hashes; r++) {
    const groups = new Map<number, number[]>(); // bucket or chunk -> keys
    let keyOf: Int32Array;
    let queryGroups: (i: number) => number[];
    if (leaf.chunk === 0) {
      keyOf = hk.subarray(r * nk, (r + 1) * nk);
      queryGroups = (i) => [hq[r * nq + i]!];
    } else {
      if (nq !== nk) throw new Error(`lsh with chunk ${leaf.chunk} is defined for self-attention (nq == nk), got ${nq} x ${nk}`);
      keyOf = chunksOf(hk, r, nk, leaf.chunk);
      const cq = chunksOf(hq, r, nq, leaf.chunk);
      queryGroups = (i) => [cq[i]!, cq[i]! - 1];
    }
    for (let j = 0; j < nk; j++) {
      const g = keyOf[j]!;
      let list = groups.get(g);
      if (!list) groups.set(g, (list = []));
      list.push(j);
    }
    for (let i = 0; i < nq; i++) for (const g of queryGroups(i)) kept[i]!.push(...(groups.get(g) ?? []));
  }
  return kept.map((keys) => intervals.fromPoints([...new Set(keys)].sort((a, b) => a - b)));
}

/** A LeafResolver for one head's data: each leaf resolved once for every row, then cached. */
export function headResolver(head: HeadData): LeafResolver {
  const cache = new Map<string, IntervalSet[]>();
  return (leaf, row, dims) => {
    if (dims.nq !== head.nq || dims.nk !== head.nk) throw new Error(`${leaf.kind}: asked for ${dims.nq} x ${dims.nk}, data is ${head.nq} x ${head.nk}`);
    const id = JSON.stringify(leaf);
    let rows = cache.get(id);
    if (!rows) cache.set(id, (rows = leaf.kind === 'topkBlocks' ? topkRows(leaf, head) : lshRows(leaf, head)));
    return rows[row]!;
  };
}
