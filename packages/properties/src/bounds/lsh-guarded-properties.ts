// The guarded tier for LSH key sets (BOUNDS.md (b'), (e)) as properties, on exactly the functions a guarded LSH
// site and the chooser use (@attnopt/bounds: lshHeadGroups, lshDroppedMass, guardFallsBack), every row of one
// self-attention head whose kept sets are @attnopt/ir's LSH semantics (lshRows):
// - the certificate m_hat is never below the dropped mass m computed directly in float64;
// - the guarded row (o_S when its certificate is within the budget, the dense row o when it falls back) is within
//   the budget of o.
// Leaves: 1..4 rounds, 2..8 buckets, chunk 0 (shared bucket) or 2..8 (sorted chunks). Input families include the
// adversarial ones: repeated spans (queries copy far keys), one outlier key, logits up to 80, all-equal keys, and
// one bucket holding most of the mass (a third of the keys a large multiple of one direction).
// Float64 rounding slack: relative 1e-12 on m, 1e-12 (1 + max |v|) on the output.

import fc from 'fast-check';
import { guardFallsBack, keptLogSumExp, lshDroppedMass, lshHeadGroups, maskSplit, valueRange } from '@attnopt/bounds';
import { intervals, lshBuckets, type Lsh, lshRows, SplitMix64 } from '@attnopt/ir';

export const LSH_GUARDED_FAMILIES = ['random', 'repeated-span', 'outlier-key', 'logits-80', 'equal-keys', 'heavy-bucket'] as const;
export type LshGuardedFamily = (typeof LSH_GUARDED_FAMILIES)[number];

/** One head of n queries and n keys under an LSH leaf, with a guard budget. */
export interface LshHead {
  readonly family: LshGuardedFamily;
  readonly leaf: Lsh;
  readonly n: number;
  readonly d: number;
  readonly dv: number;
  readonly scale: number;
  readonly q: Float64Array;
  readonly keys: Float64Array;
  readonly values: Float64Array;
  readonly budget: number;
}

function build(family: LshGuardedFamily, leaf: Lsh, n: number, d: number, budget: number, seed: number): LshHead {
  const rng = new SplitMix64(seed);
  const g = () => rng.nextFloat() * 2 - 1;
  const dv = Math.max(1, d - 1);
  const keys = Float64Array.from({ length: n * d }, g);
  const q = Float64Array.from({ length: n * d }, () => 2 * g());
  const values = Float64Array.from({ length: n * dv }, () => 3 * g());
  let scale = 1 / Math.sqrt(d);
  const setKey = (j: number, f: (c: number) => number) => {
    for (let c = 0; c < d; c++) keys[j * d + c] = f(c);
  };
  switch (family) {
    case 'random':
      break;
    case 'repeated-span': {
      // keys repeat with period P; each query is 4x the copy of a key a period back
      const P = Math.max(1, Math.floor(n / 3));
      for (let j = P; j < n; j++) setKey(j, (c) => keys[(j - P) * d + c]!);
      for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) q[i * d + c] = 4 * keys[Math.max(0, i - P) * d + c]!;
      break;
    }
    case 'outlier-key': {
      const j = Math.floor(rng.nextFloat() * n);
      setKey(j, () => 12);
      for (let x = 0; x < q.length; x++) q[x] = Math.abs(q[x]!);
      break;
    }
    case 'logits-80': {
      let big = 0;
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
        let s = 0;
        for (let c = 0; c < d; c++) s += q[i * d + c]! * keys[j * d + c]!;
        big = Math.max(big, Math.abs(s));
      }
      scale = big > 0 ? 80 / big : 1;
      break;
    }
    case 'equal-keys':
      for (let j = 0; j < n; j++) setKey(j, (c) => keys[c]!);
      break;
    case 'heavy-bucket': {
      // a third of the keys along one direction, 6x: they share every round's bucket and carry most of the mass
      const dir = Float64Array.from({ length: d }, g);
      for (let j = 0; j < n; j += 3) setKey(j, (c) => 6 * dir[c]! * (1 + 0.01 * g()));
      break;
    }
  }
  return { family, leaf, n, d, dv, scale, q, keys, values, budget };
}

export function lshHeadArbitrary(maxLen = 48): fc.Arbitrary<LshHead> {
  return fc
    .record({
      family: fc.constantFrom(...LSH_GUARDED_FAMILIES),
      n: fc.integer({ min: 1, max: maxLen }),
      d: fc.integer({ min: 1, max: 8 }),
      hashes: fc.integer({ min: 1, max: 4 }),
      buckets: fc.constantFrom(2, 4, 8),
      chunk: fc.constantFrom(0, 0, 2, 3, 8),
      leafSeed: fc.integer({ min: 0, max: 1000 }),
      budget: fc.constantFrom(0, 1e-4, 1e-3, 1e-2, 1e-1),
      seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    })
    .map((r) => build(r.family, lshBuckets(r.hashes, r.buckets, r.leafSeed, r.chunk), r.n, r.d, r.budget, r.seed));
}

export interface LshGuardedRow {
  readonly m: number;
  readonly mHat: number;
  readonly fallsBack: boolean;
  readonly o: Float64Array;
  readonly out: Float64Array;
}

/** Every row of the head: its dropped mass, certificate, and what the guarded site computes for it. */
export function lshGuardedRows(p: LshHead): LshGuardedRow[] {
  const { n, d, dv } = p;
  const kept = lshRows(p.leaf, { q: p.q, k: p.keys, nq: n, nk: n, d });
  const groups = lshHeadGroups(p.leaf, p.q, n, p.keys, n, d);
  const range = valueRange(p.values, dv);
  return kept.map((S, i) => {
    const qi = p.q.subarray(i * d, (i + 1) * d);
    const scores = Float64Array.from({ length: n }, (_, j) => {
      let s = 0;
      for (let c = 0; c < d; c++) s += qi[c]! * p.keys[j * d + c]!;
      return p.scale * s;
    });
    const isKept = (j: number) => intervals.contains(S, j);
    const split = maskSplit(scores, p.values, dv, isKept);
    const logZKept = keptLogSumExp(scores.filter((_, j) => isKept(j)));
    const dropsSome = intervals.size(S) < n;
    const mHat = dropsSome ? lshDroppedMass(qi, groups.rounds, groups.keptGroups(i), p.scale, 0, logZKept) : 0;
    const fallsBack = guardFallsBack(mHat, range, p.budget);
    return { m: split.m, mHat, fallsBack, o: split.o, out: fallsBack ? split.o : split.oS };
  });
}

/** For every row of any LSH head: m_hat >= m (float64 slack 1e-12 relative). */
export function lshCertificateProperty(maxLen = 48): fc.IPropertyWithHooks<[LshHead]> {
  return fc.property(lshHeadArbitrary(maxLen), (p) => {
    lshGuardedRows(p).forEach(({ m, mHat }, i) => {
      if (!(mHat >= m * (1 - 1e-12))) throw new Error(`${p.family}, row ${i}: certificate ${mHat} below the dropped mass ${m}`);
    });
  });
}

/** For every row of any LSH head: |out - o| <= budget per coordinate (float64 slack 1e-12 (1 + max |v|)). */
export function lshGuardedOutputProperty(maxLen = 48): fc.IPropertyWithHooks<[LshHead]> {
  return fc.property(lshHeadArbitrary(maxLen), (p) => {
    const big = p.values.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
    lshGuardedRows(p).forEach(({ out, o, fallsBack }, i) => {
      for (let c = 0; c < p.dv; c++) {
        const err = Math.abs(out[c]! - o[c]!);
        if (!(err <= p.budget + 1e-12 * (1 + big))) throw new Error(`${p.family}, row ${i}: output ${c} off by ${err} > budget ${p.budget} (fell back: ${fallsBack})`);
      }
    });
  });
}
