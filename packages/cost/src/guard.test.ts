// The guarded certificate's price (guard.ts): its FLOPs against a hand count, and its time against what the
// guarded lowering costs in onnxruntime beside the banded form it guards (BENCHMARKS.md, "Guarded window 256 +
// sinks 4": the guarded form ran 1.18x to 1.37x the unguarded one's time at n = 4096, 8 heads of 64).

import { type AttentionParams, type AttentionSpec, causal, intersect, sinks, slidingWindow, union } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { attentionCost } from './attention-cost.js';
import { guardCertificateCost, guardCertificateOps } from './guard.js';
import { attnoptCpuProfile, onnxruntimeCpuProfile } from './profiles/index.js';

const params = (spec: AttentionSpec): AttentionParams => ({ numHeads: 8, kvNumHeads: 8, headDim: 64, vHeadDim: 64, scale: 0.125, softcap: 0, layout: 'bhsd', spec });
const spec = intersect(causal(), union(slidingWindow(255, 0), sinks(4)));
const dims = { batch: 1, nq: 4096, nk: 4096 };

describe('the guarded certificate in the cost model', () => {
  it('U is two MatMuls of q against the 64 blocks: 2 · 2 · 8 heads · 4096 rows · 64 · 64 FLOPs', () => {
    for (const fused of [false, true]) {
      const flops = guardCertificateOps(params(spec), dims, 64, 300, fused).reduce((a, w) => a + w.flops, 0);
      expect(flops).toBe(2 * 2 * 8 * 4096 * 64 * 64);
    }
  });

  it('onnxruntime: priced at a share of the banded form in the range measured (about 0.2 to 0.4 of it)', () => {
    const banded = attentionCost(params(spec), dims, onnxruntimeCpuProfile);
    const share = guardCertificateCost(params(spec), dims, onnxruntimeCpuProfile, 64, banded.computedPairs / dims.nq) / banded.time;
    expect(share).toBeGreaterThan(0.05);
    expect(share).toBeLessThan(0.6);
  });

  it("the box alone (guard.summaries 'box') is priced below the box and the ball: no distances, two passes fewer per (row, block)", () => {
    const withGuard = (summaries?: 'box') => ({ ...params(spec), guard: { budget: 1e-3, blockSize: 64, baseline: causal(), ...(summaries ? { summaries } : {}) } });
    const both = guardCertificateCost(withGuard(), dims, onnxruntimeCpuProfile, 64, 300);
    const box = guardCertificateCost(withGuard('box'), dims, onnxruntimeCpuProfile, 64, 300);
    expect(box).toBeLessThan(both);
    expect(guardCertificateOps(withGuard('box'), dims, 64, 300).length).toBe(guardCertificateOps(withGuard(), dims, 64, 300).length - 5);
  });

  it("log Z_S as the largest kept logit alone (guard.logZ 'max-logit') is priced one pass over the sparse scores lower", () => {
    const guard = (logZ?: 'max-logit') => ({ ...params(spec), guard: { budget: 1e-3, blockSize: 64, baseline: causal(), summaries: 'box' as const, ...(logZ ? { logZ } : {}) } });
    expect(guardCertificateCost(guard('max-logit'), dims, onnxruntimeCpuProfile, 64, 300)).toBeLessThan(guardCertificateCost(guard(), dims, onnxruntimeCpuProfile, 64, 300));
    const names = (logZ?: 'max-logit') => guardCertificateOps(guard(logZ), dims, 64, 300).map((o) => o.what);
    expect(names().filter((w) => !names('max-logit').includes(w))).toEqual(['its probability']);
  });

  it('a fused kernel runs it as three steps: no per-node overhead of the unfused lowering', () => {
    expect(guardCertificateOps(params(spec), dims, 64, 300, true)).toHaveLength(3);
    expect(guardCertificateOps(params(spec), dims, 64, 300, false).length).toBeGreaterThan(150);
    expect(guardCertificateCost(params(spec), dims, attnoptCpuProfile, 64, 300)).toBeGreaterThan(0);
  });
});
