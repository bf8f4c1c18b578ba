// LSH lowerings in onnxruntime (optimizations off) against referenceAttention (float64):
// fp32, |ort - ref| <= 1e-5 + 1e-4 |ref| (the other lowerings' tolerance: fp32 matmul and softmax rounding).
// Inputs are rounded to fp32 before the reference hashes them, so bucket ids can differ only where fp32
// projections reorder two values within rounding: the generated inputs below have no such near tie.
// One exported model (symbolic lengths) runs at several lengths: below one chunk, a multiple of the chunk,
// and lengths that leave the last chunk partial.

import {
  type AttentionParams,
  type AttentionSpec,
  causal,
  difference,
  globalTokens,
  intersect,
  lshBuckets,
  sinks,
  slidingWindow,
  SplitMix64,
  union,
} from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { describe, expect, it } from 'vitest';
import { lowerSite, runSite, type Site } from './helpers/lowered-site.js';
import { ortTensor, runModel } from './helpers/ort.js';

const TOL = { atol: 1e-5, rtol: 1e-4 };

function params(spec: AttentionSpec, n: number, layout: AttentionParams['layout']): AttentionParams {
  const headDim = [16, 32, 8][n % 3]!;
  const gqa = n % 2 === 0;
  return {
    numHeads: gqa ? 4 : 2,
    kvNumHeads: 2,
    headDim,
    vHeadDim: layout === 'packed-qkv' ? headDim : n % 4 === 1 ? 12 : headDim,
    scale: 1 / Math.sqrt(headDim),
    softcap: n % 5 === 3 ? 3 : 0,
    layout,
    spec,
  };
}

const LAYOUTS = ['bsd', 'bhsd', 'bshd', 'packed-qkv'] as const;

const CHUNKED: [string, AttentionSpec][] = [
  ['lsh(1 round, 8 buckets, chunk 8)', lshBuckets(1, 8, 3, 8)],
  ['lsh(2 rounds, 4 buckets, chunk 16)', lshBuckets(2, 4, 5, 16)],
  ['lsh(3 rounds, 16 buckets, chunk 5)', lshBuckets(3, 16, 7, 5)],
  ['lsh(4 rounds, 2 buckets, chunk 4)', lshBuckets(4, 2, 11, 4)],
  ['causal ∩ lsh(2, 8, chunk 8)', intersect(causal(), lshBuckets(2, 8, 13, 8))],
  ['(lsh(2, 8, chunk 6) ∩ window(20)) ∖ sinks(1)', difference(intersect(lshBuckets(2, 8, 17, 6), slidingWindow(20, 0)), sinks(1))],
];

describe('chunked LSH: sorted by bucket, chunked, unsorted, vs referenceAttention', () => {
  const cases: [string, Site][] = [];
  let n = 0;
  for (const [name, spec] of CHUNKED) {
    for (const layout of n % 2 === 0 ? LAYOUTS.slice(0, 2) : LAYOUTS.slice(2)) {
      const s: Site = { params: params(spec, n, layout), batch: 2, ...(n % 4 === 3 ? { kvLength: true } : {}) };
      const p = s.params;
      cases.push([`${name} ${layout} d=${p.headDim}${p.numHeads > p.kvNumHeads ? ' gqa' : ''}${s.kvLength ? ' kvLength' : ''}${p.softcap ? ' softcap' : ''}`, s]);
      n++;
    }
  }
  const errs: number[] = [];
  it.each(cases)('%s', async (_name, s) => {
    const lowered = lowerSite(s, { opset: 21 });
    const ops = new Set(lowered.graph.nodes.map((x) => x.op));
    expect(['ArgMax', 'TopK', 'GatherND', 'ScatterElements'].filter((op) => !ops.has(op))).toEqual([]);
    for (const [nq, seed] of [[5, 1], [32, 2], [37, 3], [97, 4]] as const) {
      const r = await runSite(lowered, s, nq, seed + errs.length, TOL);
      expect(r.mismatches, `y at n=${nq}`).toEqual([]);
      errs.push(r.maxAbsError);
    }
  });
  it('reports', () => console.log(`chunked LSH lowering: ${errs.length} runs in onnxruntime, max abs error ${Math.max(...errs).toExponential(2)}`));
});

const DENSE: [string, AttentionSpec, Partial<Site>][] = [
  ['lsh(2 rounds, 8 buckets, chunk 0): same bucket', lshBuckets(2, 8, 19, 0), { extraKeys: 3 }],
  ['lsh(1, 4, chunk 0) ∩ causal, past keys', intersect(lshBuckets(1, 4, 23, 0), causal('past')), { past: 6 }],
  ['lsh(2, 8, chunk 8) ∪ sinks(2)', union(lshBuckets(2, 8, 29, 8), sinks(2)), {}],
  ['lsh(2, 8, chunk 0) ∪ global(0, 3)', union(lshBuckets(2, 8, 31, 0), globalTokens([0, 3])), { kvLength: true }],
];

describe('LSH in other combinations: dense scores with the bucket / chunk keep-mask, vs referenceAttention', () => {
  const errs: number[] = [];
  it.each(DENSE.map(([name, spec, extra], n) => [name, { params: params(spec, n, n % 2 ? 'bshd' : 'bhsd'), batch: 2, ...extra } as Site] as const))('%s', async (_name, s) => {
    const lowered = lowerSite(s, { opset: 21 });
    expect(lowered.graph.nodes.some((x) => x.op === 'ArgMax')).toBe(true);
    for (const [nq, seed] of [[9, 5], [41, 6]] as const) {
      const r = await runSite(lowered, s, nq, seed + errs.length, TOL);
      expect(r.mismatches, `y at n=${nq}`).toEqual([]);
      errs.push(r.maxAbsError);
    }
  });
  it('reports', () => console.log(`dense LSH lowering: ${errs.length} runs in onnxruntime, max abs error ${Math.max(...errs).toExponential(2)}`));
});

describe('chunked LSH plan and refusals', () => {
  const site = (spec: AttentionSpec, extra: Partial<Site> = {}): Site => ({ params: { ...params(spec, 1, 'bhsd'), softcap: 0 }, batch: 1, ...extra });
  it('chunked LSH takes the sorted form (GatherND of chunks); bucket equality and unions take the dense mask', () => {
    const ops = (spec: AttentionSpec) => new Set(lowerSite(site(spec), { opset: 21 }).graph.nodes.map((x) => x.op));
    const chunked = ops(lshBuckets(2, 8, 1, 8));
    expect(chunked.has('TopK') && chunked.has('GatherND')).toBe(true);
    const buckets = ops(lshBuckets(2, 8, 1, 0));
    expect(buckets.has('ArgMax') && !buckets.has('TopK') && !buckets.has('GatherND')).toBe(true);
    expect(ops(union(lshBuckets(2, 8, 1, 8), sinks(1))).has('GatherND')).toBe(false);
    expect(ops(intersect(lshBuckets(2, 8, 1, 8), causal())).has('GatherND')).toBe(true);
  });
  it('refuses chunked LSH with past keys (defined for nq == nk only), naming the node', () => {
    expect(() => lowerSite(site(lshBuckets(2, 8, 1, 8), { past: 4 }), { opset: 21 })).toThrow(/attn.*self-attention \(nq == nk\)/);
  });
  it('allocates no n x n intermediate at n = 4096: the largest is the rounds² · n · 2c candidate test, below n²/8', async () => {
    const s: Site = { params: { ...params(lshBuckets(2, 8, 3, 32), 1, 'bhsd'), numHeads: 1, kvNumHeads: 1, headDim: 8, vHeadDim: 8 }, batch: 1 };
    const { graph: g } = lowerSite(s, { opset: 21 });
    for (const node of g.nodes) for (const out of node.outputs) if (!g.outputs.includes(out)) g.outputs.push(out);
    const bytes = exportOnnx(newOnnxModel(g, { opset: 21 }));
    const n = 4096;
    const rng = new SplitMix64(9);
    const feeds = Object.fromEntries(['q', 'k', 'v'].map((name) => [name, ortTensor('f32', [1, 1, n, 8], Array.from({ length: n * 8 }, () => rng.nextFloat() - 0.5))]));
    const out = await runModel(bytes, feeds);
    const sizes = Object.entries(out).map(([name, t]) => [name, t.dims.reduce((a, c) => a * Number(c), 1)] as const);
    const [largest, size] = sizes.reduce((a, c) => (c[1] > a[1] ? c : a));
    console.log(`chunked LSH n=${n}: ${sizes.length} intermediates, largest ${largest} with ${size} elements (n² = ${n * n})`);
    expect(size).toBeLessThanOrEqual(2 * 2 * n * 2 * 32);
    expect(size).toBeLessThan((n * n) / 8);
  });
});
