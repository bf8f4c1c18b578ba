// The default tier of sparsify: guarded. Local calibration data (rotary-like features, peaked at the query) gets a
// guarded window whose predicted fallback rate is low; diffuse data stays dense, saying the guarded forms would
// recompute too many rows. The guarded site, lowered for onnxruntime, stays within its budget of the float64
// reference of the site's own spec on an input nobody calibrated on (repeated spans: an induction pattern that
// reaches past every window), where the same window without its guard breaks the budget.

import { onnxruntimeCpuProfile } from '@attnopt/cost';
import { type AttentionParams, attentionNode, attentionParams, causal, gaussian, Graph, SplitMix64, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { lowerAttentionPass } from '../src/lower/index.js';
import { type CalibrationSample, chooseSiteSpec, SPARSIFY_DECISION, type SiteDecision, sparsifyPass } from '../src/sparsify/index.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

const N = 1024;
const H = 2;
const D = 16;
const BUDGET = 1e-3;
const params: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd', spec: causal() };

/**
 * q_i . k_j = A^2 sum_f cos(w_f (i - j)) with geometric frequencies (A = `amplitude`): local attention, no far key
 * realigns.
 */
function localSample(seed: number, amplitude = 6): CalibrationSample {
  const rng = new SplitMix64(seed);
  const w = Array.from({ length: D / 2 }, (_, f) => 0.0015 * 1.6 ** f);
  const q = new Float64Array(H * N * D);
  const k = new Float64Array(H * N * D);
  for (let h = 0; h < H; h++) for (let i = 0; i < N; i++) for (let c = 0; c < D; c++) {
    const x = amplitude * (c % 2 === 0 ? Math.cos(w[c >> 1]! * i) : Math.sin(w[c >> 1]! * i));
    q[(h * N + i) * D + c] = x;
    k[(h * N + i) * D + c] = x + 0.05 * (rng.nextFloat() - 0.5);
  }
  const v = Float64Array.from({ length: H * N * D }, () => rng.nextFloat() * 2 - 1);
  const shape = [1, H, N, D];
  return { q: { shape, data: q }, k: { shape, data: k }, v: { shape, data: v } };
}

/** localSample's features times 6/4 with isotropic noise of 1 on every key channel: the ball bounds the noise tighter. */
function noisyLocalSample(seed: number): CalibrationSample {
  const rng = new SplitMix64(seed);
  const w = Array.from({ length: D / 2 }, (_, f) => 0.0015 * 1.6 ** f);
  const noise = gaussian(seed + 1, H * N * D);
  const q = new Float64Array(H * N * D);
  const k = new Float64Array(H * N * D);
  for (let h = 0; h < H; h++) for (let i = 0; i < N; i++) for (let c = 0; c < D; c++) {
    const at = (h * N + i) * D + c;
    q[at] = 6 * (c % 2 === 0 ? Math.cos(w[c >> 1]! * i) : Math.sin(w[c >> 1]! * i));
    k[at] = q[at]! + noise[at]!;
  }
  const v = Float64Array.from({ length: H * N * D }, () => rng.nextFloat() * 2 - 1);
  const shape = [1, H, N, D];
  return { q: { shape, data: q }, k: { shape, data: k }, v: { shape, data: v } };
}

function diffuseSample(seed: number): CalibrationSample {
  const rng = new SplitMix64(seed);
  const shape = [1, H, N, D];
  const g = (a: number) => ({ shape, data: Float64Array.from({ length: H * N * D }, () => a * (rng.nextFloat() - 0.5)) });
  return { q: g(0.1), k: g(0.1), v: g(2) };
}

describe('sparsify, guarded tier (default)', () => {
  it('local data: a guarded window with a low predicted fallback rate', () => {
    const d = chooseSiteSpec(params, { id: 'site0', samples: [localSample(1)] }, { budget: BUDGET, target: onnxruntimeCpuProfile });
    expect(d.reasonDense).toBeUndefined();
    expect(d.guarantee).toBe('guarded');
    // the ball certified no row the box alone would recompute on these rotary-like keys: the cheaper box alone; nor
    // did the log-sum-exp over the largest kept logit (the peak carries the kept mass): no pass over the probabilities
    expect(d.guard).toEqual({ budget: BUDGET, blockSize: 64, baseline: causal(), summaries: 'box', logZ: 'max-logit' });
    expect(d.fallbackRate).toBeLessThan(0.05);
    expect(d.bound).toBe(BUDGET);
    expect(d.chosen).toMatch(/window/);
    // no cached keys: the site does not decode, and no note says it does
    expect(d.notes.filter((n) => n.includes('decode step'))).toEqual([]);
    expect(d.decodeStep).toBeUndefined();
  });

  it('noisy keys: a guarded form whose certificate keeps the ball (it certifies rows the box alone would recompute)', () => {
    const d = chooseSiteSpec(params, { id: 'site0', samples: [noisyLocalSample(1)] }, { budget: BUDGET, target: onnxruntimeCpuProfile, headGroups: false });
    expect(d.guarantee).toBe('guarded');
    expect(d.guard).toMatchObject({ budget: BUDGET, blockSize: 64, baseline: causal() });
    expect(d.guard!.summaries).toBeUndefined();
  });

  it('a flatter peak (amplitude 4): the certificate keeps the log-sum-exp (it certifies rows the largest kept logit alone would recompute)', () => {
    const d = chooseSiteSpec(params, { id: 'site0', samples: [localSample(1, 4)] }, { budget: BUDGET, target: onnxruntimeCpuProfile });
    expect(d.guarantee).toBe('guarded');
    expect(d.guard).toMatchObject({ budget: BUDGET, blockSize: 64, baseline: causal(), summaries: 'box' });
    expect(d.guard!.logZ).toBeUndefined();
  });

  it('diffuse data: stays dense, the guarded forms would recompute most rows', () => {
    const d = chooseSiteSpec(params, { id: 'site0', samples: [diffuseSample(2)] }, { budget: BUDGET, target: onnxruntimeCpuProfile });
    expect(d.guarantee).toBe('exact');
    expect(d.reasonDense).toMatch(/guarded forms would recompute too many rows/);
  });

  it('without allowUncertified no form is accepted on calibration data alone (every accepted one is guarded)', () => {
    const d = chooseSiteSpec(params, { id: 'site0', samples: [localSample(1)] }, { budget: BUDGET, target: onnxruntimeCpuProfile, guarded: false });
    expect(d.guarantee).toBe('exact');
    expect(d.tried.filter((t) => t.accepted)).toEqual([]);
  });

  it('the guarded site, lowered, stays within the budget on an input it was not calibrated on; the unguarded window does not', async () => {
    const build = (guarded: boolean): { bytes: Uint8Array; decision: SiteDecision } => {
      const g = new Graph('guarded_site');
      const q = g.addInput(new Value('q', tensorType('f32', [1, H, 'seq', D])));
      const k = g.addInput(new Value('k', tensorType('f32', [1, H, 'seq', D])));
      const v = g.addInput(new Value('v', tensorType('f32', [1, H, 'seq', D])));
      const y = new Value('y', tensorType('f32'));
      const node = attentionNode(params, { q, k, v }, { y }, 'attn');
      g.addNode(node);
      g.outputs.push(y);
      runPipeline(g, [sparsifyPass({ calibration: [{ id: 'site0', samples: [localSample(1)] }], budget: BUDGET, target: onnxruntimeCpuProfile })]);
      const decision = node.annotations.get(SPARSIFY_DECISION) as SiteDecision;
      if (!guarded) {
        const { guard: _, ...rest } = attentionParams(node);
        node.attrs.delete('guardBudget');
        node.attrs.delete('guardBlockSize');
        node.attrs.delete('guardBaseline');
        expect(attentionParams(node)).toEqual(rest);
      } else {
        expect(attentionParams(node).guard).toEqual(decision.guard);
      }
      runPipeline(g, [lowerAttentionPass({ opset: 21, strategy: 'banded' })]);
      return { bytes: exportOnnx(newOnnxModel(g, { opset: 21 })), decision };
    };
    const guarded = build(true);
    const plain = build(false);
    expect(guarded.decision.guarantee).toBe('guarded');
    // repeated spans: the keys of the first 400 positions repeat from 600 on, and each later query looks for the
    // key after its earlier copy (an induction head), far outside any window tried
    const x = localSample(9);
    const kk = Float64Array.from(x.k!.data);
    const qq = Float64Array.from(x.q.data);
    for (let h = 0; h < H; h++) for (let i = 600; i < N; i++) for (let c = 0; c < D; c++) {
      kk[(h * N + i) * D + c] = kk[(h * N + i - 600) * D + c]!;
      qq[(h * N + i) * D + c] = 1.2 * kk[(h * N + i - 599) * D + c]!;
    }
    const v = Float64Array.from(x.v!.data);
    const f = (t: Float64Array) => Float64Array.from(Float32Array.from(t));
    const shape = [1, H, N, D];
    const ref = referenceAttention(params, { q: { shape, data: f(qq) }, k: { shape, data: f(kk) }, v: { shape, data: f(v) } }).y.data;
    const run = async (bytes: Uint8Array) =>
      ortValues((await runModel(bytes, { q: ortTensor('f32', shape, qq), k: ortTensor('f32', shape, kk), v: ortTensor('f32', shape, v) })).y!);
    const err = (y: Float64Array) => y.reduce((m, t, i) => Math.max(m, Math.abs(t - ref[i]!)), 0);
    // float32 rounding: 1e-4 beside the budget (inputs of size <= 7, f32 scores and sums)
    expect(err(await run(guarded.bytes))).toBeLessThanOrEqual(BUDGET + 1e-4);
    expect(err(await run(plain.bytes))).toBeGreaterThan(BUDGET + 1e-4);
  }, 120_000);
});
