// The statistical statements of BOUNDS.md (c), (d), (e) as fast-check properties with fixed seeds. Each property
// states its false-failure probability per generated case (`falseFailure`); over numRuns cases the union bound
// gives at most numRuns * falseFailure (cases may share random draws: the union bound needs no independence).
// - Binomial counts (LSH collisions, JL tail events) use the Chernoff-Hoeffding bound
//   Pr[X/T deviates to x] <= exp(-T KL(x || p)): rigorous, no normal approximation.
// - Performer estimates (unbounded, log-normal terms) use a k-sigma test with the exact standard error
//   (CLT approximation, stated as such); inputs are kept at ||x||, ||y|| <= 1/2 so ||x + y||^2 <= 1.

import fc from 'fast-check';
import { gaussian, lshBuckets } from '@attnopt/ir';
import { lshHashes, matrix, performerFeatures, performerProjection, type Matrix } from '@attnopt/reference';
import {
  angleBetween,
  angularCollisionProbability,
  jlTailProbability,
  performerKernelFourthMoment,
  performerKernelMse,
  softmaxKernel,
} from '@attnopt/bounds';

/** KL(a || b) between Bernoulli(a) and Bernoulli(b), 0 log 0 = 0. */
export function bernoulliKl(a: number, b: number): number {
  const term = (x: number, y: number) => (x === 0 ? 0 : y === 0 ? Infinity : x * Math.log(x / y));
  return term(a, b) + term(1 - a, 1 - b);
}

export interface StatisticalOptions {
  /** Random draws per case (hash rounds, projections, feature sets). */
  readonly trials?: number;
  /** Seed of the random stream the draws come from (fixed: the property is deterministic). */
  readonly streamSeed?: number;
}

/** Per-case false-failure probability of the Chernoff tests (LSH, JL). */
export const CHERNOFF_FALSE_FAILURE = 1e-9;
/** Sigmas of the Performer tests: two-sided normal tail 2e-9 per check (CLT approximation). */
export const PERFORMER_SIGMAS = 6;

const vector = (maxDim: number, radius: number) =>
  fc
    .array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 1, maxLength: maxDim })
    .map((v) => {
      const norm = Math.hypot(...v);
      return norm > radius ? v.map((x) => (x * radius) / norm) : v;
    });

/**
 * Angular LSH with 2 buckets (Reformer = one hyperplane, Charikar): over T hash rounds of the reference's
 * lshHashes, x and y share a bucket in Binomial(T, 1 - theta/pi) rounds. Fails when
 * T KL(X/T || p) > log(2 / delta), delta = CHERNOFF_FALSE_FAILURE (two-sided): false-failure <= delta per case.
 * x, y must be nonzero (a zero vector hashes to bucket 0 in every round: its angle is undefined); the property
 * skips norms below 1e-6, where the projections underflow to ties.
 */
export function lshCollisionProperty(options: StatisticalOptions = {}): fc.IPropertyWithHooks<[number[], number[], number]> {
  const { trials = 500 } = options;
  return fc.property(vector(6, 4), vector(6, 4), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (x0, y0, seed) => {
    const d = Math.min(x0.length, y0.length);
    const x = x0.slice(0, d);
    const y = y0.slice(0, d);
    if (Math.hypot(...x) < 1e-6 || Math.hypot(...y) < 1e-6) return; // zero (or underflowing) vectors: no angle
    const h = lshHashes(lshBuckets(trials, 2, seed), Float64Array.from([...x, ...y]), 2, d);
    let same = 0;
    for (let r = 0; r < trials; r++) if (h[2 * r] === h[2 * r + 1]) same++;
    const theta = angleBetween(x, y);
    const p = angularCollisionProbability(theta);
    if (trials * bernoulliKl(same / trials, p) > Math.log(2 / CHERNOFF_FALSE_FAILURE)) {
      throw new Error(`LSH collisions ${same}/${trials} far from 1 - theta/pi = ${p} (theta ${theta})`);
    }
  });
}

/**
 * JL tail (Linformer Thm 2): for R_t (k x D) with i.i.d. N(0, 1/k) entries from gaussian(streamSeed) of @attnopt/ir,
 * the frequency of | ||R_t x||^2 - ||x||^2 | > eps ||x||^2 over T projections is at most the bound: fails when
 * the frequency f exceeds the bound b and T KL(f || b) > log(1 / delta) (one-sided Chernoff, delta per case).
 */
export function jlTailProperty(options: StatisticalOptions = {}): fc.IPropertyWithHooks<[number[], number, number]> {
  const { trials = 400, streamSeed = 7 } = options;
  const K = 48;
  const D = 8;
  const pool = gaussian(streamSeed, trials * K * D);
  return fc.property(
    vector(D, 10),
    fc.integer({ min: 1, max: K }),
    fc.double({ min: 0.05, max: 0.95, noNaN: true }),
    (x, k, eps) => {
      const xx = x.reduce((a, b) => a + b * b, 0);
      if (xx === 0) return;
      let events = 0;
      for (let t = 0; t < trials; t++) {
        let sq = 0;
        for (let r = 0; r < k; r++) {
          let dot = 0;
          for (let c = 0; c < x.length; c++) dot += pool[(t * K + r) * D + c]! * x[c]!;
          sq += (dot * dot) / k; // entries N(0, 1/k): (g / sqrt(k)) . x
        }
        if (Math.abs(sq - xx) > eps * xx) events++;
      }
      const f = events / trials;
      const b = jlTailProbability(eps, k);
      if (f > b && trials * bernoulliKl(f, b) > Math.log(1 / CHERNOFF_FALSE_FAILURE)) {
        throw new Error(`JL tail frequency ${f} above the bound ${b} (k ${k}, eps ${eps})`);
      }
    },
  );
}

/**
 * Performer FAVOR+ (Lemma 2) with the reference's performerProjection (i.i.d. rows) and performerFeatures: over
 * S independent sets of m features, (1) the mean of phi(x) . phi(y) is within PERFORMER_SIGMAS sqrt(MSE / S) of
 * SM(x, y) (unbiased), and (2) the sample variance is within PERFORMER_SIGMAS standard errors of the MSE formula,
 * the standard error sqrt((mu4 - MSE^2) / S) from the exact 4th central moment. False failure about 4e-9 per case
 * (two 6-sigma checks, CLT approximation; ||x + y||^2 <= 1 keeps the log-normal terms' tails mild).
 */
export function performerKernelProperty(options: StatisticalOptions & { readonly features?: number } = {}): fc.IPropertyWithHooks<[number[], number[]]> {
  const { trials = 2000, streamSeed = 11, features = 8 } = options;
  const pools = new Map<number, Matrix>();
  const poolFor = (d: number) => {
    let w = pools.get(d);
    if (!w) pools.set(d, (w = performerProjection(trials * features, d, streamSeed + d, false)));
    return w;
  };
  return fc.property(vector(6, 0.5), vector(6, 0.5), (x0, y0) => {
    const d = Math.min(x0.length, y0.length);
    const x = x0.slice(0, d);
    const y = y0.slice(0, d);
    const w = poolFor(d);
    // phi over all S m rows carries 1 / sqrt(S m); one set of m features carries 1 / sqrt(m): rescale by S.
    const fx = performerFeatures(matrix(1, d, Float64Array.from(x)), w).data;
    const fy = performerFeatures(matrix(1, d, Float64Array.from(y)), w).data;
    const est = new Float64Array(trials);
    let mean = 0;
    for (let s = 0; s < trials; s++) {
      let k = 0;
      for (let t = s * features; t < (s + 1) * features; t++) k += fx[t]! * fy[t]!;
      est[s] = k * trials;
      mean += est[s]! / trials;
    }
    const sm = softmaxKernel(x, y);
    const mse = performerKernelMse(x, y, features);
    if (!(Math.abs(mean - sm) <= PERFORMER_SIGMAS * Math.sqrt(mse / trials) + 1e-12 * sm)) {
      throw new Error(`Performer kernel biased: mean ${mean} vs SM ${sm}, sd of mean ${Math.sqrt(mse / trials)}`);
    }
    let ss = 0;
    for (let s = 0; s < trials; s++) ss += (est[s]! - mean) ** 2;
    const variance = ss / (trials - 1);
    const mu4 = performerKernelFourthMoment(x, y, features);
    const se = Math.sqrt(Math.max(0, mu4 - mse * mse) / trials);
    if (!(Math.abs(variance - mse) <= PERFORMER_SIGMAS * se + 1e-12 * sm * sm)) {
      throw new Error(`Performer MSE ${variance} vs formula ${mse} (standard error ${se})`);
    }
  });
}
