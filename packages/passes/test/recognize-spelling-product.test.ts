// Recognition of spellings in combination. Each axis of helpers/spellings.ts (how Q, K and V reach their heads,
// how Kᵀ is formed, where the scale sits, the mask, the softmax, the product with V, the output layout) has its
// own tests elsewhere; a recognizer can still fail a combination of two (a scale on K with a Reshape sandwich,
// a repeat_kv with a K-first Einsum, ...). Here every pair of choices is written at least once (all-pairs, 79
// graphs), and 120 more combinations are drawn from the whole product (38880 graphs) with a fixed seed.
// Each graph must lift to one site with 4 heads (2 kv heads where K and V are repeated), head size 8, the scale
// it was written with, proven causal exactly where the mask is causal, and compute in onnxruntime what the
// graph as written computes (fp32, |lowered - original| <= 1e-5, compareLowered).
// `ATTNOPT_SPELLINGS=all` runs the whole product instead (about 4 minutes on 2 cores).

import { printSpec } from '@attnopt/ir';
import { describe, expect, test } from 'vitest';
import { analyzeMaskPass } from '../src/mask-analysis/index.js';
import { liftedAndExact } from './helpers/lifted-exact.js';
import { allSpellings, describeSpelling, HEAD_DIM, HEADS, pairwiseSpellings, sampledSpellings, type Spelling, spellingGraph } from './helpers/spellings.js';

async function check(s: Spelling): Promise<void> {
  const site = await liftedAndExact(spellingGraph(s), {
    opset: 17,
    seed: 3,
    sizes: { batch: 2, seq: 6, past: 0 },
    after: (g) => analyzeMaskPass().run(g).notes.map((n) => n.message),
  });
  expect(site.params).toMatchObject({ numHeads: HEADS, kvNumHeads: s.input === 'repeat-kv' ? HEADS / 2 : HEADS, headDim: HEAD_DIM, layout: 'bhsd' });
  expect(site.params.scale).toBeCloseTo(s.scale === 'none' ? 1 : 1 / Math.sqrt(HEAD_DIM), 6);
  expect(printSpec(site.params.spec)).toBe(s.mask.startsWith('causal') ? 'causal' : 'dense');
  for (const op of ['Softmax', 'LogSoftmax', 'Exp', 'ReduceSum']) expect(site.ops.has(op), op).toBe(false);
}

const cases = process.env.ATTNOPT_SPELLINGS === 'all' ? allSpellings() : [...pairwiseSpellings(1), ...sampledSpellings(120, 2)];

describe('attention spelled in combinations of the ways exporters write it', () => {
  test('the cases cover every pair of choices', () => {
    const pairs = (list: readonly Spelling[]) => new Set(list.flatMap((s) => Object.entries(s).flatMap(([a, x], i) => Object.entries(s).slice(i + 1).map(([b, y]) => `${a}=${x}|${b}=${y}`))));
    expect(pairs(cases).size).toBe(pairs(allSpellings()).size);
  });
  test.each(cases.map((s) => [describeSpelling(s), s] as const))('%s', async (_, s) => {
    await check(s);
  });
});
