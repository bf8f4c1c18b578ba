// BOUNDS.md (e): hashed form, angular LSH (Reformer, arXiv 2001.04451; Charikar 2002 for one hyperplane).

/** The angle between x and y in [0, pi] (pi/2 when either is 0: sign(r . 0) carries no information). */
export function angleBetween(x: ArrayLike<number>, y: ArrayLike<number>): number {
  // scaled by the largest magnitudes first, so tiny (subnormal) or huge vectors neither underflow nor overflow
  let sx = 0;
  let sy = 0;
  for (let c = 0; c < x.length; c++) {
    sx = Math.max(sx, Math.abs(x[c]!));
    sy = Math.max(sy, Math.abs(y[c]!));
  }
  if (sx === 0 || sy === 0) return Math.PI / 2;
  let xy = 0;
  let xx = 0;
  let yy = 0;
  for (let c = 0; c < x.length; c++) {
    const a = x[c]! / sx;
    const b = y[c]! / sy;
    xy += a * b;
    xx += a * a;
    yy += b * b;
  }
  return Math.acos(Math.max(-1, Math.min(1, xy / Math.sqrt(xx * yy))));
}

/**
 * One random hyperplane r ~ N(0, I): Pr[sign(r . x) = sign(r . y)] = 1 - theta/pi (Charikar); k concatenated
 * hyperplanes: (1 - theta/pi)^k (BOUNDS.md (e)). Reformer hashing with 2 buckets is exactly one hyperplane.
 */
export function angularCollisionProbability(theta: number, k = 1): number {
  if (!(theta >= 0 && theta <= Math.PI)) throw new Error(`angle must be in [0, pi], got ${theta}`);
  return (1 - theta / Math.PI) ** k;
}

/** With nHashes independent rounds and S = union of same-bucket keys: Pr[j in S] = 1 - (1 - P_j)^nHashes. */
export function lshInclusionProbability(P: number, nHashes: number): number {
  return 1 - (1 - P) ** nHashes;
}

/**
 * E[m] = sum_j p_j (1 - P_j)^nHashes (BOUNDS.md (e), before chunking effects): p the softmax row, P_j the per-round
 * collision probability of key j with the query.
 */
export function expectedLshDroppedMass(p: ArrayLike<number>, P: ArrayLike<number>, nHashes: number): number {
  if (p.length !== P.length) throw new Error(`expectedLshDroppedMass: ${p.length} probabilities against ${P.length} collision probabilities`);
  let m = 0;
  for (let j = 0; j < p.length; j++) if (p[j]! > 0) m += p[j]! * (1 - P[j]!) ** nHashes;
  return m;
}
