// The guarded tier (BOUNDS.md (b')) as properties, on exactly the functions optimize uses (@attnopt/bounds:
// keyBlockSummaries, guardedDroppedMass, guardedOutputBound, guardFallsBack):
// - the certificate m_hat is never below the dropped mass m computed directly in float64;
// - the guarded row (o_S when its certificate is within the budget, the dense row o when it falls back) is within
//   the budget of o on every input;
// - a row that keeps no key but drops one always falls back, also at a budget >= R (its o_S, 0, is no convex
//   combination of V: m_hat R bounds nothing there; with V far from 0 the error would be about |v|).
// One query row (the last of a causal head), the kept set a window plus leading sinks, key blocks of 1..16 keys,
// the score bound from the box and the ball or from the box alone (guard.summaries 'box'), log Z_S the kept scores'
// log-sum-exp or the largest of them (guard.logZ 'max-logit').
// Input families include the adversarial ones: repeated spans (the query matches a key far back), one outlier key
// far outside the window, logits up to 80, all-equal keys, fully masked rows (every key's bias -inf), sinks
// that carry most of the mass, and rows whose kept keys are all masked (V shifted to [2, 8]). Float64 rounding slack: relative 1e-12 on m, 1e-12 (1 + max |v|) on the output.

import fc from 'fast-check';
import {
  guardedDroppedMass,
  guardFallsBack,
  type KeptLogZ,
  keptLogZ,
  keyBlockSummaries,
  maskSplit,
  type ScoreBoundSummaries,
  valueRange,
} from '@attnopt/bounds';
import { SplitMix64 } from '@attnopt/ir';

export const GUARDED_FAMILIES = ['random', 'repeated-span', 'outlier-key', 'logits-80', 'equal-keys', 'fully-masked', 'heavy-sinks', 'kept-masked'] as const;
export type GuardedFamily = (typeof GUARDED_FAMILIES)[number];

/** One guarded row problem: the last query of n keys, window `left` plus `sinks` leading keys kept. */
export interface GuardedRow {
  readonly family: GuardedFamily;
  readonly n: number;
  readonly d: number;
  readonly dv: number;
  readonly scale: number;
  readonly q: Float64Array;
  readonly keys: Float64Array;
  readonly values: Float64Array;
  /** Per key additive bias (-inf: masked by the model). */
  readonly bias: Float64Array;
  readonly left: number;
  readonly sinks: number;
  readonly blockSize: number;
  readonly budget: number;
  /** The score bound's summaries (default 'box-ball'; 'box': the box alone, as guard.summaries 'box' lowers it). */
  readonly summaries?: ScoreBoundSummaries;
  /** How the certificate takes log Z_S (default 'kept-sum'; 'max-logit': the largest kept score, as guard.logZ 'max-logit' lowers it). */
  readonly logZ?: KeptLogZ;
}

function build(family: GuardedFamily, n: number, d: number, left: number, sinks: number, blockSize: number, budget: number, seed: number): GuardedRow {
  const rng = new SplitMix64(seed);
  const g = () => rng.nextFloat() * 2 - 1;
  const dv = Math.max(1, d - 1);
  const keys = Float64Array.from({ length: n * d }, g);
  const q = Float64Array.from({ length: d }, () => 2 * g());
  const values = Float64Array.from({ length: n * dv }, () => 3 * g());
  const bias = new Float64Array(n);
  let scale = 1 / Math.sqrt(d);
  const setKey = (j: number, f: (c: number) => number) => {
    for (let c = 0; c < d; c++) keys[j * d + c] = f(c);
  };
  switch (family) {
    case 'random':
      for (let j = 0; j < n; j++) bias[j] = rng.nextFloat() < 0.1 ? -Infinity : 2 * g();
      break;
    case 'repeated-span': {
      // keys repeat with period P; the query looks for the copy of a key far before the window
      const P = Math.max(1, Math.floor(n / 3));
      for (let j = P; j < n; j++) setKey(j, (c) => keys[(j - P) * d + c]!);
      const target = Math.max(0, n - 1 - left - 1 - Math.floor(rng.nextFloat() * P));
      for (let c = 0; c < d; c++) q[c] = 4 * keys[target * d + c]!;
      break;
    }
    case 'outlier-key': {
      const j = Math.floor(rng.nextFloat() * Math.max(1, n - left - 1));
      const norm = Math.hypot(...q) || 1;
      setKey(j, (c) => (12 * q[c]!) / norm);
      break;
    }
    case 'logits-80': {
      let big = 0;
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let c = 0; c < d; c++) s += q[c]! * keys[j * d + c]!;
        big = Math.max(big, Math.abs(s));
      }
      scale = big > 0 ? 80 / big : 1;
      break;
    }
    case 'equal-keys':
      for (let j = 0; j < n; j++) setKey(j, (c) => keys[c]!);
      break;
    case 'fully-masked':
      bias.fill(-Infinity);
      break;
    case 'heavy-sinks':
      for (let j = 0; j < Math.min(sinks, n); j++) setKey(j, (c) => 6 * Math.sign(q[c]!));
      break;
    case 'kept-masked':
      // every kept key (window and sinks of the last row) masked; V far from 0, so an output of 0 is far off
      for (let j = 0; j < n; j++) if (j >= n - 1 - left || j < sinks) bias[j] = -Infinity;
      for (let x = 0; x < values.length; x++) values[x] = 5 + values[x]!;
      break;
  }
  return { family, n, d, dv, scale, q, keys, values, bias, left, sinks, blockSize, budget };
}

export function guardedRowArbitrary(maxLen = 96): fc.Arbitrary<GuardedRow> {
  return fc
    .record({
      family: fc.constantFrom(...GUARDED_FAMILIES),
      n: fc.integer({ min: 1, max: maxLen }),
      d: fc.integer({ min: 1, max: 8 }),
      left: fc.integer({ min: 0, max: 24 }),
      sinks: fc.integer({ min: 0, max: 4 }),
      blockSize: fc.integer({ min: 1, max: 16 }),
      budget: fc.constantFrom(0, 1e-4, 1e-3, 1e-2, 1e-1),
      seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      summaries: fc.constantFrom<ScoreBoundSummaries>('box-ball', 'box'),
      logZ: fc.constantFrom<KeptLogZ>('kept-sum', 'max-logit'),
    })
    .map((r) => ({ ...build(r.family, r.n, r.d, r.left, r.sinks, r.blockSize, r.budget, r.seed), summaries: r.summaries, logZ: r.logZ }));
}

/** The row's scores, kept set, and what the guarded site computes for it. */
export function guardedRow(p: GuardedRow): { m: number; mHat: number; fallsBack: boolean; o: Float64Array; out: Float64Array } {
  const { n, d, dv } = p;
  const i = n - 1;
  const scores = Float64Array.from({ length: n }, (_, j) => {
    if (p.bias[j] === -Infinity) return -Infinity;
    let s = 0;
    for (let c = 0; c < d; c++) s += p.q[c]! * p.keys[j * d + c]!;
    return p.scale * s + p.bias[j]!;
  });
  const kept = (j: number) => j >= i - p.left || j < p.sinks;
  const split = maskSplit(scores, p.values, dv, kept);
  // the sinks are never dropped: left out of their blocks' summaries, as the guarded lowering leaves them out
  const summaries = keyBlockSummaries(p.keys, n, d, p.blockSize, Array.from({ length: p.sinks }, (_, j) => j));
  const nb = Math.ceil(n / p.blockSize);
  const counts = new Float64Array(nb);
  const maxBias = new Float64Array(nb).fill(-Infinity);
  for (let j = 0; j < n; j++) {
    if (kept(j) || p.bias[j] === -Infinity) continue;
    const b = Math.floor(j / p.blockSize);
    counts[b]!++;
    maxBias[b] = Math.max(maxBias[b]!, p.bias[j]!);
  }
  const logZKept = keptLogZ(scores.filter((_, j) => kept(j)), p.logZ);
  const mHat = guardedDroppedMass(p.q, summaries, p.scale, 0, logZKept, counts, maxBias, p.summaries);
  // R: the range of V over every key the row may see (kept and dropped: the union of both hulls)
  const visible: number[] = [];
  for (let j = 0; j < n; j++) if (p.bias[j] !== -Infinity) for (let c = 0; c < dv; c++) visible.push(p.values[j * dv + c]!);
  const fallsBack = guardFallsBack(mHat, valueRange(visible, dv), p.budget);
  return { m: split.m, mHat, fallsBack, o: split.o, out: fallsBack ? split.o : split.oS };
}

/**
 * Rows that keep no key (kept keys all masked) and drop at least one unmasked key (n >= left + sinks + 2: key
 * `sinks` is dropped), with the budget at or above R, the range of V over the row's unmasked keys.
 */
export function keptMaskedRowArbitrary(): fc.Arbitrary<GuardedRow> {
  return fc
    .record({
      more: fc.integer({ min: 1, max: 48 }),
      d: fc.integer({ min: 1, max: 8 }),
      left: fc.integer({ min: 0, max: 24 }),
      sinks: fc.integer({ min: 0, max: 4 }),
      blockSize: fc.integer({ min: 1, max: 16 }),
      overR: fc.constantFrom(0, 0.5, 2, 100),
      seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      logZ: fc.constantFrom<KeptLogZ>('kept-sum', 'max-logit'),
    })
    .map((r) => {
      const p = build('kept-masked', r.left + r.sinks + 1 + r.more, r.d, r.left, r.sinks, r.blockSize, 0, r.seed);
      const visible: number[] = [];
      for (let j = 0; j < p.n; j++) if (p.bias[j] !== -Infinity) for (let c = 0; c < p.dv; c++) visible.push(p.values[j * p.dv + c]!);
      return { ...p, budget: valueRange(visible, p.dv) + r.overR, logZ: r.logZ };
    });
}

/** For any row that keeps no key but drops one, at a budget >= R: it falls back, and |out - o| <= budget. */
export function keptMaskedRowProperty(): fc.IPropertyWithHooks<[GuardedRow]> {
  return fc.property(keptMaskedRowArbitrary(), (p) => {
    const { out, o, fallsBack } = guardedRow(p);
    if (!fallsBack) throw new Error(`a row keeping no key (n ${p.n}, window ${p.left}, sinks ${p.sinks}) did not fall back at budget ${p.budget}`);
    for (let c = 0; c < p.dv; c++) {
      const err = Math.abs(out[c]! - o[c]!);
      if (!(err <= p.budget)) throw new Error(`kept-masked: output ${c} off by ${err} > budget ${p.budget}`);
    }
  });
}

/** For any guarded row: m_hat >= m (float64 slack 1e-12 relative). */
export function guardedCertificateProperty(maxLen = 96): fc.IPropertyWithHooks<[GuardedRow]> {
  return fc.property(guardedRowArbitrary(maxLen), (p) => {
    const { m, mHat } = guardedRow(p);
    if (!(mHat >= m * (1 - 1e-12))) throw new Error(`${p.family}: certificate ${mHat} below the dropped mass ${m}`);
  });
}

/** For any guarded row: |out - o| <= budget per coordinate (float64 slack 1e-12 (1 + max |v|)). */
export function guardedOutputProperty(maxLen = 96): fc.IPropertyWithHooks<[GuardedRow]> {
  return fc.property(guardedRowArbitrary(maxLen), (p) => {
    const { out, o, fallsBack } = guardedRow(p);
    const big = p.values.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
    for (let c = 0; c < p.dv; c++) {
      const err = Math.abs(out[c]! - o[c]!);
      if (!(err <= p.budget + 1e-12 * (1 + big))) {
        throw new Error(`${p.family}: output ${c} off by ${err} > budget ${p.budget} (fell back: ${fallsBack})`);
      }
    }
  });
}
