// Anchors for BOUNDS.md (b'): the block bounds hold for every key of a block, the certificate is never below the
// dropped mass computed directly in float64. Inputs from a fixed-seed generator.
import { describe, expect, it } from 'vitest';
import {
  blockScoreUpperBound,
  guardedDroppedMass,
  guardedOutputBound,
  guardFallsBack,
  keptKeyStandIn,
  keptLogSumExp,
  keptLogZ,
  keyBlockSummaries,
  maskRowErrorBound,
  softcappedUpperBound,
  valueRange,
} from './index.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>, bo: number, d: number) => {
  let s = 0;
  for (let c = 0; c < d; c++) s += a[c]! * b[bo + c]!;
  return s;
};

describe('key block summaries', () => {
  it('bound scale q . k for every key of the block (Quest and ball, the smaller), for both signs of scale', () => {
    const r = rng(7);
    for (let trial = 0; trial < 50; trial++) {
      const n = 37, d = 5, bs = 8;
      const keys = Float64Array.from({ length: n * d }, () => r() * 6);
      const s = keyBlockSummaries(keys, n, d, bs);
      const q = Float64Array.from({ length: d }, () => r() * 4);
      for (const scale of [0.5, -0.3]) {
        for (let j = 0; j < n; j++) {
          const u = blockScoreUpperBound(q, s, Math.floor(j / bs), scale);
          expect(scale * dot(q, keys, j * d, d)).toBeLessThanOrEqual(u + 1e-12);
        }
      }
    }
  });

  it("the box alone ('box') bounds every key too, never below the box and ball's smaller bound", () => {
    const r = rng(19);
    for (let trial = 0; trial < 50; trial++) {
      const n = 41, d = 6, bs = 8;
      const keys = Float64Array.from({ length: n * d }, () => r() * 6);
      const s = keyBlockSummaries(keys, n, d, bs);
      const q = Float64Array.from({ length: d }, () => r() * 4);
      for (const scale of [0.5, -0.3]) {
        for (let j = 0; j < n; j++) {
          const box = blockScoreUpperBound(q, s, Math.floor(j / bs), scale, 'box');
          expect(scale * dot(q, keys, j * d, d)).toBeLessThanOrEqual(box + 1e-12);
          expect(box).toBeGreaterThanOrEqual(blockScoreUpperBound(q, s, Math.floor(j / bs), scale) - 1e-12);
        }
      }
    }
  });

  it('are tight on a block of equal keys (both bounds equal the score)', () => {
    const keys = Float64Array.from([1, 2, 1, 2, 1, 2]);
    const s = keyBlockSummaries(keys, 3, 2, 4);
    // q . k = 3 * 1 + (-1) * 2 = 1, scale 2 -> 2
    expect(blockScoreUpperBound([3, -1], s, 0, 2)).toBeCloseTo(2, 10);
  });

  it('a non-finite key gives no bound (+inf), never a false one', () => {
    const s = keyBlockSummaries([0, Infinity, 1, 1], 2, 2, 2);
    expect(blockScoreUpperBound([1, -1], s, 0, 1)).toBe(Infinity);
    // a NaN key: the box alone sees it too (min / max comparisons alone would pass over it)
    for (const keys of [[NaN, 0, 1, 1], [1, 1, 0, NaN]]) {
      const nan = keyBlockSummaries(keys, 2, 2, 2);
      expect(blockScoreUpperBound([1, -1], nan, 0, 1, 'box')).toBe(Infinity);
      expect(blockScoreUpperBound([1, -1], nan, 0, 1)).toBe(Infinity);
    }
  });

  it('softcap keeps the bound an upper bound (tanh increases)', () => {
    expect(softcappedUpperBound(100, 30)).toBeCloseTo(30 * Math.tanh(100 / 30), 12);
    expect(softcappedUpperBound(3, 0)).toBe(3);
  });
});

describe('key block summaries without always-kept keys', () => {
  it('summarize each block over its other keys only; a block with no other key keeps them; the bound still holds for every key the block can drop', () => {
    const r = rng(11);
    const n = 40;
    const d = 3;
    const keys = Float64Array.from({ length: n * d }, () => 4 * r());
    const kept = [0, 5, 17, 24, 25, 26, 27, 39];
    // block 3 (keys 24..31 at block 8) holds four kept keys and four others; key 39 is the last of block 4
    for (let c = 0; c < d; c++) keys[17 * d + c] = 50; // an outlier at a kept key
    const s = keyBlockSummaries(keys, n, d, 8, kept);
    const keptSet = new Set(kept);
    for (let b = 0; b < 5; b++) {
      const others = Array.from({ length: 8 }, (_, t) => b * 8 + t).filter((j) => !keptSet.has(j));
      for (let c = 0; c < d; c++) {
        expect(s.kmin[b * d + c]).toBe(Math.min(...others.map((j) => keys[j * d + c]!)));
        expect(s.kmax[b * d + c]).toBe(Math.max(...others.map((j) => keys[j * d + c]!)));
      }
      const q = [r(), r(), r()];
      for (const j of others) expect(blockScoreUpperBound(q, s, b, 0.7)).toBeGreaterThanOrEqual(0.7 * dot(q, keys, j * d, d) - 1e-12);
    }
    // the outlier no longer widens block 2
    expect(s.kmax[2 * d]).toBeLessThan(50);
    // one block of kept keys only: summarized over them
    const all = keyBlockSummaries(keys, 8, d, 8, [0, 1, 2, 3, 4, 5, 6, 7]);
    expect(Array.from(all.kmax)).toEqual(Array.from(keyBlockSummaries(keys, 8, d, 8).kmax));
    expect(keptKeyStandIn(24, keptSet, 8, n)).toBe(28);
    expect(keptKeyStandIn(26, keptSet, 8, n)).toBe(28);
    expect(keptKeyStandIn(27, keptSet, 8, 28)).toBeUndefined();
  });
});

describe('guarded dropped-mass certificate', () => {
  it('is never below the dropped mass of a window (direct float64 softmax)', () => {
    const r = rng(11);
    for (let trial = 0; trial < 100; trial++) {
      const n = 64, d = 4, bs = 8, left = 5;
      const keys = Float64Array.from({ length: n * d }, () => r() * 8);
      const sum = keyBlockSummaries(keys, n, d, bs);
      const q = Float64Array.from({ length: d }, () => r() * 8);
      const i = Math.floor((r() + 0.5) * n);
      const scores = Array.from({ length: n }, (_, j) => 0.5 * dot(q, keys, j * d, d));
      const kept = (j: number) => j <= i && j >= i - left;
      const max = Math.max(...scores);
      const z = scores.reduce((a, s) => a + Math.exp(s - max), 0);
      const m = scores.reduce((a, s, j) => a + (kept(j) ? 0 : Math.exp(s - max) / z), 0);
      const counts = new Float64Array(n / bs);
      for (let j = 0; j < n; j++) if (!kept(j)) counts[Math.floor(j / bs)]!++;
      const mHat = guardedDroppedMass(q, sum, 0.5, 0, keptLogSumExp(scores.filter((_, j) => kept(j))), counts);
      expect(mHat).toBeGreaterThanOrEqual(m * (1 - 1e-12));
      expect(mHat).toBeLessThanOrEqual(1);
      const boxOnly = guardedDroppedMass(q, sum, 0.5, 0, keptLogSumExp(scores.filter((_, j) => kept(j))), counts, undefined, 'box');
      expect(boxOnly).toBeGreaterThanOrEqual(mHat * (1 - 1e-12));
      expect(boxOnly).toBeLessThanOrEqual(1);
      // log Z_S as the largest kept score alone: a lower bound, so never below the log-sum-exp's certificate, and
      // looser by at most -log of that key's probability among the kept keys (m_hat / (1 - m_hat) scales by 1 / p)
      const keptScores = scores.filter((_, j) => kept(j));
      const logZ = keptLogZ(keptScores);
      const maxLogit = keptLogZ(keptScores, 'max-logit');
      expect(logZ).toBe(keptLogSumExp(keptScores));
      expect(maxLogit).toBe(Math.max(...keptScores));
      const loose = guardedDroppedMass(q, sum, 0.5, 0, maxLogit, counts, undefined, 'box');
      expect(loose).toBeGreaterThanOrEqual(boxOnly * (1 - 1e-12));
      const odds = (x: number) => x / (1 - x);
      // (1 - m_hat carries float64's rounding over 1 - m_hat: rows within 1e-6 of 1 left out)
      if (loose < 1 - 1e-6) expect(odds(loose) / (odds(boxOnly) * Math.exp(logZ - maxLogit))).toBeCloseTo(1, 7);
    }
  });

  it('keptLogZ: none kept gives -inf both ways; a NaN score gives NaN for the max logit (the lowering then falls back)', () => {
    expect(keptLogZ([])).toBe(-Infinity);
    expect(keptLogZ([], 'max-logit')).toBe(-Infinity);
    expect(keptLogZ([1, NaN, 2], 'max-logit')).toBeNaN();
    expect(keptLogZ([Math.log(2), Math.log(2)])).toBeCloseTo(Math.log(4), 14);
  });

  it('is exact (1/2 = B / (Z_S + B)) when one dropped key equals the kept one', () => {
    const keys = [1, 0, 1, 0];
    const sum = keyBlockSummaries(keys, 2, 2, 1);
    // kept: key 0 (score 1); dropped: key 1 (block 1, score 1): m = 1/2
    expect(guardedDroppedMass([1, 0], sum, 1, 0, 1, [0, 1])).toBeCloseTo(0.5, 12);
  });

  it('drops nothing: 0; a masked dropped block (bias -inf): 0; nothing kept: 1', () => {
    const sum = keyBlockSummaries([1, 2, 3, 4], 4, 1, 2);
    expect(guardedDroppedMass([1], sum, 1, 0, 0, [0, 0])).toBe(0);
    expect(guardedDroppedMass([1], sum, 1, 0, 0, [0, 2], [0, -Infinity])).toBe(0);
    expect(guardedDroppedMass([1], sum, 1, 0, -Infinity, [2, 2])).toBe(1);
  });
});

describe('guarded output bound', () => {
  it('m_hat R, 0 at m_hat 0 even for an infinite range; falls back over the budget or with nothing kept', () => {
    expect(guardedOutputBound(0.25, 4)).toBe(1);
    expect(guardedOutputBound(0, Infinity)).toBe(0);
    expect(valueRange([0, 1, 3, -1, 2, 5], 2)).toBe(6);
    expect(guardFallsBack(0.001, 4, 0.01)).toBe(false);
    expect(guardFallsBack(0.01, 4, 0.01)).toBe(true);
    expect(guardFallsBack(1, 0, 0.01)).toBe(true);
    expect(guardFallsBack(0, 10, 0)).toBe(false);
  });

  it('a row that keeps no key but drops one falls back at a budget >= R (its sparse output 0 is no bound)', () => {
    // V in [4, 6]: R = 2 <= budget 2.5, yet the sparse row is 0 and the dense row about 5
    const sum = keyBlockSummaries([1, 2, 3, 4], 4, 1, 2);
    const mHat = guardedDroppedMass([1], sum, 1, 0, -Infinity, [2, 0]);
    expect(mHat).toBe(1);
    expect(guardFallsBack(mHat, valueRange([4, 6, 5, 5], 1), 2.5)).toBe(true);
    // nothing kept and nothing dropped (a fully masked row): exact, no fallback
    expect(guardFallsBack(guardedDroppedMass([1], sum, 1, 0, -Infinity, [0, 0]), 2, 2.5)).toBe(false);
  });

  it('mask row bound: m R with mass kept, 2 max|v| without', () => {
    expect(maskRowErrorBound(0.5, 3, true, 9)).toBe(1.5);
    expect(maskRowErrorBound(1, 3, false, 9)).toBe(18);
    expect(maskRowErrorBound(0, 3, false, 9)).toBe(0);
  });
});
