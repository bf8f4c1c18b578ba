// Sparsify on a site with past keys (a KV cache input, causal(past): query i at position P + i), P = 300 cached keys
// and 724 new queries (1024 keys). The calibration gives the chooser the cache: headData's keys are past ⊕ new and
// its rows sit at P + i. On local calibration data the chooser takes a guarded window aligned `past` with a low
// predicted fallback rate; the site, lowered for onnxruntime, stays within its budget of the float64 reference on
// inputs nobody calibrated on (local with another seed; a span of the cache repeated 280 positions later, which
// the window drops and the same window without its guard gets wrong). With an outlier key in the cache that every
// query attends to, the chooser sees it and keeps it: a guarded window ∪ that key as a global token (without the
// cache in the calibration it sees neither the key nor the positions, and keeps the site dense). Priced with decode
// steps after the call (decodeSteps), each step costs the routed step (the dense form and the route), with no
// fallback rows, even where the call's predicted fallback rate is not 0.

import { onnxruntimeCpuProfile } from '@attnopt/cost';
import { type AttentionParams, attentionNode, attentionParams, causal, Graph, keySupport, type MaskSpec, rowKeys, SplitMix64, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { lowerAttentionPass } from '../src/lower/index.js';
import { type CalibrationSample, chooseSiteSpec, headData, SPARSIFY_DECISION, type SiteDecision, sparsifyPass } from '../src/sparsify/index.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

const P = 300;
const NQ = 724;
const T = P + NQ;
const H = 2;
const D = 16;
const BUDGET = 1e-3;
const ROUNDING = 1e-4;
const params: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd', spec: causal('past') };

/** Q of the new positions [H, NQ, D] and K, V of all positions [H, T, D]. */
interface Inputs {
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
}

/** Rotary-like features, q_t . k_t' peaked at t = t' (local attention); queries at positions P .. T - 1. */
function local(seed: number): Inputs {
  const rng = new SplitMix64(seed);
  const w = Array.from({ length: D / 2 }, (_, f) => 0.0015 * 1.6 ** f);
  const feat = (t: number, c: number) => 6 * (c % 2 === 0 ? Math.cos(w[c >> 1]! * t) : Math.sin(w[c >> 1]! * t));
  const q = new Float64Array(H * NQ * D);
  const k = new Float64Array(H * T * D);
  for (let h = 0; h < H; h++) {
    for (let t = 0; t < T; t++) for (let c = 0; c < D; c++) k[(h * T + t) * D + c] = feat(t, c) + 0.05 * (rng.nextFloat() - 0.5);
    for (let i = 0; i < NQ; i++) for (let c = 0; c < D; c++) q[(h * NQ + i) * D + c] = feat(P + i, c);
  }
  const v = Float64Array.from({ length: H * T * D }, () => rng.nextFloat() * 2 - 1);
  return { q, k, v };
}

/** Every key from position 280 on repeats the key 280 earlier; the query at t copies 1.2 x the key after the earlier copy. */
function repeatedSpan(seed: number): Inputs {
  const x = local(seed);
  const shift = 280;
  for (let h = 0; h < H; h++) {
    for (let t = shift; t < T; t++) for (let c = 0; c < D; c++) x.k[(h * T + t) * D + c] = x.k[(h * T + t - shift) * D + c]!;
    for (let i = 0; i < NQ; i++) for (let c = 0; c < D; c++) x.q[(h * NQ + i) * D + c] = 1.2 * x.k[(h * T + P + i - shift + 1) * D + c]!;
  }
  return x;
}

/** Local inputs whose first 72 queries of head 0 are near zero (their attention spread over every key: they fall back). */
function someDiffuse(seed: number): Inputs {
  const x = local(seed);
  for (let i = 0; i < 72; i++) for (let c = 0; c < D; c++) x.q[i * D + c]! *= 0.02;
  return x;
}

const OUTLIER = 100;
/** Local inputs with the cached key at position 100 aligned with every query (queries made non-negative). */
function cacheOutlier(seed: number): Inputs {
  const x = local(seed);
  for (let t = 0; t < x.q.length; t++) x.q[t] = Math.abs(x.q[t]!);
  for (let h = 0; h < H; h++) for (let c = 0; c < D; c++) x.k[(h * T + OUTLIER) * D + c] = 6;
  return x;
}

/** Rows [from, to) of each head of a [H, T, D] tensor. */
function rows(t: Float64Array, from: number, to: number): Float64Array {
  const out = new Float64Array(H * (to - from) * D);
  for (let h = 0; h < H; h++) out.set(t.subarray((h * T + from) * D, (h * T + to) * D), h * (to - from) * D);
  return out;
}

const f32 = (t: Float64Array) => Float64Array.from(Float32Array.from(t));
const parts = (x: Inputs) => ({ q: f32(x.q), k: f32(rows(x.k, P, T)), v: f32(rows(x.v, P, T)), pastKey: f32(rows(x.k, 0, P)), pastValue: f32(rows(x.v, 0, P)) });

function sample(x: Inputs): CalibrationSample {
  const p = parts(x);
  const t = (data: Float64Array, n: number) => ({ shape: [1, H, n, D], data });
  return { q: t(p.q, NQ), k: t(p.k, NQ), v: t(p.v, NQ), pastKey: t(p.pastKey, P), pastValue: t(p.pastValue, P) };
}

describe('sparsify on a site with past keys', () => {
  it('the calibration gives the chooser the cache: keys past ⊕ new, rows at P + i', () => {
    const x = local(1);
    const head = headData(params, sample(x), 0, 1);
    expect([head.nq, head.nk, head.past]).toEqual([NQ, T, P]);
    // key 5 of head 1 is the cache's, key P + 5 the call's
    expect(Array.from(head.k.subarray(5 * D, 6 * D))).toEqual(Array.from(f32(x.k.subarray((T + 5) * D, (T + 6) * D))));
    expect(Array.from(head.k.subarray((P + 5) * D, (P + 6) * D))).toEqual(Array.from(f32(x.k.subarray((T + P + 5) * D, (T + P + 6) * D))));
  });

  it('local data: a guarded window aligned past with a low predicted fallback rate', () => {
    const d = chooseSiteSpec(params, { id: 'site0', samples: [sample(local(1))] }, { budget: BUDGET, target: onnxruntimeCpuProfile });
    expect(d.guarantee).toBe('guarded');
    expect(d.guard).toEqual({ budget: BUDGET, blockSize: 64, baseline: causal('past'), summaries: 'box', logZ: 'max-logit' }); // the ball and the log-sum-exp certified no extra row here
    expect(d.fallbackRate).toBeLessThan(0.05);
    expect(keySupport(d.chosenSpec as MaskSpec)!.aligns).toEqual(['past']);
    // the site takes cached keys, so it decodes too: one query over 1024 keys, where the guarded window's blocks and
    // certificate cost more than the dense form (measured in onnxruntime: BENCHMARKS, "Padding out of reach")
    const decode = d.notes.filter((n) => n.startsWith(`one decode step (1 query over ${T} keys`));
    expect(decode).toHaveLength(1);
    expect(d.decodeStep!.keys).toBe(T);
    expect(d.decodeStep!.rewrittenSeconds).toBeGreaterThan(d.decodeStep!.asWrittenSeconds);
    expect(decode[0]).toContain(`(${(d.decodeStep!.rewrittenSeconds / d.decodeStep!.asWrittenSeconds).toFixed(2)}x)`);
  });

  it('decodeSteps: a site that decodes long enough after each call keeps its own form (each step costs the rewrite more)', () => {
    const options = { budget: BUDGET, target: onnxruntimeCpuProfile, headGroups: false } as const;
    const prompt = chooseSiteSpec(params, { id: 'site0', samples: [sample(local(1))] }, options);
    expect(prompt.guarantee).toBe('guarded');
    // break-even: the steps after which the decode steps' extra time outweighs what the rewrite saves on the call
    const step = prompt.decodeStep!;
    const breakEven = (prompt.timeBefore - prompt.timeAfter) / (step.rewrittenSeconds - step.asWrittenSeconds);
    expect(breakEven).toBeGreaterThan(1);
    const few = chooseSiteSpec(params, { id: 'site0', samples: [sample(local(1))] }, { ...options, decodeSteps: Math.floor(breakEven / 4) });
    expect(few.guarantee).toBe('guarded');
    expect(few.notes.some((n) => n.includes(`plus ${Math.floor(breakEven / 4)} decode steps`))).toBe(true);
    // each step priced as the routed step the note states (the dense form and the route): a step recomputes no
    // fallback row, whatever the call's predicted rate (here 5% of the rows: the near-zero queries of someDiffuse)
    const at = (decodeSteps: number) => chooseSiteSpec(params, { id: 'site0', samples: [sample(someDiffuse(1))] }, { ...options, decodeSteps });
    const [call, steps] = [at(0), at(10)];
    expect([call.guarantee, steps.guarantee]).toEqual(['guarded', 'guarded']);
    expect(call.fallbackRate).toBeGreaterThan(0.01);
    expect(steps.timeAfter - call.timeAfter).toBeCloseTo(10 * call.decodeStep!.rewrittenSeconds, 9);
    const many = chooseSiteSpec(params, { id: 'site0', samples: [sample(local(1))] }, { ...options, decodeSteps: Math.ceil(breakEven * 4) });
    expect(many.guarantee).toBe('exact');
    expect(many.chosen).toBe(many.before);
    // priced as the call plus the steps: the site as written costs its call and every step
    expect(many.timeBefore).toBeCloseTo(prompt.timeBefore + Math.ceil(breakEven * 4) * step.asWrittenSeconds, 9);
    expect(() => chooseSiteSpec(params, { id: 'site0', samples: [sample(local(1))] }, { ...options, decodeSteps: -1 })).toThrow(/decodeSteps must be finite and >= 0/);
  });

  it('an outlier key in the cache every query attends to: the chooser keeps it (a global token read off the cache)', () => {
    const full = sample(cacheOutlier(1));
    const d = chooseSiteSpec(params, { id: 'site0', samples: [full] }, { budget: BUDGET, target: onnxruntimeCpuProfile });
    expect(d.guarantee).toBe('guarded');
    // the last query (position T - 1) keeps the cached key 100
    const dims = { nq: NQ, nk: T, past: P };
    const keeps = (intervals: readonly number[]) => intervals.some((_, t) => t % 2 === 0 && intervals[t]! <= OUTLIER && OUTLIER < intervals[t + 1]!);
    expect(keeps(rowKeys(d.chosenSpec as MaskSpec, NQ - 1, dims))).toBe(true);
  });

  it('the guarded site, lowered, stays within the budget on inputs it was not calibrated on', async () => {
    const build = (guarded: boolean): { bytes: Uint8Array; decision: SiteDecision } => {
      const g = new Graph('guarded_past_site');
      const [q, k, v] = ['q', 'k', 'v'].map((name) => g.addInput(new Value(name, tensorType('f32', [1, H, 'seq', D]))));
      const [pastKey, pastValue] = ['past_key', 'past_value'].map((name) => g.addInput(new Value(name, tensorType('f32', [1, H, 'past', D]))));
      const y = new Value('y', tensorType('f32'));
      const node = attentionNode(params, { q: q!, k: k!, v: v!, pastKey: pastKey!, pastValue: pastValue! }, { y }, 'attn');
      g.addNode(node);
      g.outputs.push(y);
      runPipeline(g, [sparsifyPass({ calibration: [{ id: 'site0', samples: [sample(local(1))] }], budget: BUDGET, target: onnxruntimeCpuProfile })]);
      const decision = node.annotations.get(SPARSIFY_DECISION) as SiteDecision;
      if (!guarded) {
        node.attrs.delete('guardBudget');
        node.attrs.delete('guardBlockSize');
        node.attrs.delete('guardBaseline');
        expect(attentionParams(node).guard).toBeUndefined();
      }
      runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
      return { bytes: exportOnnx(newOnnxModel(g, { opset: 21 })), decision };
    };
    const guarded = build(true);
    const plain = build(false);
    expect(guarded.decision.guarantee).toBe('guarded');
    for (const [name, x, adversarial] of [
      ['local, another seed', local(9), false],
      ['a span of the cache repeated 280 positions later', repeatedSpan(9), true],
    ] as const) {
      const p = parts(x);
      const t = (data: Float64Array, n: number) => ({ shape: [1, H, n, D], data });
      const ref = referenceAttention(params, { q: t(p.q, NQ), k: t(p.k, NQ), v: t(p.v, NQ), pastKey: t(p.pastKey, P), pastValue: t(p.pastValue, P) }).y.data;
      const o = (data: Float64Array, n: number) => ortTensor('f32', [1, H, n, D], data);
      const run = async (bytes: Uint8Array) => ortValues((await runModel(bytes, { q: o(p.q, NQ), k: o(p.k, NQ), v: o(p.v, NQ), past_key: o(p.pastKey, P), past_value: o(p.pastValue, P) })).y!);
      const err = (y: Float64Array) => y.reduce((m, v, i) => Math.max(m, Math.abs(v - ref[i]!)), 0);
      expect(err(await run(guarded.bytes)), name).toBeLessThanOrEqual(BUDGET + ROUNDING);
      if (adversarial) expect(err(await run(plain.bytes)), name).toBeGreaterThan(BUDGET + ROUNDING);
    }
  }, 120_000);
});
