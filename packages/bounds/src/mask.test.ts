// Anchors for BOUNDS.md (a), computed by hand in the comments.
import { describe, expect, it } from 'vitest';
import { halfL1ToRenormalized, maskErrorBound, maskErrorBoundL2, maskErrorBoundMaxAbs, maskSplit, valueDiameter } from './index.js';

describe('mask identity and bound', () => {
  it('reaches equality: two keys, values 0 and 1, S = {0}', () => {
    // s = [0, log 3] -> p = [1/4, 3/4]; o = 3/4; o_S = v_0 = 0; m = 3/4; bound m (1 - 0) = 3/4 = |o - o_S|.
    const split = maskSplit([0, Math.log(3)], [0, 1], 1, (j) => j === 0);
    expect(split.m).toBeCloseTo(0.75, 15);
    expect(split.o[0]).toBeCloseTo(0.75, 15);
    expect(split.oS[0]).toBe(0);
    expect(split.muT[0]).toBe(1);
    expect(maskErrorBound(split.m, [0, 1], 1)[0]).toBeCloseTo(Math.abs(split.o[0]! - split.oS[0]!), 15);
  });
  it('identity on three keys: o - o_S = m (mu_T - o_S)', () => {
    // s = [0, 0, log 2] -> p = [1/4, 1/4, 1/2]; S = {0, 1}, v = [2, 4, 10]: o = 0.5 + 1 + 5 = 6.5, o_S = 3,
    // m = 1/2, mu_T = 10: 6.5 - 3 = 3.5 = 0.5 * (10 - 3).
    const s = maskSplit([0, 0, Math.log(2)], [2, 4, 10], 1, (j) => j < 2);
    expect(s.o[0]).toBeCloseTo(6.5, 14);
    expect(s.oS[0]).toBeCloseTo(3, 14);
    expect(s.m).toBeCloseTo(0.5, 15);
    expect(s.o[0]! - s.oS[0]!).toBeCloseTo(s.m * (s.muT[0]! - s.oS[0]!), 14);
  });
  it('m = 0 gives bound 0 even for infinite values', () => {
    expect([...maskErrorBound(0, [Infinity, -Infinity], 1)]).toEqual([0]);
    expect(maskErrorBoundL2(0, [Infinity, 0], 1)).toBe(0);
    expect([...maskErrorBoundMaxAbs(0, [1, 2], 2)]).toEqual([0, 0]);
  });
  it('empty kept set: o_S = 0, m = 1; fully masked row: everything 0', () => {
    const s = maskSplit([1, 2], [3, 5], 1, () => false);
    expect(s.m).toBeCloseTo(1, 15);
    expect(s.oS[0]).toBe(0);
    const f = maskSplit([-Infinity, -Infinity], [3, Infinity], 1, () => true);
    expect([f.m, f.o[0], f.oS[0], f.muT[0]]).toEqual([0, 0, 0, 0]);
  });
  it('max-abs form and diameter', () => {
    // values rows (0,0), (3,4), (-1,0): diam = |(3,4)-(-1,0)| = sqrt(16+16)
    expect(valueDiameter([0, 0, 3, 4, -1, 0], 2)).toBeCloseTo(Math.sqrt(32), 14);
    expect([...maskErrorBoundMaxAbs(0.5, [0, 0, 3, 4, -1, 0], 2)]).toEqual([3, 4]);
    expect([...maskErrorBound(0.5, [0, 0, 3, 4, -1, 0], 2)]).toEqual([2, 2]);
  });
  it('(1/2) ||p - p_S||_1 = m', () => {
    // p = [0.5, 0.3, 0.2], S = {0, 1}: p_S = [0.625, 0.375, 0]; half L1 = (0.125 + 0.075 + 0.2) / 2 = 0.2
    expect(halfL1ToRenormalized([0.5, 0.3, 0.2], (j) => j < 2)).toBeCloseTo(0.2, 15);
  });
});
