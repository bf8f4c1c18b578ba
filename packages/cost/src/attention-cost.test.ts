// attentionCost against hand-computed counts; shapes of the model (monotone in the spec and in n).

import { type AttentionParams, type AttentionSpec, causal, dense, intersect, linformer, slidingWindow, union, sinks } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { attentionCost } from './attention-cost.js';
import { attnoptCpuProfile, onnxruntimeCpuProfile, webgpuGenericProfile } from './profiles/index.js';
import { validateProfile } from './profile.js';
import { pairsKept } from './work.js';

const params = (spec: AttentionSpec, over: Partial<AttentionParams> = {}): AttentionParams => ({
  numHeads: 1, kvNumHeads: 1, headDim: 2, vHeadDim: 2, scale: 1, softcap: 0, layout: 'bhsd', spec, ...over,
});

describe('FLOP counts (hand-computed)', () => {
  it('dense n=4, d=2, 1 head, unfused: QKᵀ 2·4·4·2 = 64, PV 64, softmax 5·16 = 80', () => {
    const c = attentionCost(params(dense), { batch: 1, nq: 4, nk: 4 }, onnxruntimeCpuProfile);
    expect(c.flops).toBe(128);
    expect(c.softmaxFlops).toBe(80);
    expect(c.keptPairs).toBe(16);
    expect(c.largestIntermediate).toBe(4 * 4 * 4); // 16 scores x 4 bytes
  });
  it('causal n=4: 4·5/2 = 10 kept pairs; unfused still computes all 16', () => {
    const c = attentionCost(params(causal()), { batch: 1, nq: 4, nk: 4 }, onnxruntimeCpuProfile);
    expect(c.keptPairs).toBe(10);
    expect(c.computedPairs).toBe(16);
    expect(c.flops).toBe(128);
  });
  it('causal n=1000 keeps n(n+1)/2 pairs', () => {
    expect(pairsKept(causal(), { nq: 1000, nk: 1000 })).toBe(500500);
  });
  it('window left=w-1 keeps w·n minus the edge triangle w(w-1)/2', () => {
    const n = 1000;
    const w = 64;
    expect(pairsKept(slidingWindow(w - 1, 0), { nq: n, nk: n })).toBe(w * n - (w * (w - 1)) / 2);
  });
  it('fused: dense n=128 on 64x64 tiles computes 4 full tiles, 2·128·128·(2+2) FLOPs', () => {
    const c = attentionCost(params(dense), { batch: 1, nq: 128, nk: 128 }, attnoptCpuProfile);
    expect(c.blocks).toMatchObject({ full: 4, partial: 0, empty: 0 });
    expect(c.flops).toBe(2 * 128 * 128 * 4);
  });
  it('fused: causal n=128 on 64x64 tiles: 2 partial (diagonal) + 1 full, 1 empty: area 3·64·64', () => {
    const c = attentionCost(params(causal()), { batch: 1, nq: 128, nk: 128 }, attnoptCpuProfile);
    expect(c.blocks).toMatchObject({ full: 1, partial: 2, empty: 1 });
    expect(c.computedPairs).toBe(3 * 64 * 64);
  });
  it('linformer rank r: projections 2·nk·r·d for K and V plus attention over r', () => {
    const [n, r, d] = [100, 8, 2];
    const c = attentionCost(params(linformer(r, 1)), { batch: 1, nq: n, nk: n }, attnoptCpuProfile);
    expect(c.flops).toBe(2 * n * r * d * 2 + 2 * n * r * d * 2);
  });
});

describe('shape of the model', () => {
  const mha = params(dense, { numHeads: 8, kvNumHeads: 8, headDim: 64, vHeadDim: 64, layout: 'bsd' });
  it('a subset spec never costs more FLOPs on a block-skipping target', () => {
    const dims = { batch: 1, nq: 1000, nk: 1000 };
    const specs = [dense, causal(), intersect(causal(), slidingWindow(100, 0)), intersect(causal(), slidingWindow(10, 0))];
    const flops = specs.map((s) => attentionCost({ ...mha, spec: s }, dims, attnoptCpuProfile).flops);
    for (let k = 1; k < flops.length; k++) expect(flops[k]).toBeLessThanOrEqual(flops[k - 1]!);
    const u = attentionCost({ ...mha, spec: union(sinks(4), slidingWindow(10, 0)) }, dims, attnoptCpuProfile).flops;
    expect(u).toBeLessThanOrEqual(flops[0]!);
  });
  it('GQA moves fewer bytes than MHA on a fused target', () => {
    const dims = { batch: 1, nq: 512, nk: 512 };
    const gqa = attentionCost({ ...mha, kvNumHeads: 2 }, dims, attnoptCpuProfile);
    const full = attentionCost(mha, dims, attnoptCpuProfile);
    expect(gqa.bytes).toBeLessThan(full.bytes);
    expect(gqa.flops).toBe(full.flops);
  });
  it('unfused window costs what dense costs plus the mask (the lowering builds n x n masks)', () => {
    const dims = { batch: 1, nq: 512, nk: 512 };
    const d = attentionCost(mha, dims, onnxruntimeCpuProfile);
    const w = attentionCost({ ...mha, spec: slidingWindow(63, 0) }, dims, onnxruntimeCpuProfile);
    expect(w.flops).toBe(d.flops);
    expect(w.time).toBeGreaterThan(d.time);
    expect(w.peakMemory).toBeGreaterThanOrEqual(d.peakMemory);
  });
  it('the shipped profiles load, times are positive and increase with n on every target', () => {
    for (const profile of [onnxruntimeCpuProfile, attnoptCpuProfile, webgpuGenericProfile]) {
      validateProfile(profile);
      let last = 0;
      for (const n of [64, 256, 1024, 4096]) {
        const t = attentionCost({ ...mha, spec: causal() }, { batch: 1, nq: n, nk: n }, profile).time;
        expect(t).toBeGreaterThan(last);
        last = t;
      }
    }
  });
  it('a window spec at n = 16384 is costed from row and block queries (finishes, no n x n)', () => {
    const c = attentionCost({ ...mha, spec: slidingWindow(255, 0) }, { batch: 1, nq: 16384, nk: 16384 }, attnoptCpuProfile);
    expect(c.keptPairs).toBe(256 * 16384 - (256 * 255) / 2);
    expect(c.blocks!.partial + c.blocks!.full).toBeLessThan(6 * 256);
    expect(c.largestIntermediate).toBe(64 * 64 * 4);
  });
});
