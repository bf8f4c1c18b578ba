// The properties of BOUNDS.md run with at least 1000 generated cases each and fixed seeds (deterministic in CI).
// Tolerances are stated in bounds/mask-properties.ts and bounds/statistical.ts; false-failure probabilities of the
// statistical properties are stated beside them (STATISTICAL_FALSE_FAILURE).

import fc from 'fast-check';
import { describe, it } from 'vitest';
import {
  certificateProperty,
  convexHullProperty,
  exactWhenNothingDroppedProperty,
  fullyMaskedRowProperty,
  maskBoundProperty,
  maskIdentityProperty,
  monotoneDroppedMassProperty,
  topkGapProperty,
} from './bounds/mask-properties.js';
import { jlTailProperty, lshCollisionProperty, performerKernelProperty } from './bounds/statistical.js';
import { guardedDroppedMass, guardedOutputBound, keyBlockSummaries, keptLogSumExp, valueRange } from '@attnopt/bounds';
import { expect } from 'vitest';
import {
  GUARDED_FAMILIES,
  guardedCertificateProperty,
  guardedOutputProperty,
  guardedRow,
  guardedRowArbitrary,
  keptMaskedRowArbitrary,
  keptMaskedRowProperty,
} from './bounds/guarded-properties.js';

const RUNS = { numRuns: 1000 };

describe('BOUNDS.md (a) mask-shaped sparsification', () => {
  it('identity o - o_S = m (mu_T - o_S)', () => fc.assert(maskIdentityProperty(), { ...RUNS, seed: 101 }));
  it('coordinate, L2 and half-L1 forms of the bound', () => fc.assert(maskBoundProperty(), { ...RUNS, seed: 102 }));
  it('error exactly 0 when nothing of positive probability is dropped', () =>
    fc.assert(exactWhenNothingDroppedProperty(), { ...RUNS, seed: 103 }));
  it('wider keep sets never drop more', () => fc.assert(monotoneDroppedMassProperty(), { ...RUNS, seed: 104 }));
  it('output inside the convex hull of the kept values', () => fc.assert(convexHullProperty(), { ...RUNS, seed: 105 }));
  it('fully masked rows give 0', () => fc.assert(fullyMaskedRowProperty(), { ...RUNS, seed: 106 }));
});

describe('BOUNDS.md (b) certificates', () => {
  it('Cauchy-Schwarz and per-block certificates bound the dropped mass', () =>
    fc.assert(certificateProperty(), { ...RUNS, seed: 201 }));
  it('top-k gap certificate, and top-k minimizes m', () => fc.assert(topkGapProperty(), { ...RUNS, seed: 202 }));
});

describe("BOUNDS.md (b') guarded rows, on the functions optimize uses", () => {
  it('the certificate is never below the dropped mass (every family, adversarial ones included)', () =>
    fc.assert(guardedCertificateProperty(), { ...RUNS, seed: 211 }));
  it('the guarded row is within the budget of the dense row', () => fc.assert(guardedOutputProperty(), { ...RUNS, seed: 212 }));
  it('the generated rows cover every family and both outcomes (falls back, kept sparse)', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(guardedRowArbitrary(), (p) => {
        seen.add(`${p.family}:${guardedRow(p).fallsBack}`);
      }),
      { ...RUNS, seed: 212 },
    );
    for (const f of GUARDED_FAMILIES) expect([...seen].some((x) => x.startsWith(`${f}:`)), f).toBe(true);
    expect(seen.has('repeated-span:true') && seen.has('random:false')).toBe(true);
  });
  it('a certificate that counts one key per dropped block (not n_block) is caught', () => {
    const broken = fc.property(guardedRowArbitrary(), (p) => {
      const i = p.n - 1;
      const kept = (j: number) => j >= i - p.left || j < p.sinks;
      const scores = Array.from({ length: p.n }, (_, j) => {
        let s = 0;
        for (let c = 0; c < p.d; c++) s += p.q[c]! * p.keys[j * p.d + c]!;
        return p.bias[j] === -Infinity ? -Infinity : p.scale * s + p.bias[j]!;
      });
      const nb = Math.ceil(p.n / p.blockSize);
      const ones = new Float64Array(nb);
      for (let j = 0; j < p.n; j++) if (!kept(j) && p.bias[j] !== -Infinity) ones[Math.floor(j / p.blockSize)] = 1;
      const mHat = guardedDroppedMass(p.q, keyBlockSummaries(p.keys, p.n, p.d, p.blockSize), p.scale, 0, keptLogSumExp(scores.filter((_, j) => kept(j))), ones);
      return mHat >= guardedRow(p).m * (1 - 1e-12);
    });
    expect(fc.check(broken, { ...RUNS, seed: 213 }).failed).toBe(true);
  });
  it('a row that keeps no key but drops one falls back, also at a budget >= R', () => fc.assert(keptMaskedRowProperty(), { ...RUNS, seed: 214 }));
  it('a fallback rule on m_hat R alone (no "keeps no key" case) is caught: its row is 0, about 5 off', () => {
    const broken = fc.property(keptMaskedRowArbitrary(), (p) => {
      const { mHat, o } = guardedRow(p);
      const visible: number[] = [];
      for (let j = 0; j < p.n; j++) if (p.bias[j] !== -Infinity) for (let c = 0; c < p.dv; c++) visible.push(p.values[j * p.dv + c]!);
      if (!(guardedOutputBound(mHat, valueRange(visible, p.dv)) <= p.budget)) return true; // falls back: o exactly
      return o.every((x) => Math.abs(x) <= p.budget); // kept sparse: o_S = 0 (no key kept)
    });
    expect(fc.check(broken, { ...RUNS, seed: 215 }).failed).toBe(true);
  });
});

describe('statistical statements (fixed seeds; false-failure probability per case stated in bounds/statistical.ts)', () => {
  it('LSH with 2 buckets collides with probability 1 - theta/pi', () => fc.assert(lshCollisionProperty(), { ...RUNS, seed: 301 }));
  it('JL tail frequency stays under 2 exp(-(eps^2 - eps^3) k / 4)', () => fc.assert(jlTailProperty(), { ...RUNS, seed: 302 }));
  it('Performer kernel is unbiased with the stated MSE', () => fc.assert(performerKernelProperty(), { ...RUNS, seed: 303 }));
});
