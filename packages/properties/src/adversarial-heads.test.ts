// The adversarial head families: each has the structure its name promises, on every head.

import { describe, expect, it } from 'vitest';
import { ADVERSARIAL_HEAD_FAMILIES, adversarialHeads } from './arbitraries/adversarial-heads.js';

const o = { n: 23, d: 8, heads: 2, seed: 7, scale: 0.25 };
const row = (t: { data: Float64Array }, h: number, i: number) => [...t.data.subarray((h * o.n + i) * o.d, (h * o.n + i + 1) * o.d)];

describe('adversarialHeads', () => {
  it('every family: [1, heads, n, d] of f32 values, the same for the same seed', () => {
    for (const family of ADVERSARIAL_HEAD_FAMILIES) {
      const x = adversarialHeads(family, o);
      for (const t of [x.q, x.k, x.v]) {
        expect(t.shape).toEqual([1, 2, 23, 8]);
        expect(t.data.every((v) => Math.fround(v) === v && Number.isFinite(v))).toBe(true);
      }
      expect(adversarialHeads(family, o)).toEqual(x);
    }
  });

  it('repeated: token i is token i mod period, keys and queries; the span queries 4x the natural ones', () => {
    const x = adversarialHeads('repeated', { ...o, period: 5 });
    const nat = adversarialHeads('natural', o);
    for (let h = 0; h < 2; h++) {
      for (let i = 5; i < 23; i++) {
        expect(row(x.k, h, i)).toEqual(row(x.k, h, i % 5));
        expect(row(x.q, h, i)).toEqual(row(x.q, h, i % 5));
      }
      expect(row(x.q, h, 2)).toEqual(row(nat.q, h, 2).map((v) => Math.fround(4 * v)));
    }
  });

  it('outlier and sinkMass: the preferred key (1, or the sink 0) is 6 / sqrt(scale d) on every channel, every query non-negative', () => {
    for (const [family, j] of [['outlier', 1], ['sinkMass', 0]] as const) {
      const x = adversarialHeads(family, o);
      expect(row(x.k, 1, j).every((v) => v === Math.fround(6 / Math.sqrt(o.scale * o.d)))).toBe(true);
      expect(x.q.data.every((v) => v >= 0)).toBe(true);
    }
  });

  it('logits80: |scale q · k| reaches 80 where the signs agree; equalKeys: every key is key 0', () => {
    const x = adversarialHeads('logits80', o);
    const a = Math.fround(Math.sqrt(80 / (o.scale * o.d)));
    expect(x.q.data.every((v) => Math.abs(v) === a)).toBe(true);
    expect(x.k.data.every((v) => Math.abs(v) === a)).toBe(true);
    const e = adversarialHeads('equalKeys', o);
    for (let i = 1; i < 23; i++) expect(row(e.k, 1, i)).toEqual(row(e.k, 1, 0));
  });

  it('sinkLocal: key 0 is 16 along one direction u per head, and every query leans towards u', () => {
    const x = adversarialHeads('sinkLocal', o);
    for (let h = 0; h < 2; h++) {
      const sink = row(x.k, h, 0);
      expect(Math.hypot(...sink)).toBeCloseTo(16, 4);
      for (let i = 0; i < 23; i++) expect(row(x.q, h, i).reduce((a, v, c) => a + v * sink[c]!, 0)).toBeGreaterThan(0);
    }
  });
});
