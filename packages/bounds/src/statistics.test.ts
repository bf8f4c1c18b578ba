// Anchors for BOUNDS.md (c), (d), (e).
import { describe, expect, it } from 'vitest';
import {
  angleBetween,
  angularCollisionProbability,
  eckartYoungFloor,
  expectedLshDroppedMass,
  jlTailProbability,
  lshInclusionProbability,
  performerKernelFourthMoment,
  performerKernelMse,
  softmaxKernel,
} from './index.js';

describe('low rank', () => {
  it('Eckart-Young floor is sigma_{r+1}', () => {
    expect(eckartYoungFloor([1, 3, 2], 0)).toBe(3);
    expect(eckartYoungFloor([1, 3, 2], 1)).toBe(2);
    expect(eckartYoungFloor([1, 3, 2], 3)).toBe(0);
    expect(() => eckartYoungFloor([1], -1)).toThrow(/rank/);
  });
  it('JL tail', () => {
    // eps = 0.5, k = 64: 2 exp(-(0.25 - 0.125) 64 / 4) = 2 e^{-2}
    expect(jlTailProbability(0.5, 64)).toBeCloseTo(2 * Math.exp(-2), 15);
    expect(jlTailProbability(1.5, 64)).toBe(1);
    expect(jlTailProbability(0, 64)).toBe(1);
  });
});

describe('Performer', () => {
  it('MSE formula', () => {
    // x = y = 0: every feature is exactly 1, variance 0
    expect(performerKernelMse([0, 0], [0, 0], 4)).toBe(0);
    // x = (1, 0), y = (0, 0): a = 1, SM = 1: (1/m) e (1 - 1/e) = (e - 1)/m
    expect(performerKernelMse([1, 0], [0, 0], 2)).toBeCloseTo((Math.E - 1) / 2, 14);
    expect(softmaxKernel([1, 2], [3, -1])).toBeCloseTo(Math.E, 14);
    // 4th moment at x = y = 0 is 0; for m = 1, x = (1), y = (0): c = e^{-1/2}, Y = c e^{w}, E[Y^t] = c^t e^{t^2/2}
    expect(performerKernelFourthMoment([0], [0], 3)).toBeCloseTo(0, 15);
    const c = Math.exp(-0.5);
    const raw = (t: number) => c ** t * Math.exp((t * t) / 2);
    const mu4 = raw(4) - 4 * raw(1) * raw(3) + 6 * raw(1) ** 2 * raw(2) - 3 * raw(1) ** 4;
    expect(performerKernelFourthMoment([1], [0], 1)).toBeCloseTo(mu4, 8);
  });
});

describe('LSH', () => {
  it('collision probabilities', () => {
    expect(angleBetween([1, 0], [0, 2])).toBeCloseTo(Math.PI / 2, 15);
    expect(angleBetween([1, 0], [-1, 0])).toBeCloseTo(Math.PI, 15);
    expect(angleBetween([0, 0], [1, 0])).toBe(Math.PI / 2);
    expect(angleBetween([5e-324], [-1e-323])).toBe(Math.PI); // subnormal: no underflow
    expect(angularCollisionProbability(Math.PI / 2)).toBe(0.5);
    expect(angularCollisionProbability(Math.PI / 2, 3)).toBe(0.125);
    expect(angularCollisionProbability(0, 5)).toBe(1);
    expect(() => angularCollisionProbability(4)).toThrow(/angle/);
    // two rounds at P = 1/2: 1 - 1/4 = 3/4
    expect(lshInclusionProbability(0.5, 2)).toBe(0.75);
    // p = [0.5, 0.5], P = [1, 0.5], 2 rounds: 0.5 * 0 + 0.5 * 0.25 = 0.125
    expect(expectedLshDroppedMass([0.5, 0.5], [1, 0.5], 2)).toBe(0.125);
  });
});
