// Top-k blocks and block layouts in the guarded tier of sparsify: over a dense baseline they now carry a guard
// (guarded-blocks.ts), so with guarded forms on and no statistical forms a site where top-k blocks is the cheapest
// form gets it as `guarded`, with the guard's summaries at the spec's key block. The chooser's predicted fallback
// (evaluate.ts, @attnopt/bounds per row) is the lowered site's: same key blocks, same certificate. The site the
// pass rewrites lowers for onnxruntime and stays within its budget of the float64 dense reference on an input it was
// not calibrated on, where the same top-k without its guard breaks it.

import { onnxruntimeCpuProfile } from '@attnopt/cost';
import { type AttentionParams, attentionNode, attentionParams, blockSparse, dense, Graph, SplitMix64, tensorType, topkBlocks, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { lowerAttentionPass } from '../src/lower/index.js';
import { type CalibrationSample, chooseSiteSpec, SPARSIFY_DECISION, type SiteDecision, sparsifyPass } from '../src/sparsify/index.js';
import { localInputs, type QKV } from './helpers/guarded-inputs.js';
import { buildBhsdSite, f32, runBhsdSite, type Shape } from './helpers/bhsd-site.js';

const N = 1024;
const H = 2;
const D = 16;
const BUDGET = 1e-3;
const SHAPE = [1, H, N, D];
const params: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd', spec: dense };
const TOPK = topkBlocks(64, 4, 'quest');

const sample = (x: QKV): CalibrationSample => ({ q: { shape: SHAPE, data: x.q }, k: { shape: SHAPE, data: x.k }, v: { shape: SHAPE, data: x.v } });
const local = (seed: number) => localInputs(seed, 1, H, N, D);

const SITE: Shape = { B: 1, H, Hkv: H };
/** The site alone, lowered for onnxruntime; `flags` adds the fallback flags [1, H, N] as an output. */
const lowered = (p: AttentionParams, flags = false): Uint8Array => buildBhsdSite(SITE, p, { flags });
const run = (bytes: Uint8Array, x: QKV) => runBhsdSite(bytes, SITE, x, N, D);

describe('sparsify: top-k blocks over a dense baseline, guarded tier', () => {
  it('local data, top-k the only candidate, no statistical forms: top-k blocks as guarded, its guard at the key block', () => {
    // the guard block asked for (32) is not the spec's key block: the guard takes the key block (64)
    const d = chooseSiteSpec(params, { id: 'site0', samples: [sample(local(1))] }, { budget: BUDGET, target: onnxruntimeCpuProfile, candidates: [TOPK], guardBlockSize: 32 });
    expect(d.reasonDense).toBeUndefined();
    expect(d.guarantee).toBe('guarded');
    expect(d.chosen).toBe('topk_blocks(block=64, k=4)');
    expect(d.guard).toEqual({ budget: BUDGET, blockSize: 64, baseline: dense, summaries: 'box', logZ: 'max-logit' }); // the ball and the log-sum-exp certified no extra row here
    expect(d.fallbackRate).toBeLessThan(0.05);
  });

  it("predicts the lowered site's fallback rate: the same key blocks and certificate per row", async () => {
    // a fixed layout (query block r keeps key blocks r - 1, r, r + 1), so the chooser and the lowering drop exactly the
    // same keys, on local inputs at 0.6 of their amplitude: attention wide enough that most rows' certificates exceed
    // the budget (with summaries over 32 keys, the block asked for, the chooser would predict none)
    const layout = blockSparse(64, 64, Array.from({ length: N / 64 }, (_, r) => [...new Set([Math.max(0, r - 1), r, Math.min(N / 64 - 1, r + 1)])]));
    const x = local(3);
    for (const t of [x.q, x.k]) for (let j = 0; j < t.length; j++) t[j]! *= 0.6;
    const d = chooseSiteSpec(params, { id: 'site0', samples: [sample(x)] }, { budget: BUDGET, target: onnxruntimeCpuProfile, candidates: [layout], guardBlockSize: 32, perHead: false });
    const predicted = d.tried.find((t) => t.spec.startsWith('blocks'))!.fallbackRate!;
    const { flags } = await run(lowered({ ...params, spec: layout, guard: { budget: BUDGET, blockSize: 64, baseline: dense } }, true), x);
    const measured = flags!.reduce((a, f) => a + f, 0) / flags!.length;
    // rows near the threshold may differ: the lowering widens its float32 certificate (about 1% here)
    expect(predicted).toBeGreaterThan(0.2);
    expect(Math.abs(measured - predicted)).toBeLessThanOrEqual(0.01);
  }, 120_000);

  it('the rewritten site, lowered, stays within the budget on diffuse input; top-k without its guard does not', async () => {
    const g = new Graph('guarded_site');
    const [q, k, v] = ['q', 'k', 'v'].map((n) => g.addInput(new Value(n, tensorType('f32', [1, H, 'seq', D]))));
    const y = new Value('y', tensorType('f32'));
    const node = attentionNode(params, { q: q!, k: k!, v: v! }, { y }, 'attn');
    g.addNode(node);
    g.outputs.push(y);
    runPipeline(g, [sparsifyPass({ calibration: [{ id: 'site0', samples: [sample(local(1))] }], budget: BUDGET, target: onnxruntimeCpuProfile, candidates: [TOPK] })]);
    const decision = node.annotations.get(SPARSIFY_DECISION) as SiteDecision;
    expect(decision.guarantee).toBe('guarded');
    expect(attentionParams(node).guard).toEqual(decision.guard);
    runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
    const guarded = exportOnnx(newOnnxModel(g, { opset: 21 }));
    const plain = lowered({ ...params, spec: TOPK });
    const rng = new SplitMix64(8);
    const u = () => Float64Array.from({ length: H * N * D }, () => rng.nextFloat() * 2 - 1);
    const x = { q: u(), k: u(), v: u() };
    const f = (t: Float64Array) => Float64Array.from(Float32Array.from(t));
    const ref = referenceAttention(params, { q: { shape: SHAPE, data: f(x.q) }, k: { shape: SHAPE, data: f(x.k) }, v: { shape: SHAPE, data: f(x.v) } }).y.data;
    const err = (yy: Float64Array) => yy.reduce((m, t, i) => Math.max(m, Math.abs(t - ref[i]!)), 0);
    // float32 rounding: 1e-4 beside the budget (inputs of size <= 1, f32 scores and sums)
    expect(err((await run(guarded, x)).y!)).toBeLessThanOrEqual(BUDGET + 1e-4);
    expect(err((await run(plain, x)).y!)).toBeGreaterThan(BUDGET + 1e-4);
  }, 120_000);

  it('a site with an n x n bias input gets no block-gathered form (a key bias [.., 1, T] is gathered with the keys)', () => {
    const g = new Graph('biased_site');
    const [q, k, v] = ['q', 'k', 'v'].map((n) => g.addInput(new Value(n, tensorType('f32', [1, H, 'seq', D]))));
    const bias = g.addInput(new Value('bias', tensorType('f32', [1, 1, 'seq', 'seq'])));
    const node = attentionNode(params, { q: q!, k: k!, v: v!, bias }, { y: new Value('y', tensorType('f32')) }, 'attn');
    g.addNode(node);
    const x = local(1);
    const withBias = { ...sample(x), bias: { shape: [1, 1, N, N], data: new Float64Array(N * N) } };
    runPipeline(g, [sparsifyPass({ calibration: [{ id: 'site0', samples: [withBias] }], budget: BUDGET, target: onnxruntimeCpuProfile, candidates: [TOPK] })]);
    const decision = node.annotations.get(SPARSIFY_DECISION) as SiteDecision;
    expect(decision.guarantee).toBe('exact');
    expect(decision.tried[0]!.reason).toMatch(/with a bias input that is no key bias .*varies along the query axis .*an n x n bias/);
  });
});
