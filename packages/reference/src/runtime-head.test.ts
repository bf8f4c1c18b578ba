// referenceAttention with head sizes read at run time (headDim / vHeadDim 0, bhsd): D comes from Q's last
// axis, Dv from V's. Anchors computed by hand, then agreement with the static-size parameters on random
// arrays of two head sizes, and the errors for arrays that disagree.

import { type AttentionParams, causal, dense } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { referenceAttention } from './attention.js';
import { withHeadDims } from './layout.js';
import { tensor64 } from './tensor.js';

const runtime = (over: Partial<AttentionParams> = {}): AttentionParams => ({
  numHeads: 2,
  kvNumHeads: 1,
  headDim: 0,
  vHeadDim: 0,
  scale: 1,
  softcap: 0,
  layout: 'bhsd',
  spec: dense,
  ...over,
});

function random(seed: number, n: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return (s / 2147483648) * 2 - 1;
  });
}

describe('referenceAttention, head sizes read at run time', () => {
  it('anchor: d 2, one query, keys scoring 0 and ln 3 -> p = (1/4, 3/4), v of width 3', () => {
    // q = (1, 2), k0 = (0, 0), k1 = (ln 3, 0): scores 0 and ln 3; v0 = (4, 0, 1), v1 = (8, 4, 1)
    // y = (4 + 3 * 8, 0 + 3 * 4, 1 + 3) / 4 = (7, 3, 1)
    const out = referenceAttention(runtime({ numHeads: 1 }), {
      q: tensor64([1, 1, 1, 2], [1, 2]),
      k: tensor64([1, 1, 2, 2], [0, 0, Math.log(3), 0]),
      v: tensor64([1, 1, 2, 3], [4, 0, 1, 8, 4, 1]),
    });
    expect(out.y.shape).toEqual([1, 1, 1, 3]);
    expect([...out.y.data].map((x) => +x.toFixed(12))).toEqual([7, 3, 1]);
  });

  it.each([
    [8, 4],
    [5, 5],
  ])('agrees with headDim %i, vHeadDim %i given statically (GQA, past, causal)', (d, dv) => {
    const [B, nq, past] = [2, 3, 2];
    const inputs = {
      q: tensor64([B, 2, nq, d], random(d, B * 2 * nq * d)),
      k: tensor64([B, 1, nq, d], random(d + 1, B * nq * d)),
      v: tensor64([B, 1, nq, dv], random(d + 2, B * nq * dv)),
      pastKey: tensor64([B, 1, past, d], random(d + 3, B * past * d)),
      pastValue: tensor64([B, 1, past, dv], random(d + 4, B * past * dv)),
    };
    const spec = causal('past');
    const got = referenceAttention(runtime({ spec, scale: 0.4 }), inputs);
    const want = referenceAttention(runtime({ spec, scale: 0.4, headDim: d, vHeadDim: dv }), inputs);
    expect(got.y).toEqual(want.y);
    expect(got.presentKey).toEqual(want.presentKey);
    expect(got.presentValue).toEqual(want.presentValue);
    expect(withHeadDims(runtime(), inputs.q, inputs.v)).toMatchObject({ headDim: d, vHeadDim: dv });
  });

  it('refuses K or past K whose head size differs from Q, and V / past V that differ', () => {
    const q = tensor64([1, 2, 1, 4], random(1, 8));
    const v = tensor64([1, 1, 2, 3], random(2, 6));
    expect(() => referenceAttention(runtime(), { q, k: tensor64([1, 1, 2, 5], random(3, 10)), v })).toThrow(
      'attention input K must have shape [1, 1, 2, 4], got [1, 1, 2, 5]',
    );
    const k = tensor64([1, 1, 2, 4], random(3, 8));
    expect(() => referenceAttention(runtime(), { q, k, v, pastKey: tensor64([1, 1, 1, 6], random(4, 6)), pastValue: tensor64([1, 1, 1, 3], random(5, 3)) })).toThrow(
      'pastKey must have shape [1, 1, past, 4], got [1, 1, 1, 6]',
    );
    expect(() => referenceAttention(runtime(), { q, k, v, pastKey: tensor64([1, 1, 1, 4], random(4, 4)), pastValue: tensor64([1, 1, 1, 2], random(5, 2)) })).toThrow(
      'pastValue must have shape [1, 1, past, 3], got [1, 1, 1, 2]',
    );
    expect(() => referenceAttention(runtime(), { q: tensor64([2, 4], random(1, 8)), k, v })).toThrow('attention input Q (bhsd) must have rank 4 to give the head size read at run time, got [2, 4]');
  });
});
