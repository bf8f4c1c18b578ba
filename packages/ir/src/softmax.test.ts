import { describe, expect, it } from 'vitest';
import { logSumExp, softmaxInPlace, softmaxRow } from './softmax.js';

describe('float64 softmax and log-sum-exp', () => {
  it('known values: softmax([0, ln 3]) = [1/4, 3/4], log Z = ln 4 (atol 1e-15)', () => {
    const s = Float64Array.of(0, Math.log(3));
    const logZ = softmaxInPlace(s);
    expect(s[0]).toBeCloseTo(0.25, 15);
    expect(s[1]).toBeCloseTo(0.75, 15);
    expect(logZ).toBeCloseTo(Math.log(4), 15);
    expect(logSumExp([0, Math.log(3)])).toBe(logZ);
  });

  it('large scores do not overflow: softmax([1000, 1000]) = [1/2, 1/2], logSumExp = 1000 + ln 2', () => {
    expect([...softmaxRow([1000, 1000])]).toEqual([0.5, 0.5]);
    expect(logSumExp([1000, 1000])).toBeCloseTo(1000 + Math.LN2, 12);
  });

  it('a fully masked or empty row gives zeros and -inf; NaN spreads to the whole row; +inf gives NaN', () => {
    expect([...softmaxRow([-Infinity, -Infinity])]).toEqual([0, 0]);
    expect(softmaxInPlace(new Float64Array(0))).toBe(-Infinity);
    expect(logSumExp([])).toBe(-Infinity);
    expect([...softmaxRow([1, NaN])].every(Number.isNaN)).toBe(true);
    expect(logSumExp([1, NaN])).toBeNaN();
    expect(logSumExp([1, Infinity])).toBe(Infinity);
    expect(softmaxRow([1, Infinity]).some(Number.isNaN)).toBe(true);
  });

  it('a row of a million scores (too long to spread into Math.max) sums to 1 (atol 1e-9)', () => {
    const s = Float64Array.from({ length: 1_000_000 }, (_, j) => Math.sin(j));
    const p = softmaxRow(s);
    expect(p.reduce((a, x) => a + x, 0)).toBeCloseTo(1, 9);
    // log Z agrees with the log of the plain sum of exponentials (no overflow at |s| <= 1), rtol 1e-12
    let z = 0;
    for (const x of s) z += Math.exp(x);
    expect(Math.abs(logSumExp(s) - Math.log(z))).toBeLessThan(1e-12 * Math.log(z));
  });
});
