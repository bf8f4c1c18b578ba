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

describe('statistical statements (fixed seeds; false-failure probability per case stated in bounds/statistical.ts)', () => {
  it('LSH with 2 buckets collides with probability 1 - theta/pi', () => fc.assert(lshCollisionProperty(), { ...RUNS, seed: 301 }));
  it('JL tail frequency stays under 2 exp(-(eps^2 - eps^3) k / 4)', () => fc.assert(jlTailProperty(), { ...RUNS, seed: 302 }));
  it('Performer kernel is unbiased with the stated MSE', () => fc.assert(performerKernelProperty(), { ...RUNS, seed: 303 }));
});
