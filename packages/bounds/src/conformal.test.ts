// The split-conformal quantile: its rank, its edge cases, and its coverage checked empirically on exchangeable data.
import { describe, expect, it } from 'vitest';
import { conformalQuantile, conformalRank } from './index.js';

/** mulberry32: a small seeded generator of uniforms in [0, 1). */
function uniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('conformal quantile', () => {
  it('k = ceil((n + 1)(1 - alpha)), the k-th smallest error, +Infinity when k > n', () => {
    expect(conformalRank(19, 0.05)).toBe(19); // 20 * 0.95 = 19
    expect(conformalRank(99, 0.1)).toBe(90);
    expect(conformalRank(100, 0.1)).toBe(91); // 90.9 rounds up
    expect(conformalRank(18, 0.05)).toBe(19); // 18.05 rounds up: more than the 18 samples
    expect(conformalQuantile([5, 1, 4, 2, 3, 9, 8, 7, 6, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19], 0.05)).toEqual({ alpha: 0.05, samples: 19, quantile: 19 });
    expect(conformalQuantile([3, 1, 2], 0.5)).toEqual({ alpha: 0.5, samples: 3, quantile: 2 }); // k = ceil(4 * 0.5) = 2
    expect(conformalQuantile([1, 2, 3], 0.05).quantile).toBe(Infinity);
    expect(conformalQuantile([1, NaN, 2], 0.5).quantile).toBe(2); // NaN sorts as +Infinity
    expect(conformalQuantile([NaN, NaN, 1], 0.4).quantile).toBe(Infinity);
    expect(() => conformalRank(10, 0)).toThrow(/alpha/);
    expect(() => conformalRank(-1, 0.1)).toThrow(/sample count/);
  });

  // For continuous exchangeable errors the coverage P(e_new <= q) is exactly k / (n + 1) (the rank of e_new is
  // uniform on 1..n+1): with n = 99, alpha = 0.1 it is 90/100 = 0.9. Over T = 4000 independent trials (fixed seed)
  // the empirical coverage has standard deviation sqrt(0.9 * 0.1 / 4000) = 0.0047; the test accepts
  // [0.9 - 5 sd, 0.9 + 5 sd], so a correct quantile fails it with probability below 6e-7 (two normal tails at 5 sd),
  // while a quantile one rank off per 10 (k = 81 or 99) lands 0.09 away, 19 sd outside.
  it.each([
    ['exponential errors', (u: () => number) => -Math.log(1 - u())],
    ['heavy-tailed errors (Pareto, index 1)', (u: () => number) => 1 / (1 - u())],
  ])('covers a new exchangeable row with probability 1 - alpha: %s', (_name, draw) => {
    const n = 99;
    const alpha = 0.1;
    const T = 4000;
    const u = uniform(20261205);
    let covered = 0;
    for (let t = 0; t < T; t++) {
      const errors = Array.from({ length: n }, () => draw(u));
      const fresh = draw(u);
      if (fresh <= conformalQuantile(errors, alpha).quantile) covered++;
    }
    const sd = Math.sqrt(0.9 * 0.1 / T);
    expect(covered / T).toBeGreaterThanOrEqual(0.9 - 5 * sd);
    expect(covered / T).toBeLessThanOrEqual(0.9 + 5 * sd);
  });
});
