// The guarded chunked LSH lowering at n = 4096 in onnxruntime (the sorted, chunked form reads 2 x 2 x 128 keys per
// query, never n x n) against the float64 dense reference: lsh(2, 16, chunk 128) over a dense baseline, 2 heads of
// 16, budget 1e-3, float32 rounding 1e-4 beside it. Inputs: 32 clusters (+-8 e_c) of 128 consecutive tokens (a chunk each) with
// shared queries and keys (most rows stay sparse), and uniform q, k (diffuse: every row falls back, and the
// unguarded form breaks the budget). Budget 0 gives the dense reference.

import { type AttentionParams, dense, lshBuckets, SplitMix64 } from '@attnopt/ir';
import { referenceAttention } from '@attnopt/reference';
import { describe, expect, it } from 'vitest';
import type { QKV } from './helpers/guarded-inputs.js';
import { buildBhsdSite, f32, runBhsdSite, type Shape } from './helpers/bhsd-site.js';

const N = 4096;
const H = 2;
const D = 16;
const BUDGET = 1e-3;
const ROUNDING = 1e-4;
const SHAPE = [1, H, N, D];
const LEAF = lshBuckets(2, 16, 3, 128);
const base: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd', spec: dense };

const SITE: Shape = { B: 1, H, Hkv: H };
/** The site alone, lowered for onnxruntime; `flags` adds the fallback flags [1, H, N] as an output. */
const build = (p: AttentionParams, flags = false): Uint8Array => buildBhsdSite(SITE, p, { flags });
const run = (bytes: Uint8Array, x: QKV) => runBhsdSite(bytes, SITE, x, N, D);

const reference = (x: QKV) => referenceAttention(base, { q: { shape: SHAPE, data: f32(x.q) }, k: { shape: SHAPE, data: f32(x.k) }, v: { shape: SHAPE, data: f32(x.v) } }).y.data;
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let t = 0; t < a.length; t++) m = Math.max(m, Math.abs(a[t]! - b[t]!));
  return m;
};

function clusteredRuns(seed: number): QKV {
  const rng = new SplitMix64(seed);
  const u = () => rng.nextFloat() * 2 - 1;
  const k = new Float64Array(H * N * D);
  for (let h = 0; h < H; h++) for (let i = 0; i < N; i++) {
    const c = (Math.floor(i / 128) * 5 + h) % 32;
    for (let d = 0; d < D; d++) k[(h * N + i) * D + d] = (d === c >> 1 ? (c & 1 ? -8 : 8) : 0) + 0.05 * u();
  }
  return { q: Float64Array.from(k), k, v: Float64Array.from({ length: H * N * D }, u) };
}

function diffuse(seed: number): QKV {
  const rng = new SplitMix64(seed);
  const u = () => Float64Array.from({ length: H * N * D }, () => rng.nextFloat() * 2 - 1);
  return { q: u(), k: u(), v: u() };
}

describe(`guarded lsh(2, 16, chunk 128) at n = ${N} in onnxruntime, within the budget of the float64 dense reference`, () => {
  const guarded = build({ ...base, spec: LEAF, guard: { budget: BUDGET, blockSize: 64, baseline: dense } }, true);
  const unguarded = build({ ...base, spec: LEAF });
  const forced = build({ ...base, spec: LEAF, guard: { budget: 0, blockSize: 64, baseline: dense } });
  it.each([
    ['clustered runs, shared queries and keys', () => clusteredRuns(1), false],
    ['diffuse', () => diffuse(2), true],
  ] as const)('%s', async (_name, inputs, adversarial) => {
    const x = inputs();
    const ref = reference(x);
    const g = await run(guarded, x);
    expect(maxAbsDiff(g.y, ref)).toBeLessThanOrEqual(BUDGET + ROUNDING);
    const rate = g.flags!.reduce((a, f) => a + f, 0) / g.flags!.length;
    if (adversarial) {
      expect(rate).toBe(1);
      expect(maxAbsDiff((await run(unguarded, x)).y, ref)).toBeGreaterThan(BUDGET + ROUNDING);
    } else expect(rate).toBeLessThan(0.25);
    expect(maxAbsDiff((await run(forced, x)).y, ref)).toBeLessThanOrEqual(ROUNDING);
  }, 300_000);
});
