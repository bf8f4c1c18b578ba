// Costs of the LSH and Nystrom lowerings against hand-computed counts, and the shape of the model: linear in n
// where the lowering is, and cheaper than the dense form where it should be.

import { type AttentionParams, type AttentionSpec, causal, dense, intersect, lshBuckets, nystrom } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { attentionCost } from './attention-cost.js';
import { lshChunkedShape, NYSTROM_LOWERED_STEPS } from './lowered.js';
import { onnxruntimeCpuProfile } from './profiles/index.js';

const params = (spec: AttentionSpec, over: Partial<AttentionParams> = {}): AttentionParams => ({
  numHeads: 2, kvNumHeads: 2, headDim: 16, vHeadDim: 8, scale: 0.25, softcap: 0, layout: 'bhsd', spec, ...over,
});
const ort = onnxruntimeCpuProfile;

describe('chunked LSH lowering cost', () => {
  const leaf = lshBuckets(2, 8, 1, 32); // 2 rounds, 8 buckets, chunk 32
  it('n = 100, chunk 32: 4 chunks, 128 padded rows, scores 2 rounds · 128 · 64 per head', () => {
    expect(lshChunkedShape(leaf, 100)).toMatchObject({ chunks: 4, padded: 128, scores: 2 * 128 * 64, keysPerQuery: 128 });
    const c = attentionCost(params(leaf), { batch: 1, nq: 100, nk: 100 }, ort);
    expect(c.computedPairs).toBe(2 * 128 * 64);
    // MatMuls: hashing Q and K (2 · 2 heads · 2 rounds · 100 rows · 16 · 4 each), chunk scores (2 · S · 16),
    // P V (2 · S · 8) with S = 2 heads · 16384 scores
    const S = 2 * 2 * 128 * 64;
    expect(c.flops).toBe(2 * (2 * 2 * 2 * 100 * 16 * 4) + 2 * S * 16 + 2 * S * 8);
    expect(c.softmaxFlops).toBe(5 * S);
    expect(c.notes.join(' ')).toMatch(/lsh sorted by bucket/);
  });
  it('grows linearly in n: 4x the length costs about 4x the FLOPs, while dense grows 16x', () => {
    const at = (spec: AttentionSpec, n: number) => attentionCost(params(spec), { batch: 1, nq: n, nk: n }, ort);
    const ratio = at(leaf, 16384).flops / at(leaf, 4096).flops;
    expect(ratio).toBeGreaterThan(3.9);
    expect(ratio).toBeLessThan(4.1);
    expect(at(dense, 16384).flops / at(dense, 4096).flops).toBeCloseTo(16, 5);
    expect(at(leaf, 4096).time).toBeLessThan(at(dense, 4096).time);
    expect(at(leaf, 4096).peakMemory).toBeLessThan(at(dense, 4096).peakMemory / 4);
  });
  it('causal ∩ lsh takes the same form, with the causal test on the candidates', () => {
    // pairsKept needs the leaf's key sets inside an intersection: every key here (the count is not under test)
    const c = attentionCost(params(intersect(causal(), leaf)), { batch: 1, nq: 100, nk: 100 }, ort, { resolve: (_l, _row, dims) => [0, dims.nk] });
    expect(c.computedPairs).toBe(2 * 128 * 64);
    expect(c.ops.some((o) => o.what === 'causal')).toBe(true);
  });
  it('bucket equality (chunk 0) stays dense: nq x nk scores', () => {
    const c = attentionCost(params(lshBuckets(2, 8, 1, 0)), { batch: 1, nq: 100, nk: 100 }, ort);
    expect(c.computedPairs).toBe(100 * 100);
  });
});

describe('Nystrom lowering cost', () => {
  it('hand count: landmarks, three kernels, the float64 pseudo-inverse steps, F (A⁺ (G V))', () => {
    const [B, H, d, dv, n, m] = [1, 2, 16, 8, 256, 32];
    const c = attentionCost(params(nystrom(m)), { batch: B, nq: n, nk: n }, ort);
    const mm = (r: number, k: number, s: number) => 2 * B * H * r * k * s;
    const want =
      2 * mm(m, n, d) + // landmarks
      mm(n, d, m) + mm(m, d, m) + mm(m, d, n) + // F, A, G
      NYSTROM_LOWERED_STEPS * 4 * mm(m, m, m) + // pseudo-inverse
      mm(m, n, dv) + mm(m, m, dv) + mm(n, m, dv);
    expect(c.flops).toBe(want);
    expect(c.softmaxFlops).toBe(5 * B * H * (n * m + m * m + m * n));
    expect(c.ops.filter((o) => o.op === 'MatMul' && o.what.includes('pseudo-inverse')).length).toBe(4 * NYSTROM_LOWERED_STEPS);
    expect(c.notes.join(' ')).toMatch(/Newton–Schulz/);
  });
  it('landmarks clamp to n: m = min(landmarks, nq, nk)', () => {
    const a = attentionCost(params(nystrom(64)), { batch: 1, nq: 20, nk: 20 }, ort);
    const b = attentionCost(params(nystrom(20)), { batch: 1, nq: 20, nk: 20 }, ort);
    expect(a.flops).toBe(b.flops);
  });
  it('linear in n, cheaper than dense at n = 4096 with 64 landmarks', () => {
    const at = (spec: AttentionSpec, n: number) => attentionCost(params(spec), { batch: 1, nq: n, nk: n }, ort);
    const s = nystrom(64);
    const growth = (at(s, 16384).flops - at(s, 8192).flops) / (at(s, 8192).flops - at(s, 4096).flops);
    expect(growth).toBeCloseTo(2, 5); // affine in n: the n-independent pseudo-inverse cancels
    expect(at(s, 4096).flops).toBeLessThan(at(dense, 4096).flops / 4);
    expect(at(s, 4096).peakMemory).toBeLessThan(at(dense, 4096).peakMemory / 4);
  });
});
