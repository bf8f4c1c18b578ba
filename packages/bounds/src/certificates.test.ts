// Anchors for BOUNDS.md (b), derivations in the comments.
import { describe, expect, it } from 'vitest';
import {
  blockLogB,
  blockUpperBound,
  cauchySchwarzUpperBounds,
  droppedMassCertificate,
  droppedMassCertificateFromLog,
  logAddExp,
  logSumExp,
  topkGapBound,
  topkGapBoundFromScores,
} from './index.js';

describe('log space', () => {
  it('logSumExp', () => {
    expect(logSumExp([0, 0])).toBeCloseTo(Math.log(2), 15);
    expect(logSumExp([1000, 1000])).toBeCloseTo(1000 + Math.log(2), 12); // no overflow
    expect(logSumExp([])).toBe(-Infinity);
    expect(logSumExp([-Infinity, -Infinity])).toBe(-Infinity);
    expect(logSumExp([Infinity, 1])).toBe(Infinity);
    expect(logSumExp([NaN, 1])).toBeNaN();
    expect(logAddExp(Math.log(2), Math.log(3))).toBeCloseTo(Math.log(5), 15);
    expect(logAddExp(-Infinity, 4)).toBe(4);
  });
});

describe('dropped-mass certificate B / (Z_S + B)', () => {
  it('is exact when U_j = s_j', () => {
    // s = [0, log 3], S = {0}: Z_S = 1, B = 3, m = 3/4.
    expect(droppedMassCertificate(0, [Math.log(3)])).toBeCloseTo(0.75, 15);
  });
  it('edges: nothing dropped, empty kept set, -inf bounds, huge logits', () => {
    expect(droppedMassCertificate(0, [])).toBe(0);
    expect(droppedMassCertificate(0, [-Infinity])).toBe(0);
    expect(droppedMassCertificate(-Infinity, [2])).toBe(1);
    expect(droppedMassCertificate(-Infinity, [-Infinity])).toBe(0);
    // log Z_S = 1000, one dropped key with U = 1000: 1/2, without overflow
    expect(droppedMassCertificate(1000, [1000])).toBe(0.5);
    expect(droppedMassCertificateFromLog(0, NaN)).toBeNaN();
  });
  it('Cauchy-Schwarz: |scale| ||q|| ||k|| + bias', () => {
    // q = (3, 4) (norm 5), keys (1, 0) and (0, 2): U = 0.5 * 5 * 1 + 1 = 3.5 and 0.5 * 5 * 2 + 1 = 6
    expect([...cauchySchwarzUpperBounds([3, 4], [1, 0, 0, 2], 0.5, 1)]).toEqual([3.5, 6]);
    expect([...cauchySchwarzUpperBounds([3, 4], [1, 0, 0, 2], -0.5, [0, -Infinity])]).toEqual([2.5, -Infinity]);
  });
  it('Quest block bound', () => {
    // q = (1, -2), block keys (1, 1) and (-1, 3): kmin = (-1, 1), kmax = (1, 3);
    // max(1*-1, 1*1) + max(-2*1, -2*3) = 1 + -2 = -1; true max q.k = max(1 - 2, -1 - 6) = -1 (tight here).
    expect(blockUpperBound([1, -2], [-1, 1], [1, 3], 1)).toBe(-1);
    expect(blockUpperBound([1, -2], [-1, 1], [1, 3], 2)).toBe(-2);
    // scale < 0: scale * min: min(-1, 1) + min(-2, -6) = -7 -> -0.5 * -7 = 3.5 >= -0.5 * (-7) (q.k = -7 key)
    expect(blockUpperBound([1, -2], [-1, 1], [1, 3], -0.5)).toBe(3.5);
    // two dropped blocks: 2 keys with U = 0 and 1 key with U = log 2: B = 2 + 2 = 4
    expect(Math.exp(blockLogB([2, 1, 0], [0, Math.log(2), 100]))).toBeCloseTo(4, 14);
  });
  it('top-k gap', () => {
    // n = 4, k = 1, Delta = log 3: (3 / 3) / (1 + 3 / 3) = 1/2
    expect(topkGapBound(4, 1, Math.log(3))).toBeCloseTo(0.5, 15);
    expect(topkGapBound(4, 4, 0)).toBe(0);
    expect(topkGapBound(4, 0, 1)).toBe(1);
    expect(topkGapBound(4, 2, Infinity)).toBe(0);
    // equal scores, Delta = 0: (n-k)/n, equal to the true m
    expect(topkGapBound(5, 2, 0)).toBeCloseTo(0.6, 15);
    expect(topkGapBoundFromScores([0, 5, -Infinity, 5 - Math.log(3)], 1)).toBeCloseTo(3 / (Math.exp(Math.log(3)) + 3), 14);
    expect(topkGapBoundFromScores([1, -Infinity, -Infinity], 1)).toBe(0);
    expect(topkGapBoundFromScores([-Infinity, -Infinity], 0)).toBe(0);
  });
});
