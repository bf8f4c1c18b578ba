// Recognition of spellings in combination. Each axis of helpers/spellings.ts (how Q, K and V reach their heads,
// how Kᵀ is formed, where the scale sits, the mask, the softmax, the product with V, the output layout, self /
// cached / cross keys, static or run-time reshape targets, how constants are written, f32 / f16 / f16 with the
// softmax upcast) has its own tests elsewhere; a recognizer can still fail a combination of two (a scale on K
// with a Reshape sandwich, a causal mask over a cache, ...). Here every pair of choices that can be written
// together is written at least once (all-pairs, 100 graphs), and 120 more combinations are drawn from those of the whole product (about
// 3.6 million, less the few that cannot be written) with a fixed seed; ATTNOPT_SPELLINGS=N draws N instead.
// Each graph must lift to one site with 4 heads (2 kv heads where K and V are repeated), head size 8, the scale
// it was written with, proven causal exactly where the mask is causal (bottom-right over a cache), and compute
// in onnxruntime what the graph as written computes (compareLowered: fp32 |lowered - original| <= 1e-5; fp16
// 4e-3 abs + 4e-3 rel).

import { printSpec } from '@attnopt/ir';
import { describe, expect, test } from 'vitest';
import { analyzeMaskPass } from '../src/mask-analysis/index.js';
import { liftedAndExact } from './helpers/lifted-exact.js';
import { coversEveryPair, describeSpelling, HEAD_DIM, HEADS, pairwiseSpellings, sampledSpellings, type Spelling, spellingGraph } from './helpers/spellings.js';

async function check(s: Spelling): Promise<void> {
  const site = await liftedAndExact(spellingGraph(s), {
    opset: 17,
    seed: 3,
    sizes: { batch: 2, seq: 6, past: 3 },
    after: (g) => analyzeMaskPass().run(g).notes.map((n) => n.message),
  });
  expect(site.params).toMatchObject({ numHeads: HEADS, kvNumHeads: s.input === 'repeat-kv' || s.input === 'repeat-kv-bshd' ? HEADS / 2 : HEADS, headDim: HEAD_DIM, layout: 'bhsd' });
  // f16 constants hold the scale to 11 bits: 1/sqrt(8), 1/f16(sqrt(8)) or f16(8^-1/4)² within 2^-9 relative
  const want = s.scale === 'none' ? 1 : 1 / Math.sqrt(HEAD_DIM);
  expect(Math.abs(site.params.scale - want)).toBeLessThanOrEqual(s.precision === 'f32' ? 1e-6 : want * 2 ** -9);
  expect(printSpec(site.params.spec)).toBe(s.mask.startsWith('causal') ? (s.kv === 'past' ? 'causal(align=bottom-right)' : 'causal') : 'dense');
  for (const op of ['Softmax', 'LogSoftmax', 'Exp', 'ReduceSum']) expect(site.ops.has(op), op).toBe(false);
}

const SAMPLED = Number(process.env.ATTNOPT_SPELLINGS ?? 120);
const pairwise = pairwiseSpellings(1);
const cases = [...pairwise, ...sampledSpellings(SAMPLED, 2)];

describe('attention spelled in combinations of the ways exporters write it', () => {
  test('the all-pairs cases hold every pair of choices some combination can write', () => {
    expect(coversEveryPair(pairwise)).toBe(true);
  });
  test.each(cases.map((s) => [describeSpelling(s), s] as const))('%s', async (_, s) => {
    await check(s);
  });
});
