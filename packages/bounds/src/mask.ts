// BOUNDS.md (a): any mask-shaped sparsification (window, global, sinks, block-sparse, top-k, LSH buckets).
// One query, one head: p = softmax(s), o = sum_j p_j v_j; S the kept keys, o_S = sum_{j in S} p_j v_j / P_S,
// m = 1 - P_S the dropped mass. Values are row-major n x dv (`dv` entries per key).

import { softmaxInPlace } from '@attnopt/ir';

/** The pieces of the identity o - o_S = m (mu_T - o_S) for one row (BOUNDS.md (a)). */
export interface MaskSplit {
  /** Dropped mass m = sum_{j not in S} p_j (summed over the dropped keys, not 1 - P_S). */
  readonly m: number;
  /** Dense output o = sum_j p_j v_j. */
  readonly o: Float64Array;
  /** Sparse output o_S: the softmax over S alone (what a sparse kernel computes); 0 when S keeps no mass. */
  readonly oS: Float64Array;
  /** mu_T = sum_{j not in S} p_j v_j / m: the softmax over the dropped keys alone; 0 when m = 0. */
  readonly muT: Float64Array;
}

/** Max-subtracted softmax of the scores of the keys `pick` selects (others get 0): all 0 when none is finite. */
function restrictedSoftmax(scores: ArrayLike<number>, pick: (j: number) => boolean): Float64Array {
  const p = Float64Array.from(scores, (s, j) => (pick(j) ? s : -Infinity));
  softmaxInPlace(p);
  return p;
}

function mix(p: Float64Array, values: ArrayLike<number>, dv: number): Float64Array {
  const out = new Float64Array(dv);
  for (let j = 0; j < p.length; j++) {
    if (p[j] === 0) continue; // never read a value of zero weight (0 * Inf)
    for (let c = 0; c < dv; c++) out[c]! += p[j]! * values[j * dv + c]!;
  }
  return out;
}

/**
 * o, o_S, mu_T and m of one row, each softmax taken over its own key set (so o_S stays exact when P_S
 * underflows). Identity (BOUNDS.md (a)): o - o_S = m (mu_T - o_S), exact in real arithmetic.
 */
export function maskSplit(scores: ArrayLike<number>, values: ArrayLike<number>, dv: number, kept: (j: number) => boolean): MaskSplit {
  const all = restrictedSoftmax(scores, () => true);
  let m = 0;
  for (let j = 0; j < all.length; j++) if (!kept(j)) m += all[j]!;
  return {
    m,
    o: mix(all, values, dv),
    oS: mix(restrictedSoftmax(scores, kept), values, dv),
    muT: mix(restrictedSoftmax(scores, (j) => !kept(j)), values, dv),
  };
}

/**
 * Per output coordinate c: |o_c - o_S,c| <= m (max_j v_jc - min_j v_jc)   (BOUNDS.md (a); exact and tight).
 * Holds whenever o_S is a convex combination of the v_j, i.e. S keeps a key of positive probability; when it
 * keeps none, a sparse kernel outputs 0 (fully masked convention) and only maskErrorBoundMaxAbs holds.
 * m = 0 gives 0 for every coordinate (even for infinite values).
 */
export function maskErrorBound(m: number, values: ArrayLike<number>, dv: number): Float64Array {
  const out = new Float64Array(dv);
  if (m === 0) return out;
  const n = values.length / dv;
  for (let c = 0; c < dv; c++) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let j = 0; j < n; j++) {
      lo = Math.min(lo, values[j * dv + c]!);
      hi = Math.max(hi, values[j * dv + c]!);
    }
    out[c] = n === 0 ? 0 : m * (hi - lo);
  }
  return out;
}

/**
 * Per output coordinate c: |o_c - o_S,c| <= 2 m max_j |v_jc|   (BOUNDS.md (a)). Also holds when S keeps no mass
 * (then m = 1 and o_S = 0, and |o_c| <= max_j |v_jc|).
 */
export function maskErrorBoundMaxAbs(m: number, values: ArrayLike<number>, dv: number): Float64Array {
  const out = new Float64Array(dv);
  if (m === 0) return out;
  const n = values.length / dv;
  for (let c = 0; c < dv; c++) {
    let big = 0;
    for (let j = 0; j < n; j++) big = Math.max(big, Math.abs(values[j * dv + c]!));
    out[c] = 2 * m * big;
  }
  return out;
}

/** diam{v_j} = max_{j,k} ||v_j - v_k||_2 over the n rows of `values` (0 for n <= 1). O(n^2 dv). */
export function valueDiameter(values: ArrayLike<number>, dv: number): number {
  const n = values.length / dv;
  let best = 0;
  for (let j = 0; j < n; j++) {
    for (let k = j + 1; k < n; k++) {
      let sq = 0;
      for (let c = 0; c < dv; c++) sq += (values[j * dv + c]! - values[k * dv + c]!) ** 2;
      best = Math.max(best, sq);
    }
  }
  return Math.sqrt(best);
}

/** ||o - o_S||_2 <= m diam{v_j}   (BOUNDS.md (a); same precondition as maskErrorBound). */
export function maskErrorBoundL2(m: number, values: ArrayLike<number>, dv: number): number {
  return m === 0 ? 0 : m * valueDiameter(values, dv);
}

/**
 * (1/2) ||p - p_S||_1 = m, p_S the softmax over S (BOUNDS.md (a), when P_S > 0): computed from p and S, so a
 * test compares it with the dropped mass. Returns the half L1 distance.
 */
export function halfL1ToRenormalized(p: ArrayLike<number>, kept: (j: number) => boolean): number {
  let ps = 0;
  for (let j = 0; j < p.length; j++) if (kept(j)) ps += p[j]!;
  let l1 = 0;
  for (let j = 0; j < p.length; j++) l1 += Math.abs(p[j]! - (kept(j) && ps > 0 ? p[j]! / ps : 0));
  return l1 / 2;
}

/**
 * One row's max-abs output bound from its dropped mass m (BOUNDS.md (a)): m R, R = max_c (max_j v_jc - min_j v_jc)
 * over the row's keys, while the kept set holds mass; 2 max_j |v_jc| when it holds none (the sparse row is then 0).
 * m = 0 gives 0.
 */
export function maskRowErrorBound(m: number, valueRange: number, keptHoldsMass: boolean, maxAbsValue: number): number {
  if (m === 0) return 0;
  return keptHoldsMass ? m * valueRange : 2 * maxAbsValue;
}
