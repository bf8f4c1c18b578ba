// Inputs of the guarded-lowering tests, bhsd [B, H, N, D] in float64: rotary-like features peaked at the query (local
// attention), with a little noise on the keys, and uniform V in [-1, 1]; clustered q and k (what LSH is for).

import { SplitMix64 } from '@attnopt/ir';

export interface QKV {
  readonly q: Float64Array;
  readonly k: Float64Array;
  readonly v: Float64Array;
}

/** Local attention: q_i = 2 f(i), k_j = 2 f(j) + noise (|noise| <= 0.025), f rotary-like features of amplitude 3. */
export function localInputs(seed: number, B: number, H: number, N: number, D: number): QKV {
  const rng = new SplitMix64(seed);
  const w = Array.from({ length: D / 2 }, (_, f) => 0.0015 * 1.6 ** f);
  const feat = (t: number, c: number) => 3 * (c % 2 === 0 ? Math.cos(w[c >> 1]! * t) : Math.sin(w[c >> 1]! * t));
  const q = new Float64Array(B * H * N * D);
  const k = new Float64Array(B * H * N * D);
  for (let bh = 0; bh < B * H; bh++) for (let i = 0; i < N; i++) for (let c = 0; c < D; c++) {
    q[(bh * N + i) * D + c] = feat(i, c) * 2;
    k[(bh * N + i) * D + c] = feat(i, c) * 2 + 0.05 * (rng.nextFloat() - 0.5);
  }
  const v = Float64Array.from({ length: B * H * N * D }, () => rng.nextFloat() * 2 - 1);
  return { q, k, v };
}

/**
 * Clustered q and k (what LSH is for): 8 clusters along orthogonal directions 8 e_c (D >= 8), each token in a random
 * cluster, noise 0.1 per channel; a query attends (peaked) to its cluster's keys wherever they are. Q has H heads, K
 * and V Hkv. V uniform in [-1, 1].
 */
export function clusteredInputs(seed: number, B: number, H: number, Hkv: number, N: number, D: number): QKV {
  const rng = new SplitMix64(seed);
  const u = () => rng.nextFloat() * 2 - 1;
  const rows = (heads: number) => {
    const t = new Float64Array(B * heads * N * D);
    for (let r = 0; r < B * heads * N; r++) {
      const c = Math.floor(rng.nextFloat() * 8);
      for (let d = 0; d < D; d++) t[r * D + d] = (d === c ? 8 : 0) + 0.1 * u();
    }
    return t;
  };
  return { q: rows(H), k: rows(Hkv), v: Float64Array.from({ length: B * Hkv * N * D }, u) };
}

/**
 * Repeated spans (what an induction head sees), in place: from position P on every key repeats the key P positions
 * earlier, and query i copies 1.2 x the key after the previous occurrence (i - P + 1), far outside a short window.
 */
export function repeatSpans(x: QKV, P: number, B: number, H: number, N: number, D: number): QKV {
  for (let bh = 0; bh < B * H; bh++) for (let i = P; i < N; i++) for (let c = 0; c < D; c++) x.k[(bh * N + i) * D + c] = x.k[(bh * N + i - P) * D + c]!;
  for (let bh = 0; bh < B * H; bh++) for (let i = P; i < N; i++) for (let c = 0; c < D; c++) x.q[(bh * N + i) * D + c] = 1.2 * x.k[(bh * N + i - P + 1) * D + c]!;
  return x;
}
