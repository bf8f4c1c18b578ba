// Top-k blocks on a causal site in the guarded tier of sparsify: the candidate is causal ∩ topkBlocks ranked among the
// blocks the query block can see (the baseline's own cut, candidates.ts), lowered block-gathered with the causal
// mask inside the gathered blocks and guarded over the causal baseline (guarded-blocks.ts). On retrieval-like data (each query block looks up one key
// far back: more than 512 positions for the later blocks, out of reach of every window and sinks candidate) the
// chooser with default candidates and no statistical forms gives the site causal ∩ top-k blocks as `guarded`, on
// the default target and on onnxruntime's. The rewritten site, lowered for onnxruntime, stays within its budget of
// the float64 causal reference on inputs it was not calibrated on (the same family with another seed and other
// positions of the looked-up keys, and diffuse inputs, where the same form without its guard breaks the budget).

import { onnxruntimeCpuProfile } from '@attnopt/cost';
import { type AttentionParams, attentionNode, attentionParams, blockSparse, causal, Graph, intersect, printSpec, SplitMix64, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { GUARD_FALLBACK_VALUE, lowerAttentionPass } from '../src/lower/index.js';
import { type CalibrationSample, chooseSiteSpec, MAX_GUARDED_FALLBACK, SPARSIFY_DECISION, type SiteDecision, sparsifyPass } from '../src/sparsify/index.js';
import { localInputs, type QKV } from './helpers/guarded-inputs.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

const N = 1024;
const H = 2;
const D = 16;
const BLOCK = 64;
const BUDGET = 1e-3;
const ROUNDING = 1e-4;
const SHAPE = [1, H, N, D];
const params: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd', spec: causal() };

/**
 * Retrieval: query block r's queries point along channel r (9 times, plus noise of 0.3), and one key along the
 * same channel (9 times) sits in an earlier block: block 0 for r <= 9, block r - 9 for later ones (more than 512
 * back from every query of the block), `shift` (< 34) positions further in; the other keys are noise in [-0.5, 0.5]; V uniform in [-1, 1]. The score
 * of a query with its key is about 20, with the others about 1 in size.
 */
function retrieval(seed: number, shift = 0): QKV {
  const rng = new SplitMix64(seed);
  const u = (amp: number) => (rng.nextFloat() * 2 - 1) * amp;
  const q = Float64Array.from({ length: H * N * D }, () => u(0.3));
  const k = Float64Array.from({ length: H * N * D }, () => u(0.5));
  const v = Float64Array.from({ length: H * N * D }, () => u(1));
  for (let h = 0; h < H; h++)
    for (let r = 0; r < N / BLOCK; r++) {
      const channel = r % D;
      for (let i = r * BLOCK; i < (r + 1) * BLOCK; i++) q[(h * N + i) * D + channel] = 9;
      const at = (r <= 9 ? 3 * r : (r - 9) * BLOCK + 5 + r) + shift;
      for (let c = 0; c < D; c++) k[(h * N + at) * D + c] = c === channel ? 9 : 0;
    }
  return { q, k, v };
}

const sample = (x: QKV): CalibrationSample => ({ q: { shape: SHAPE, data: x.q }, k: { shape: SHAPE, data: x.k }, v: { shape: SHAPE, data: x.v } });
const f32 = (t: Float64Array) => Float64Array.from(Float32Array.from(t));

async function run(bytes: Uint8Array, x: QKV): Promise<{ y: Float64Array; flags?: Float64Array }> {
  const out = await runModel(bytes, { q: ortTensor('f32', SHAPE, x.q), k: ortTensor('f32', SHAPE, x.k), v: ortTensor('f32', SHAPE, x.v) });
  const flags = Object.keys(out).find((k) => k !== 'y');
  return { y: ortValues(out.y!), ...(flags ? { flags: ortValues(out[flags]!) } : {}) };
}

const causalReference = (x: QKV) => referenceAttention(params, { q: { shape: SHAPE, data: f32(x.q) }, k: { shape: SHAPE, data: f32(x.k) }, v: { shape: SHAPE, data: f32(x.v) } }).y.data;
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let t = 0; t < a.length; t++) m = Math.max(m, Math.abs(a[t]! - b[t]!));
  return m;
};

describe('sparsify: top-k blocks on a causal site, guarded tier, default candidates', () => {
  it.each([
    ['the default target', {}],
    ["onnxruntime's", { target: onnxruntimeCpuProfile }],
  ] as const)('%s: causal ∩ top-k blocks as guarded, its guard over the causal baseline at the key block', (_name, target) => {
    const d = chooseSiteSpec(params, { id: 'site0', samples: [sample(retrieval(1))] }, { budget: BUDGET, ...target });
    expect(d.reasonDense).toBeUndefined();
    expect(d.guarantee).toBe('guarded');
    expect(d.chosen).toMatch(/^intersect\(causal, topk_blocks\(block=64, k=\d+, causal=top-left\)\)$/);
    expect(d.guard).toMatchObject({ budget: BUDGET, blockSize: BLOCK, baseline: causal() }); // summaries: the box alone where the ball certified no extra row
    expect(d.fallbackRate).toBeLessThan(0.05);
    // the premise: no window (with or without sinks) reaches the later blocks' keys, so each would recompute more
    // rows than a guarded form may (MAX_GUARDED_FALLBACK); windows with global tokens found in the calibration data
    // (the looked-up keys sit at the same positions in every input) may qualify, but cost more than the top-k
    const windows = d.tried.filter((t) => t.spec.includes('window') && !t.spec.includes('global'));
    expect(windows.length).toBeGreaterThan(0);
    for (const w of windows) if (w.fallbackRate !== null) expect(w.fallbackRate).toBeGreaterThan(MAX_GUARDED_FALLBACK);
  });

  it("predicts the lowered site's fallback rate: the same visible keys, key blocks and certificate per row", async () => {
    // causal ∩ a fixed layout (query block r keeps key blocks r - 1, r, r + 1), so the chooser and the lowering drop
    // exactly the same keys, on local inputs at 0.6 of their amplitude: attention wide enough that many rows'
    // certificates exceed the budget
    const rows = blockSparse(BLOCK, BLOCK, Array.from({ length: N / BLOCK }, (_, r) => [...new Set([Math.max(0, r - 1), r, Math.min(N / BLOCK - 1, r + 1)])]));
    const layout = intersect(causal(), rows); // the candidate as the chooser restricts it
    const x = localInputs(3, 1, H, N, D);
    for (const t of [x.q, x.k]) for (let j = 0; j < t.length; j++) t[j]! *= 0.6;
    const d = chooseSiteSpec(params, { id: 'site0', samples: [sample(x)] }, { budget: BUDGET, target: onnxruntimeCpuProfile, candidates: [rows], perHead: false });
    const predicted = d.tried.find((t) => t.spec === printSpec(layout))!.fallbackRate!;
    const g = new Graph('layout_site');
    const [q, k, v] = ['q', 'k', 'v'].map((n) => g.addInput(new Value(n, tensorType('f32', [1, H, 'seq', D]))));
    const y = new Value('y', tensorType('f32'));
    g.addNode(attentionNode({ ...params, spec: layout, guard: { budget: BUDGET, blockSize: BLOCK, baseline: causal() } }, { q: q!, k: k!, v: v! }, { y }, 'attn'));
    g.outputs.push(y);
    runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
    g.outputs.push(g.nodes.flatMap((n) => n.outputs).find((o) => o.name.endsWith(`/${GUARD_FALLBACK_VALUE}`))!);
    const { flags } = await run(exportOnnx(newOnnxModel(g, { opset: 21 })), x);
    const measured = flags!.reduce((a, f) => a + f, 0) / flags!.length;
    // rows near the threshold may differ: the lowering widens its float32 certificate (about 1% here)
    expect(predicted).toBeGreaterThan(0.2);
    expect(Math.abs(measured - predicted)).toBeLessThanOrEqual(0.01);
  }, 120_000);

  it('the rewritten site, lowered for onnxruntime, holds its budget on inputs it was not calibrated on; without its guard it does not', async () => {
    const g = new Graph('causal_site');
    const [q, k, v] = ['q', 'k', 'v'].map((n) => g.addInput(new Value(n, tensorType('f32', [1, H, 'seq', D]))));
    const y = new Value('y', tensorType('f32'));
    const node = attentionNode(params, { q: q!, k: k!, v: v! }, { y }, 'attn');
    g.addNode(node);
    g.outputs.push(y);
    runPipeline(g, [sparsifyPass({ calibration: [{ id: 'site0', samples: [sample(retrieval(1))] }], budget: BUDGET, target: onnxruntimeCpuProfile })]);
    const decision = node.annotations.get(SPARSIFY_DECISION) as SiteDecision;
    expect(decision.guarantee).toBe('guarded');
    const chosen = attentionParams(node);
    expect(printSpec(chosen.spec)).toMatch(/^intersect\(causal, topk_blocks/);
    runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
    g.outputs.push(g.nodes.flatMap((n) => n.outputs).find((o) => o.name.includes(GUARD_FALLBACK_VALUE))!);
    const guarded = exportOnnx(newOnnxModel(g, { opset: 21 }));
    const plainGraph = new Graph('unguarded_site');
    const [pq, pk, pv] = ['q', 'k', 'v'].map((n) => plainGraph.addInput(new Value(n, tensorType('f32', [1, H, 'seq', D]))));
    const py = new Value('y', tensorType('f32'));
    plainGraph.addNode(attentionNode({ ...params, spec: chosen.spec }, { q: pq!, k: pk!, v: pv! }, { y: py }, 'attn'));
    plainGraph.outputs.push(py);
    runPipeline(plainGraph, [lowerAttentionPass({ opset: 21 })]);
    const plain = exportOnnx(newOnnxModel(plainGraph, { opset: 21 }));
    // the same family, another seed, the looked-up keys 30 positions further in: within the budget, almost no row
    // recomputed (the top-k follows the keys; forms fitted to the calibration positions would not)
    const fresh = retrieval(2, 30);
    const got = await run(guarded, fresh);
    expect(maxAbsDiff(got.y, causalReference(fresh))).toBeLessThanOrEqual(BUDGET + ROUNDING);
    expect(got.flags!.reduce((a, f) => a + f, 0) / got.flags!.length).toBeLessThan(0.05);
    // diffuse inputs: the guard recomputes what the top-k drops
    const rng = new SplitMix64(8);
    const u = () => Float64Array.from({ length: H * N * D }, () => rng.nextFloat() * 2 - 1);
    const diffuse = { q: u(), k: u(), v: u() };
    const ref = causalReference(diffuse);
    expect(maxAbsDiff((await run(guarded, diffuse)).y, ref)).toBeLessThanOrEqual(BUDGET + ROUNDING);
    expect(maxAbsDiff((await run(plain, diffuse)).y, ref)).toBeGreaterThan(BUDGET + ROUNDING);
  }, 120_000);
});
