// The cost of a site whose head size is read at run time (headDim / vHeadDim 0): unknown without the call's
// head sizes (a clear error), hand-checkable with them, and dense where the lowering must stay dense.

import { type AttentionParams, type AttentionSpec, dense, slidingWindow } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { attentionCost } from './attention-cost.js';
import { onnxruntimeCpuProfile } from './profiles/index.js';

const params = (spec: AttentionSpec, over: Partial<AttentionParams> = {}): AttentionParams => ({
  numHeads: 1, kvNumHeads: 1, headDim: 0, vHeadDim: 0, scale: 1, softcap: 0, layout: 'bhsd', spec, ...over,
});

describe('attentionCost with head sizes read at run time', () => {
  it('is unknown without the call\'s head size: a clear error', () => {
    expect(() => attentionCost(params(dense), { batch: 1, nq: 4, nk: 4 }, onnxruntimeCpuProfile)).toThrow(
      'attention cost is unknown: the head size is only known at run time (headDim 0); give CallDims.headDim for the call',
    );
    expect(() => attentionCost(params(dense, { headDim: 2 }), { batch: 1, nq: 4, nk: 4, headDim: 2 }, onnxruntimeCpuProfile)).toThrow(
      'give CallDims.vHeadDim for the call',
    );
  });
  it('dense n=4 with the call\'s d=2: QKᵀ 2·4·4·2 = 64, PV 64 (as for a static d=2)', () => {
    const c = attentionCost(params(dense), { batch: 1, nq: 4, nk: 4, headDim: 2, vHeadDim: 2 }, onnxruntimeCpuProfile);
    expect(c.flops).toBe(128);
    expect(c.softmaxFlops).toBe(80);
  });
  it('d=3, dv=5: QKᵀ 2·4·4·3 = 96, PV 2·4·4·5 = 160', () => {
    const c = attentionCost(params(dense), { batch: 1, nq: 4, nk: 4, headDim: 3, vHeadDim: 5 }, onnxruntimeCpuProfile);
    expect(c.flops).toBe(256);
  });
  it('a window the lowering would band stays dense (nq x nk scores) when the head size is read at run time', () => {
    const spec = slidingWindow(4, 0);
    const dims = { batch: 1, nq: 512, nk: 512 };
    const banded = attentionCost(params(spec, { headDim: 8, vHeadDim: 8 }), dims, onnxruntimeCpuProfile);
    expect(banded.computedPairs).toBeLessThan(512 * 512);
    const c = attentionCost(params(spec), { ...dims, headDim: 8, vHeadDim: 8 }, onnxruntimeCpuProfile);
    expect(c.computedPairs).toBe(512 * 512);
    expect(c.notes.join('\n')).toContain('dense: the head size is only known at run time');
  });
  it('refuses call head sizes that contradict static params, or are not positive integers', () => {
    expect(() => attentionCost(params(dense, { headDim: 4, vHeadDim: 4 }), { batch: 1, nq: 2, nk: 2, headDim: 8 }, onnxruntimeCpuProfile)).toThrow(
      "attention cost: the call's headDim 8 differs from the params' 4",
    );
    expect(() => attentionCost(params(dense), { batch: 1, nq: 2, nk: 2, headDim: 0, vHeadDim: 2 }, onnxruntimeCpuProfile)).toThrow(
      'attention cost: headDim must be an integer >= 1, got 0',
    );
  });
});
