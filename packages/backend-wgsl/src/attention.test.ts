// Planning without a device: limits respected (work split over dispatches, tiles shrunk), block lists.

import { describe, expect, it } from 'vitest';
import { causal, dense, lshBuckets, slidingWindow, topkBlocks, union, type AttentionParams } from '@attnopt/ir';
import { DEFAULT_LIMITS, type KernelLimits } from './attention-program.js';
import { blockLists, dispatchPlan, planAttention } from './attention.js';

const params = (over: Partial<AttentionParams> = {}): AttentionParams => ({
  numHeads: 4,
  kvNumHeads: 2,
  headDim: 128,
  vHeadDim: 128,
  scale: 0.1,
  softcap: 0,
  layout: 'bhsd',
  spec: causal(),
  ...over,
});
const inputs = (B: number, H: number, G: number, nq: number, nk: number, d: number) => ({
  q: { shape: [B, H, nq, d], data: new Float32Array(B * H * nq * d) },
  k: { shape: [B, G, nk, d], data: new Float32Array(B * G * nk * d) },
  v: { shape: [B, G, nk, d], data: new Float32Array(B * G * nk * d) },
});

/** A fake small adapter: 16 KiB of workgroup memory, 32 invocations, 3 workgroups per dimension. */
const TINY: KernelLimits = {
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 32,
  maxComputeWorkgroupSizeX: 32,
  maxComputeWorkgroupsPerDimension: 3,
  maxStorageBufferBindingSize: 1 << 20,
};

describe('dispatchPlan', () => {
  it('covers every workgroup exactly once within the per-dimension limit', () => {
    for (const [total, max] of [[1, 65535], [10, 3], [9, 3], [100, 7], [50, 2]] as const) {
      const plan = dispatchPlan(total, max);
      let covered = 0;
      for (const d of plan) {
        expect(d.x).toBeLessThanOrEqual(max);
        expect(d.y).toBeLessThanOrEqual(max);
        expect(d.base).toBe(covered - (covered % d.x));
        covered = d.base + d.x * d.y;
      }
      expect(covered).toBeGreaterThanOrEqual(total);
      expect(covered - total).toBeLessThan(plan[0]!.x);
    }
  });
  it('uses one dispatch when the grid fits', () => {
    expect(dispatchPlan(1000, 65535)).toEqual([{ base: 0, x: 1000, y: 1 }]);
  });
});

describe('planAttention under a fake small-limit adapter', () => {
  it('splits the grid into several dispatches and fits 16 KiB of workgroup memory', () => {
    const plan = planAttention(params(), inputs(2, 4, 2, 40, 40, 128), { dtype: 'f32', limits: TINY });
    expect(plan.program.workgroupSize).toBeLessThanOrEqual(32);
    expect(plan.program.workgroupBytes).toBeLessThanOrEqual(16384);
    expect(plan.workgroups).toBeGreaterThan(9);
    expect(plan.dispatches.length).toBeGreaterThan(1);
    for (const d of plan.dispatches) expect(Math.max(d.x, d.y)).toBeLessThanOrEqual(3);
  });
  it('shrinks the K/V tile as the head dim grows and uses twice the keys per tile in f16', () => {
    const f32 = planAttention(params({ headDim: 96, vHeadDim: 96 }), inputs(1, 4, 2, 8, 8, 96), { dtype: 'f32', limits: DEFAULT_LIMITS });
    const f16 = planAttention(params({ headDim: 96, vHeadDim: 96 }), inputs(1, 4, 2, 8, 8, 96), { dtype: 'f16', limits: DEFAULT_LIMITS });
    expect(f32.config.blockK).toBe(Math.floor(16384 / (2 * 96 * 4)));
    expect(f16.config.blockK).toBe(Math.min(32, Math.floor(16384 / (2 * 96 * 2))));
  });
  it('splits a GQA group over workgroups when the group is larger than the threads', () => {
    const plan = planAttention(params({ numHeads: 64, kvNumHeads: 1, headDim: 8, vHeadDim: 8 }), inputs(1, 64, 1, 4, 4, 8), {
      dtype: 'f32',
      limits: TINY,
    });
    expect(plan.headSplits).toBe(2);
    expect(plan.config.headsPerWorkgroup).toBe(32);
  });
  it('refuses a tensor larger than maxStorageBufferBindingSize, naming the limit', () => {
    expect(() => planAttention(params(), inputs(1, 4, 2, 1024, 1024, 128), { dtype: 'f32', limits: TINY })).toThrow(/maxStorageBufferBindingSize/);
  });
  it('plans data-dependent specs (codes in one more binding) and sends low-rank specs to the sequences', () => {
    const lsh = planAttention(params({ spec: { kind: 'lsh', hashes: 1, buckets: 2, chunk: 0, seed: 1 } }), inputs(1, 4, 2, 4, 4, 128), { dtype: 'f32', limits: DEFAULT_LIMITS });
    expect(lsh.program.storage.map((b) => b.name)).toEqual(['Q', 'K', 'V', 'Y', 'blocks', 'data_codes']);
    expect(lsh.program.uniforms.map((u) => u.name)).toContain('leaf0_q');
    expect(() => planAttention(params({ spec: { kind: 'nystrom', landmarks: 2 } }), inputs(1, 4, 2, 4, 4, 128), { dtype: 'f32', limits: DEFAULT_LIMITS })).toThrow(/low-rank/);
  });
  it('never declares more than 7 storage buffers (WebGPU default 8 per stage)', () => {
    const spec = union(causal(), lshBuckets(1, 2, 3), topkBlocks(4, 1));
    for (const subgroups of [false, true]) {
      const plan = planAttention(params({ spec }), { ...inputs(1, 4, 2, 8, 8, 128), bias: { shape: [8, 8], data: new Float32Array(64) } }, { dtype: 'f32', limits: DEFAULT_LIMITS, subgroups });
      expect(plan.program.storage.length).toBe(7);
    }
  });
  it('the tiled kernel keeps to 16 KiB of workgroup memory even when the adapter offers more; the subgroup kernel uses 4 B', () => {
    const big: KernelLimits = { ...DEFAULT_LIMITS, maxComputeWorkgroupStorageSize: 65536 };
    for (const d of [32, 64, 80, 96, 128]) {
      const p = params({ headDim: d, vHeadDim: d });
      expect(planAttention(p, inputs(1, 4, 2, 8, 8, d), { dtype: 'f32', limits: big }).program.workgroupBytes).toBeLessThanOrEqual(16384);
      expect(planAttention(p, inputs(1, 4, 2, 8, 8, d), { dtype: 'f32', limits: big, subgroups: true }).program.workgroupBytes).toBe(4);
    }
  });
  it('the subgroup kernel enables subgroups and needs the feature', () => {
    const plan = planAttention(params(), inputs(1, 4, 2, 8, 8, 128), { dtype: 'f32', limits: DEFAULT_LIMITS, subgroups: true });
    expect(plan.program.features).toContain('subgroups');
    expect(plan.program.code).toMatch(/^enable subgroups;/m);
    expect(plan.program.code).toContain('subgroupMax(');
    expect(plan.program.code).not.toContain('k_tile');
  });
});

describe('blockLists', () => {
  const dims = { batch: 1, nq: 64, nk: 64, past: 0, hasPast: false };
  it('causal: skips the blocks above the diagonal, masks only the diagonal blocks', () => {
    const l = blockLists(causal(), dims, 16, 16);
    expect(l.skipped).toBe(6);
    expect(l.partial).toBe(4);
    expect(l.full).toBe(6);
    expect([...l.start]).toEqual([0, 1, 3, 6, 10]);
  });
  it('dense: every block mask-free', () => {
    const l = blockLists(dense, dims, 16, 16);
    expect(l).toMatchObject({ skipped: 0, partial: 0, full: 16 });
  });
  it('kvLength: drops blocks past the valid keys and masks the straddling one', () => {
    const l = blockLists(dense, { ...dims, kvLength: [20] }, 16, 16);
    expect(l).toMatchObject({ skipped: 8, partial: 4, full: 4 });
    expect([...l.batchInfo]).toEqual([20, 20 - 64]);
  });
  it('data-dependent spec: visits every block with the predicate', () => {
    const l = blockLists(union(causal(), lshBuckets(1, 2, 3)), dims, 16, 16);
    expect(l).toMatchObject({ skipped: 0, partial: 16, full: 0 });
  });
  it('window: visits only blocks near the diagonal', () => {
    const l = blockLists(slidingWindow(3, 0), dims, 16, 16);
    expect(l.full + l.partial).toBe(7);
  });
});
