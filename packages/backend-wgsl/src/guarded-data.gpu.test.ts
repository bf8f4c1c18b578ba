// The guarded WGSL kernel with data-dependent key sets (top-k key blocks by Quest or mean scores, ranked over every
// key block or causally; LSH buckets with and without chunks) on a real WebGPU adapter (lavapipe without a GPU; the
// test FAILS without one), against the float64 reference of the model's own attention (causal or dense), on
// natural and adversarial inputs:
//   |y - ref| <= epsilon + 1e-5 + 1e-4 |ref| per coordinate (f32 storage and arithmetic);
//   the certificate is never below the true dropped mass, m_hat >= m (1 - 1e-6) - 1e-7, the dropped keys being
//   the model mask's keys outside the key set @attnopt/reference resolves from the same Q and K (LSH hashes in f32
//   on the device, in float64 there: a projection within f32 rounding of a bucket edge could disagree, which has
//   probability about 1e-7 per hash on these inputs);
//   epsilon 0 with a key set that drops keys: every such row falls back and the output is the model's attention.
// Runs per property: WGSL_NUM_RUNS (default 6): each problem compiles its own pipelines, slow on lavapipe.

import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { type AttentionParams, causal, dense, intersect, intervals, lshBuckets, type MaskSpec, rowKeys, topkBlocks } from '@attnopt/ir';
import { compareArrays, dataLeafResolver, referenceAttention, type Tensor64 } from '@attnopt/reference';
import { adversarialHeads } from '@attnopt/properties';
import { runGuardedAttention } from './guarded.js';
import type { WgslRuntime } from './runtime.js';
import { testRuntime } from './testing/gpu.js';

const NUM_RUNS = Number(process.env.WGSL_NUM_RUNS ?? 6);
const TOL = { atol: 1e-5, rtol: 1e-4 };
const FAMILIES = ['natural', 'repeated', 'outlier', 'logits80', 'equalKeys'] as const;
type Family = (typeof FAMILIES)[number];

let rt: WgslRuntime;
beforeAll(async () => {
  rt = await testRuntime();
});

/** Q, K, V [1, H, n, d] of one input family. */
const inputs = (family: Family, n: number, d: number, H: number, seed: number, scale: number) => adversarialHeads(family, { n, d, heads: H, seed, scale });

const f32 = (t: Tensor64) => ({ shape: t.shape, data: Float32Array.from(t.data) });

async function check(params: AttentionParams, modelMask: MaskSpec, x: ReturnType<typeof inputs>, epsilon: number, block: number, label: string) {
  const got = await runGuardedAttention(rt, params, { q: f32(x.q), k: f32(x.k), v: f32(x.v) }, { epsilon, modelMask, block });
  const ref = referenceAttention({ ...params, spec: modelMask, scoresMode: 'softmax' }, x);
  const cmp = compareArrays(got.y, ref.y.data, { atol: epsilon + TOL.atol, rtol: TOL.rtol });
  if (!cmp.ok) throw new Error(`${label}: output beyond epsilon ${epsilon}: max abs error ${cmp.maxAbsError}`);
  const [, H, n, d] = x.q.shape as [number, number, number, number];
  const sparse = intersect(modelMask, params.spec as MaskSpec);
  let dropping = 0;
  for (let h = 0; h < H; h++) {
    const head = (t: Tensor64) => t.data.subarray(h * n * d, (h + 1) * n * d);
    const resolver = dataLeafResolver({ q: head(x.q), k: head(x.k), nq: n, nk: n, d, scale: params.scale });
    for (let i = 0; i < n; i++) {
      const kept = rowKeys(sparse, i, { nq: n, nk: n }, resolver);
      let m = 0;
      let drops = false;
      for (let j = 0; j < n; j++) {
        const p = ref.scores!.data[(h * n + i) * n + j]!;
        if (!intervals.contains(kept, j) && (modelMask.kind === 'dense' || j <= i)) {
          m += p;
          drops ||= p > 0;
        }
      }
      if (drops) dropping++;
      const cert = got.certificates[h * n + i]!;
      if (!(cert >= m * (1 - 1e-6) - 1e-7)) throw new Error(`${label}: row ${i} head ${h}: certificate ${cert} below the dropped mass ${m}`);
    }
  }
  return { got, dropping };
}

const SPECS = {
  'topk quest': topkBlocks(8, 2, 'quest'),
  'topk mean': topkBlocks(4, 3, 'mean'),
  'topk quest ranked causally': topkBlocks(8, 2, 'quest', 'top-left'),
  lsh: lshBuckets(2, 4, 11),
  'lsh chunked': lshBuckets(1, 4, 5, 6),
} as const satisfies Record<string, MaskSpec>;

describe('guarded WGSL kernel with data-dependent key sets', () => {
  it('stays within epsilon of the model attention and certifies at least the dropped mass', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          family: fc.constantFrom(...FAMILIES),
          form: fc.constantFrom(...(Object.keys(SPECS) as (keyof typeof SPECS)[])),
          n: fc.integer({ min: 1, max: 40 }),
          d: fc.constantFrom(4, 8),
          H: fc.integer({ min: 1, max: 2 }),
          causalModel: fc.boolean(),
          epsilon: fc.constantFrom(0, 1e-3, 0.05, 0.5),
          block: fc.constantFrom(4, 8),
          seed: fc.integer({ min: 0, max: 1 << 20 }),
        }),
        async (r) => {
          const scale = 1 / Math.sqrt(r.d);
          const params: AttentionParams = { numHeads: r.H, kvNumHeads: r.H, headDim: r.d, vHeadDim: r.d, scale, softcap: 0, layout: 'bhsd', spec: SPECS[r.form] };
          await check(params, r.causalModel ? causal() : dense, inputs(r.family, r.n, r.d, r.H, r.seed, scale), r.epsilon, r.block, `${r.form}, ${r.family}`);
        },
      ),
      { numRuns: NUM_RUNS, seed: 1406 },
    );
  }, 600_000); // each run compiles its pipelines on lavapipe

  it.each(Object.keys(SPECS) as (keyof typeof SPECS)[])('%s at epsilon 0: every row that drops a key falls back, the output is the causal attention', async (form) => {
    const n = 33;
    const d = 8;
    const params: AttentionParams = { numHeads: 2, kvNumHeads: 2, headDim: d, vHeadDim: d, scale: 0.35, softcap: 0, layout: 'bhsd', spec: SPECS[form] };
    const { got, dropping } = await check(params, causal(), inputs('natural', n, d, 2, 21, 0.35), 0, 8, `${form}, forced`);
    // random inputs: every key has positive probability, so a row with a dropped key has a positive certificate
    expect(dropping).toBeGreaterThan(0);
    expect(got.fallbackRows).toBe(dropping);
  });
});
