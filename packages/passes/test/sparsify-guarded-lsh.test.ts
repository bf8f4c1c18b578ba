// LSH key sets in the guarded tier of sparsify: over a dense baseline an LSH leaf carries a guard (guarded-lsh.ts),
// so with guarded forms on and no statistical forms a site where LSH is the cheapest form that qualifies gets it as
// `guarded`. The chooser's predicted fallback (evaluate.ts: @attnopt/bounds' lshDroppedMass per row, the leaf's own
// key groups) is the lowered site's. The site the pass rewrites lowers for onnxruntime and stays within its budget
// of the float64 dense reference on inputs it was not calibrated on, where the same LSH without its guard breaks it.
//
// Where LSH pays: the cost model prices the sorted, chunked form (2 rounds x 2 chunks of 64 keys per query) at
// about half of dense attention at n = 2048 on onnxruntime; the default candidates' LSH forms (chunk 0) score
// every pair (bucket keep-mask over dense scores) and are never cheaper, so the candidate is given here. The data:
// 32 clusters (directions +-8 e_c in 16 dimensions, noise 0.05) of 64 consecutive tokens each, queries equal to
// keys (shared-QK, as in Reformer): every bucket holds whole clusters, so the sorted chunks hold them whole too.

import { onnxruntimeCpuProfile } from '@attnopt/cost';
import { type AttentionParams, attentionNode, attentionParams, causal, dense, Graph, lshBuckets, SplitMix64, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { lowerAttentionPass } from '../src/lower/index.js';
import { type CalibrationSample, chooseSiteSpec, SPARSIFY_DECISION, type SiteDecision, sparsifyPass } from '../src/sparsify/index.js';
import type { QKV } from './helpers/guarded-inputs.js';
import { buildBhsdSite, f32, runBhsdSite, type Shape } from './helpers/bhsd-site.js';

const N = 2048;
const H = 2;
const D = 16;
const BUDGET = 1e-3;
const SHAPE = [1, H, N, D];
const params: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd', spec: dense };
const LSH = lshBuckets(2, 32, 0, 64);
const OPTIONS = { budget: BUDGET, target: onnxruntimeCpuProfile, candidates: [LSH] };

const sample = (x: QKV): CalibrationSample => ({ q: { shape: SHAPE, data: x.q }, k: { shape: SHAPE, data: x.k }, v: { shape: SHAPE, data: x.v } });

/** 32 clusters of 64 consecutive tokens (cluster order drawn from the seed), q = k; V uniform in [-1, 1]. */
function clusteredRuns(seed: number): QKV {
  const rng = new SplitMix64(seed);
  const u = () => rng.nextFloat() * 2 - 1;
  const k = new Float64Array(H * N * D);
  for (let h = 0; h < H; h++) {
    const order = Array.from({ length: 32 }, (_, c) => c);
    for (let t = 31; t > 0; t--) {
      const s = Math.floor(rng.nextFloat() * (t + 1));
      [order[t], order[s]] = [order[s]!, order[t]!];
    }
    for (let i = 0; i < N; i++) {
      const c = order[Math.floor(i / 64)]!;
      for (let d = 0; d < D; d++) k[(h * N + i) * D + d] = (d === c >> 1 ? (c & 1 ? -8 : 8) : 0) + 0.05 * u();
    }
  }
  return { q: Float64Array.from(k), k, v: Float64Array.from({ length: H * N * D }, u) };
}

/** 8 clusters (+8 e_c), each token in a random one: a bucket's tokens spread over several chunks, many rows fall back. */
function clusteredScattered(seed: number): QKV {
  const rng = new SplitMix64(seed);
  const u = () => rng.nextFloat() * 2 - 1;
  const k = new Float64Array(H * N * D);
  for (let r = 0; r < H * N; r++) {
    const c = Math.floor(rng.nextFloat() * 8);
    for (let d = 0; d < D; d++) k[r * D + d] = (d === c ? 8 : 0) + 0.1 * u();
  }
  return { q: Float64Array.from(k), k, v: Float64Array.from({ length: H * N * D }, u) };
}

const SITE: Shape = { B: 1, H, Hkv: H };
/** The site alone, lowered for onnxruntime; `flags` adds the fallback flags [1, H, N] as an output. */
const lowered = (p: AttentionParams, flags = false): Uint8Array => buildBhsdSite(SITE, p, { flags });
const run = (bytes: Uint8Array, x: QKV) => runBhsdSite(bytes, SITE, x, N, D);

const reference = (x: QKV) => referenceAttention(params, { q: { shape: SHAPE, data: f32(x.q) }, k: { shape: SHAPE, data: f32(x.k) }, v: { shape: SHAPE, data: f32(x.v) } }).y.data;

describe('sparsify: LSH over a dense baseline, guarded tier', () => {
  it('clustered runs, no statistical forms: LSH as guarded, cheaper than dense on onnxruntime, no predicted fallback', () => {
    const d = chooseSiteSpec(params, { id: 'site0', samples: [sample(clusteredRuns(1))] }, OPTIONS);
    expect(d.reasonDense).toBeUndefined();
    expect(d.guarantee).toBe('guarded');
    expect(d.chosen).toBe('lsh(hashes=2, buckets=32, chunk=64, seed=0)');
    expect(d.guard).toEqual({ budget: BUDGET, blockSize: 64, baseline: dense });
    expect(d.fallbackRate).toBeLessThan(0.05);
    expect(d.timeAfter).toBeLessThan(d.timeBefore);
  });

  it('a site with a bias input gets no guarded LSH', () => {
    const x = clusteredRuns(1);
    const d = chooseSiteSpec(params, { id: 'site0', samples: [{ ...sample(x), bias: { shape: [1, 1, 1, N], data: new Float64Array(N) } }] }, OPTIONS);
    expect(d.guarantee).toBe('exact');
    expect(d.tried[0]!.guardReason).toMatch(/lsh with a bias input/);
  });

  it("predicts the lowered site's fallback rate: the same key groups and certificate per row", async () => {
    const x = clusteredScattered(3);
    const d = chooseSiteSpec(params, { id: 'site0', samples: [sample(x)] }, { ...OPTIONS, perHead: false });
    const predicted = d.tried[0]!.fallbackRate!;
    const { flags } = await run(lowered({ ...params, spec: LSH, guard: { budget: BUDGET, blockSize: 64, baseline: dense } }, true), x);
    const measured = flags!.reduce((a, f) => a + f, 0) / flags!.length;
    // rows near the threshold may differ: the lowering widens its float32 certificate
    expect(predicted).toBeGreaterThan(0.2);
    expect(Math.abs(measured - predicted)).toBeLessThanOrEqual(0.01);
  }, 120_000);

  it('the rewritten site, lowered, stays within the budget on inputs it was not calibrated on; LSH without its guard does not', async () => {
    const g = new Graph('guarded_site');
    const [q, k, v] = ['q', 'k', 'v'].map((n) => g.addInput(new Value(n, tensorType('f32', [1, H, 'seq', D]))));
    const y = new Value('y', tensorType('f32'));
    const node = attentionNode(params, { q: q!, k: k!, v: v! }, { y }, 'attn');
    g.addNode(node);
    g.outputs.push(y);
    runPipeline(g, [sparsifyPass({ calibration: [{ id: 'site0', samples: [sample(clusteredRuns(1))] }], ...OPTIONS })]);
    const decision = node.annotations.get(SPARSIFY_DECISION) as SiteDecision;
    expect(decision.guarantee).toBe('guarded');
    expect(attentionParams(node).guard).toEqual(decision.guard);
    runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
    const guarded = exportOnnx(newOnnxModel(g, { opset: 21 }));
    const plain = lowered({ ...params, spec: LSH });
    const rng = new SplitMix64(8);
    const uniform = () => Float64Array.from({ length: H * N * D }, () => rng.nextFloat() * 2 - 1);
    // float32 rounding: 1e-4 beside the budget (f32 scores and sums)
    for (const [name, x, breaks] of [
      ['clustered runs, another seed', clusteredRuns(2), false],
      ['scattered clusters', clusteredScattered(4), true],
      ['diffuse', { q: uniform(), k: uniform(), v: uniform() }, true],
    ] as const) {
      const ref = reference(x);
      const err = (yy: Float64Array) => yy.reduce((m, t, i) => Math.max(m, Math.abs(t - ref[i]!)), 0);
      expect(err((await run(guarded, x)).y!), name).toBeLessThanOrEqual(BUDGET + 1e-4);
      if (breaks) expect(err((await run(plain, x)).y!), name).toBeGreaterThan(BUDGET + 1e-4);
    }
  }, 120_000);

  it('a causal site: causal ∩ LSH as guarded over its causal baseline, within the budget of the causal reference on inputs it was not calibrated on', async () => {
    const causalParams: AttentionParams = { ...params, spec: causal() };
    const g = new Graph('guarded_causal_site');
    const [q, k, v] = ['q', 'k', 'v'].map((n) => g.addInput(new Value(n, tensorType('f32', [1, H, 'seq', D]))));
    const y = new Value('y', tensorType('f32'));
    const node = attentionNode(causalParams, { q: q!, k: k!, v: v! }, { y }, 'attn');
    g.addNode(node);
    g.outputs.push(y);
    runPipeline(g, [sparsifyPass({ calibration: [{ id: 'site0', samples: [sample(clusteredRuns(1))] }], ...OPTIONS })]);
    const decision = node.annotations.get(SPARSIFY_DECISION) as SiteDecision;
    expect(decision.guarantee).toBe('guarded');
    expect(decision.chosen).toBe('intersect(causal, lsh(hashes=2, buckets=32, chunk=64, seed=0))');
    expect(decision.guard).toEqual({ budget: BUDGET, blockSize: 64, baseline: causal() });
    runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
    const guarded = exportOnnx(newOnnxModel(g, { opset: 21 }));
    const rng = new SplitMix64(9);
    const uniform = () => Float64Array.from({ length: H * N * D }, () => rng.nextFloat() * 2 - 1);
    for (const [name, x] of [['clustered runs, another seed', clusteredRuns(2)], ['diffuse', { q: uniform(), k: uniform(), v: uniform() }]] as const) {
      const ref = referenceAttention(causalParams, { q: { shape: SHAPE, data: f32(x.q) }, k: { shape: SHAPE, data: f32(x.k) }, v: { shape: SHAPE, data: f32(x.v) } }).y.data;
      const out = (await run(guarded, x)).y!;
      expect(out.reduce((m, t, i) => Math.max(m, Math.abs(t - ref[i]!)), 0), name).toBeLessThanOrEqual(BUDGET + 1e-4);
    }
  }, 120_000);
});
