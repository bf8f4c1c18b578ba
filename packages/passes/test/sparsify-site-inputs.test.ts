// The site's bias and lengths inputs priced in every form (SparsifyOptions.siteInputs): the chooser's times are the
// cost model's with them, and the pass reads them from the node (an n x n boolean keep-mask as 'bool', a key bias as
// none, kvLength present).

import { attentionCost, onnxruntimeCpuProfile } from '@attnopt/cost';
import { type AttentionParams, attentionNode, causal, SplitMix64, tensorType, Value } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { chooseSiteSpec, siteCostInputs } from '../src/sparsify/index.js';

const N = 512;
const H = 2;
const D = 16;
const params: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd', spec: causal() };

function sample() {
  const rng = new SplitMix64(3);
  const shape = [1, H, N, D];
  const t = () => ({ shape, data: Float64Array.from({ length: H * N * D }, () => rng.nextFloat() - 0.5) });
  return { q: t(), k: t(), v: t() };
}

describe('the site inputs in the chooser', () => {
  it('a lengths input prices the padding copy in the site as written, and every form with it', () => {
    const dims = { batch: 1, nq: N, nk: N };
    const options = { budget: 1e-3, target: onnxruntimeCpuProfile, headGroups: false } as const;
    const without = chooseSiteSpec(params, { id: 's', samples: [sample()] }, options);
    const withLengths = chooseSiteSpec(params, { id: 's', samples: [sample()] }, { ...options, siteInputs: { kvLength: true } });
    expect(without.timeBefore).toBeCloseTo(attentionCost(params, dims, onnxruntimeCpuProfile).time, 12);
    expect(withLengths.timeBefore).toBeCloseTo(attentionCost(params, dims, onnxruntimeCpuProfile, { kvLength: true }).time, 12);
    expect(withLengths.timeBefore).toBeGreaterThan(without.timeBefore);
    // every mask form tried is priced with the lengths too (the copy; a banded form also builds its bias per batch;
    // low-rank forms take no lengths input: lowRankInputsBlocker)
    let compared = 0;
    for (const t of withLengths.tried) {
      const same = without.tried.find((u) => u.spec === t.spec);
      if (same && t.certified && Number.isFinite(t.time) && t.time > 0) {
        expect(t.time, t.spec).not.toBe(same.time);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(3);
  });

  it('the pass reads them from the node: none, a float bias, a boolean keep-mask with kvLength', () => {
    const v = (name: string, dtype: 'f32' | 'bool' | 'i64' = 'f32') => new Value(name, tensorType(dtype));
    const node = (bias?: Value, kvLength?: Value) => attentionNode(params, { q: v('q'), k: v('k'), v: v('v'), ...(bias ? { bias } : {}), ...(kvLength ? { kvLength } : {}) }, { y: v('y') });
    expect(siteCostInputs(node())).toEqual({ bias: 'none', kvLength: false });
    expect(siteCostInputs(node(v('mask')))).toEqual({ bias: 'float', kvLength: false });
    expect(siteCostInputs(node(v('keep', 'bool'), v('lengths', 'i64')))).toEqual({ bias: 'bool', kvLength: true });
    // a key bias (one row over the keys: a padding mask, ALiBi) lowers per key in the banded and block forms: not
    // the n x n bias the cost model's option describes
    expect(siteCostInputs(node(new Value('key_mask', tensorType('f32', [1, 1, 1, 'seq']))))).toEqual({ bias: 'none', kvLength: false });
  });
});
