import { blockSparse, causal, dense, lshBuckets, topkBlocks, type AttentionParams } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { referenceAttention } from './attention.js';
import { fromBhsd, outputFromBhsd, packQkv } from './layout.js';
import { lshHashes, topkBlockIndices } from './resolvers/index.js';
import { droppedMass, softmaxRow } from './softmax.js';
import { boolTensor, tensor64 } from './tensor.js';

const params = (over: Partial<AttentionParams> = {}): AttentionParams => ({
  numHeads: 1,
  kvNumHeads: 1,
  headDim: 1,
  vHeadDim: 1,
  scale: 1,
  softcap: 0,
  layout: 'bhsd',
  spec: dense,
  ...over,
});

describe('referenceAttention anchors', () => {
  it('1 query, 2 keys: scores 0 and ln 3 give p = (1/4, 3/4), y = 4/4 + 3 * 8/4 = 7', () => {
    // q = 1, k = (0, ln 3), scale 1: e^0 = 1, e^(ln 3) = 3, sum 4; v = (4, 8): y = (1 * 4 + 3 * 8) / 4 = 7
    const out = referenceAttention(params({ scoresMode: 'softmax' }), {
      q: tensor64([1, 1, 1, 1], [1]),
      k: tensor64([1, 1, 2, 1], [0, Math.log(3)]),
      v: tensor64([1, 1, 2, 1], [4, 8]),
    });
    expect(out.y.data[0]).toBeCloseTo(7, 14);
    expect([...out.scores!.data].map((x) => +x.toFixed(14))).toEqual([0.25, 0.75]);
  });

  it('softcap comes before the bias: -inf stays -inf, a finite bias is added to the capped score', () => {
    // q = 1, k = (2, 0), softcap 1: capped = (tanh 2, 0); bias (0, ln 2): p0 = e^tanh2 / (e^tanh2 + 2)
    const inputs = { q: tensor64([1, 1, 1, 1], [1]), k: tensor64([1, 1, 2, 1], [2, 0]), v: tensor64([1, 1, 2, 1], [1, 0]) };
    const y = referenceAttention(params({ softcap: 1 }), { ...inputs, bias: tensor64([1, 2], [0, Math.log(2)]) }).y.data[0]!;
    const e = Math.exp(Math.tanh(2));
    expect(y).toBeCloseTo(e / (e + 2), 14);
    const masked = referenceAttention(params({ softcap: 1 }), { ...inputs, bias: tensor64([1, 2], [-Infinity, 0]) });
    expect(masked.y.data[0]).toBe(0); // only key 1 (v = 0) is left
  });

  it('a fully masked row gives 0, not NaN, even when the masked values are huge or infinite', () => {
    const out = referenceAttention(params({ scoresMode: 'softmax' }), {
      q: tensor64([1, 1, 2, 1], [1, 1]),
      k: tensor64([1, 1, 2, 1], [1, 2]),
      v: tensor64([1, 1, 2, 1], [Infinity, 5]),
      bias: boolTensor([2, 2], [0, 0, 0, 1]),
    });
    expect([...out.y.data]).toEqual([0, 5]);
    expect([...out.scores!.data]).toEqual([0, 0, 0, 1]);
  });

  it('GQA: query heads 0, 1 read kv head 0 and heads 2, 3 read kv head 1', () => {
    const out = referenceAttention(params({ numHeads: 4, kvNumHeads: 2 }), {
      q: tensor64([1, 4, 1, 1], [1, 2, 3, 4]),
      k: tensor64([1, 2, 1, 1], [1, 1]),
      v: tensor64([1, 2, 1, 1], [10, 20]),
    });
    expect([...out.y.data]).toEqual([10, 10, 20, 20]);
  });

  it('past keys come first and causal(past) aligns the query with its own position', () => {
    // past 2 keys + 1 new; the query is position 2: it sees all 3 keys (equal scores): y = mean(v) = 2
    const out = referenceAttention(params({ spec: causal('past') }), {
      q: tensor64([1, 1, 1, 1], [0]),
      k: tensor64([1, 1, 1, 1], [0]),
      v: tensor64([1, 1, 1, 1], [3]),
      pastKey: tensor64([1, 1, 2, 1], [0, 0]),
      pastValue: tensor64([1, 1, 2, 1], [1, 2]),
    });
    expect(out.y.data[0]).toBeCloseTo(2, 14);
    expect([...out.presentValue.data]).toEqual([1, 2, 3]);
  });

  it('every layout gives the same result for the same data', () => {
    const B = 2, H = 4, KH = 2, S = 3, D = 3;
    const rnd = (n: number, s: number) => Array.from({ length: n }, (_, k) => Math.sin(k * 1.7 + s));
    const q = tensor64([B, H, S, D], rnd(B * H * S * D, 0));
    const k = tensor64([B, KH, S, D], rnd(B * KH * S * D, 1));
    const v = tensor64([B, KH, S, D], rnd(B * KH * S * D, 2));
    const p = params({ numHeads: H, kvNumHeads: KH, headDim: D, vHeadDim: D, scale: 0.7, spec: causal() });
    const want = referenceAttention(p, { q, k, v }).y;
    for (const layout of ['bsd', 'bshd'] as const) {
      const got = referenceAttention({ ...p, layout }, { q: fromBhsd(q, layout), k: fromBhsd(k, layout), v: fromBhsd(v, layout) }).y;
      expect(got).toEqual(outputFromBhsd(want, layout));
    }
    const packed = referenceAttention({ ...p, layout: 'packed-qkv' }, { q: packQkv(q, k, v) }).y;
    expect(packed).toEqual(outputFromBhsd(want, 'bsd'));
  });

  it('a bias shorter than nk is padded with -inf; kvLength masks keys at or beyond it', () => {
    const base = { q: tensor64([1, 1, 1, 1], [0]), k: tensor64([1, 1, 3, 1], [0, 0, 0]), v: tensor64([1, 1, 3, 1], [1, 2, 6]) };
    expect(referenceAttention(params(), { ...base, bias: tensor64([1, 2], [0, 0]) }).y.data[0]).toBeCloseTo(1.5, 14);
    expect(referenceAttention(params(), { ...base, kvLength: [1] }).y.data[0]).toBe(1);
  });

  it('block-sparse spec selects whole key blocks', () => {
    const out = referenceAttention(params({ spec: blockSparse(1, 2, [[1]]) }), {
      q: tensor64([1, 1, 1, 1], [0]),
      k: tensor64([1, 1, 4, 1], [0, 0, 0, 0]),
      v: tensor64([1, 1, 4, 1], [100, 100, 1, 3]),
    });
    expect(out.y.data[0]).toBeCloseTo(2, 14);
  });
});

describe('softmaxRow and droppedMass', () => {
  it('an all -inf row is all zeros; dropped mass is the probability outside the kept set', () => {
    expect([...softmaxRow([-Infinity, -Infinity])]).toEqual([0, 0]);
    // scores (0, ln 3): p = (1/4, 3/4); keeping only key 1 drops 1/4
    expect(droppedMass([0, Math.log(3)], (j) => j === 1)).toBeCloseTo(0.25, 15);
  });
});

describe('data-dependent leaves', () => {
  const head = (q: number[], k: number[], d: number) => ({ q: Float64Array.from(q), k: Float64Array.from(k), nq: q.length / d, nk: k.length / d, d, scale: 1 });

  it('top-k blocks: equal scores keep the lower block index; quest scores by the per-dimension bound', () => {
    expect(topkBlockIndices(topkBlocks(2, 1, 'quest'), head([1, 1], [0, 0, 0, 0], 1), 0)).toEqual([0]);
    // q = 1 (d = 1): quest score of block c = max(k in block); blocks {1, -5}, {0, 2}: 1 < 2 -> block 1
    expect(topkBlockIndices(topkBlocks(2, 1, 'quest'), head([1], [1, -5, 0, 2], 1), 0)).toEqual([1]);
    // mean scores: mean(-5, 1) = -2 < mean(0, 2) = 1 -> block 1; with q = -1 block 0 wins
    expect(topkBlockIndices(topkBlocks(2, 1, 'mean'), head([-1], [1, -5, 0, 2], 1), 0)).toEqual([0]);
  });

  it('top-k blocks ranked causally: only the key blocks the query block can see compete', () => {
    // q = 1 (d = 1), blocks of 2: keys {0, 1}, {9, 9}, {5, 5}, {0, 0}; query block 1 holds queries 2, 3
    const k = [0, 1, 9, 9, 5, 5, 0, 0];
    const q = [1, 1, 1, 1, 1, 1, 1, 1];
    // ranked over every block, query block 0 takes block 1 (score 9), which its causal cut removes entirely
    expect(topkBlockIndices(topkBlocks(2, 1), head(q, k, 1), 0)).toEqual([1]);
    // top-left: query block 0 (queries 0, 1) sees block 0 only; query block 1 sees blocks 0 and 1
    expect(topkBlockIndices(topkBlocks(2, 1, 'quest', 'top-left'), head(q, k, 1), 0)).toEqual([0]);
    expect(topkBlockIndices(topkBlocks(2, 1, 'quest', 'top-left'), head(q, k, 1), 1)).toEqual([1]);
    // block 2 (score 5) beats block 0 (score 1) once visible: query block 2 keeps {1, 2}
    expect(topkBlockIndices(topkBlocks(2, 2, 'quest', 'top-left'), head(q, k, 1), 2)).toEqual([1, 2]);
    // k larger than the visible blocks: the visible ones, then future ones at -inf in index order (the cut drops them)
    expect(topkBlockIndices(topkBlocks(2, 3, 'quest', 'top-left'), head(q, k, 1), 0)).toEqual([0, 1, 2]);
    // bottom-right with 2 queries over 8 keys (offset 6): the single query block sees every key block
    expect(topkBlockIndices(topkBlocks(2, 1, 'quest', 'bottom-right'), head([1, 1], k, 1), 0)).toEqual([1]);
    // bottom-right with 4 queries over 6 keys (offset 2): query block 0 (queries 0, 1 at keys 2, 3) sees blocks 0, 1
    expect(topkBlockIndices(topkBlocks(2, 1, 'quest', 'bottom-right'), head([1, 1, 1, 1], [0, 1, 4, 4, 9, 9], 1), 0)).toEqual([1]);
    expect(topkBlockIndices(topkBlocks(2, 1, 'quest', 'past'), head([1, 1, 1, 1], [0, 1, 4, 4, 9, 9], 1), 0)).toEqual([1]);
    expect(topkBlockIndices(topkBlocks(2, 1, 'quest', 'top-left'), head([1, 1, 1, 1], [0, 1, 4, 4, 9, 9], 1), 0)).toEqual([0]);
  });

  it('LSH with 2 buckets is the sign of one random projection: x and 2x collide, x and -x never do', () => {
    const leaf = lshBuckets(1, 2, 7);
    const x = [0.3, -1.2, 0.8];
    const h = lshHashes(leaf, Float64Array.from([...x, ...x.map((t) => 2 * t), ...x.map((t) => -t)]), 3, 3);
    expect(h[0]).toBe(h[1]);
    expect(h[0]).not.toBe(h[2]);
  });
});
