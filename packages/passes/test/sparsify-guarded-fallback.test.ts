// A guarded form pays only when few rows fall back: the chooser refuses one whose predicted fallback rate is over
// MAX_GUARDED_FALLBACK (25%), whatever the cost model says. Calibration data: local attention (rotary-like
// features peaked at the query) on the first rows, diffuse attention (small queries: near-uniform over the causal
// prefix, which every window drops most of) on the last `share` of the rows.

import { onnxruntimeCpuProfile } from '@attnopt/cost';
import { type AttentionParams, causal, SplitMix64 } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { type CalibrationSample, chooseSiteSpec, MAX_GUARDED_FALLBACK } from '../src/sparsify/index.js';

const N = 1024;
const H = 2;
const D = 16;
const BUDGET = 1e-3;
const params: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd', spec: causal() };

function mixedSample(seed: number, share: number): CalibrationSample {
  const rng = new SplitMix64(seed);
  const w = Array.from({ length: D / 2 }, (_, f) => 0.0015 * 1.6 ** f);
  const q = new Float64Array(H * N * D);
  const k = new Float64Array(H * N * D);
  const firstDiffuse = Math.round(N * (1 - share));
  for (let h = 0; h < H; h++) for (let i = 0; i < N; i++) for (let c = 0; c < D; c++) {
    const x = 6 * (c % 2 === 0 ? Math.cos(w[c >> 1]! * i) : Math.sin(w[c >> 1]! * i));
    q[(h * N + i) * D + c] = i >= firstDiffuse ? 0.01 * x : x;
    k[(h * N + i) * D + c] = x + 0.05 * (rng.nextFloat() - 0.5);
  }
  const v = Float64Array.from({ length: H * N * D }, () => rng.nextFloat() * 2 - 1);
  const shape = [1, H, N, D];
  return { q: { shape, data: q }, k: { shape, data: k }, v: { shape, data: v } };
}

describe('guarded forms and their predicted fallback rate', () => {
  it('the threshold is 25%', () => expect(MAX_GUARDED_FALLBACK).toBe(0.25));

  it('10% diffuse rows: a guarded window, its fallback rate about 10%', () => {
    const d = chooseSiteSpec(params, { id: 'site0', samples: [mixedSample(1, 0.1)] }, { budget: BUDGET, target: onnxruntimeCpuProfile });
    expect(d.guarantee).toBe('guarded');
    expect(d.fallbackRate).toBeGreaterThan(0.05);
    expect(d.fallbackRate).toBeLessThanOrEqual(MAX_GUARDED_FALLBACK);
  });

  it('50% diffuse rows: stays dense, each guarded form refused for its fallback rate, not its cost', () => {
    const d = chooseSiteSpec(params, { id: 'site0', samples: [mixedSample(1, 0.5)] }, { budget: BUDGET, target: onnxruntimeCpuProfile });
    expect(d.guarantee).toBe('exact');
    expect(d.reasonDense).toMatch(/guarded forms would recompute too many rows/);
    const refused = d.tried.filter((t) => /would recompute too many rows: predicted fallback .* > 25%/.test(t.reason));
    expect(refused.length).toBeGreaterThan(0);
    for (const t of refused) expect(t.fallbackRate).toBeGreaterThan(MAX_GUARDED_FALLBACK);
    // the cost model alone (sparse form + fallback rows dense) would have taken at least one of them
    expect(refused.some((t) => t.time + t.fallbackRate! * d.timeBefore < d.timeBefore)).toBe(true);
  });
});
