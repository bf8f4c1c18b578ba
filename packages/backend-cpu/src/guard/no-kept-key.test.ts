// A guarded row that keeps no unmasked key but drops one (its window lies inside a -inf / false span of the bias)
// has sparse output 0, which is no convex combination of V: the bound m_hat · R does not hold there (the error
// can reach max |v|). Both kernels must recompute every such row, also when epsilon >= R.
// Setup: window(11, 0) inside causal, n = 96, 2 heads of 16, V uniform in [4, 6] (R <= 2), epsilon 2.5 >= R, so
// no other row can fall back; keys 40 .. 59 are masked, so rows 51 .. 59 keep no key and drop keys 0 .. 39.
//   - every output coordinate is within epsilon of the float64 causal reference: |y - ref| <= 2.5 + 1e-5 + 1e-4 |ref|
//     (before the rule these rows gave 0 against a reference near 5);
//   - every row that keeps no unmasked key and drops an unmasked one falls back, and no row that keeps a key does,
//     both counted here from the mask definitions, independently of the kernels. With a key bias the count is
//     exact; with a per-row mask a row whose every key is masked may fall back too (the bias bound of a dropped
//     segment is the largest over the rows it serves), and gives 0 either way.
// Generated problems (fast-check, seed 1411, 40 runs per backend): n 8..80, window 0..12 with 0..2 sinks inside
// causal, a masked key span (-inf key bias or a false span of a boolean mask [n, n]), V = 5 + U[-1, 1], epsilon
// 2 or 2.5 (>= R, so only the rows that keep no key may fall back), blocks 4..16: every coordinate within epsilon.

import fc from 'fast-check';
import { type AttentionParams, causal, intersect, keeps, type MaskSpec, sinks, slidingWindow, union } from '@attnopt/ir';
import { compareArrays, referenceAttention, type Tensor64 } from '@attnopt/reference';
import { seededValues } from '@attnopt/properties';
import { describe, expect, it } from 'vitest';
import { compileAttention, type CpuBoolTensor } from '../index.js';

const N = 96;
const D = 16;
const H = 2;
const EPSILON = 2.5;
const TOL = { atol: 1e-5, rtol: 1e-4 };
const SPEC: MaskSpec = slidingWindow(11, 0);
const MODEL: MaskSpec = causal();
const PARAMS: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 0.25, softcap: 0, layout: 'bhsd', spec: SPEC };
const MASKED_SPAN = (j: number) => j >= 40 && j < 60;

const f32 = (shape: number[], data: Float64Array): Tensor64 => ({ shape, data: data.map(Math.fround) });
const q = f32([1, H, N, D], seededValues(11, H * N * D, 1));
const k = f32([1, H, N, D], seededValues(12, H * N * D, 1));
const v = f32([1, H, N, D], seededValues(13, H * N * D, 1).map((x) => 5 + x));

/**
 * Over all heads: rows that keep no allowed key under SPEC ∩ MODEL but have an allowed key in MODEL \ SPEC (they
 * must fall back), and rows that keep no allowed key at all (the most that may fall back at epsilon >= R).
 */
function rowsKeepingNoKey(allowed: (i: number, j: number) => boolean): { mustFallBack: number; keepNoKey: number } {
  const dims = { nq: N, nk: N };
  const sparse = intersect(MODEL, SPEC);
  let mustFallBack = 0;
  let keepNoKey = 0;
  for (let i = 0; i < N; i++) {
    let kept = false;
    let dropped = false;
    for (let j = 0; j < N; j++) {
      if (!allowed(i, j) || !keeps(MODEL, i, j, dims)) continue;
      if (keeps(sparse, i, j, dims)) kept = true;
      else dropped = true;
    }
    if (!kept) keepNoKey++;
    if (!kept && dropped) mustFallBack++;
  }
  return { mustFallBack: H * mustFallBack, keepNoKey: H * keepNoKey };
}

const keyBias: Tensor64 = { shape: [1, 1, 1, N], data: Float64Array.from({ length: N }, (_, j) => (MASKED_SPAN(j) ? -Infinity : 0)) };
// rows 0, 7, 14, ... see no key at all; every row loses keys 40 .. 59
const rowMaskAllowed = (i: number, j: number) => i % 7 !== 0 && !MASKED_SPAN(j);
const boolMask: CpuBoolTensor = { shape: [N, N], data: Uint8Array.from({ length: N * N }, (_, x) => (rowMaskAllowed(Math.floor(x / N), x % N) ? 1 : 0)) };

const CASES = [
  { name: 'a -inf key bias [1, 1, 1, n]', bias: keyBias, allowed: (_i: number, j: number) => !MASKED_SPAN(j), exact: true },
  { name: 'a boolean mask [n, n] with fully masked rows', bias: boolMask, allowed: rowMaskAllowed, exact: false },
] as const;

describe.each(['wasm', 'js'] as const)('guarded %s kernel: a row that keeps no key but drops one', (backend) => {
  it.each(CASES)('falls back even when epsilon >= R, with $name', ({ bias, allowed, exact }) => {
    const { mustFallBack, keepNoKey } = rowsKeepingNoKey(allowed);
    expect(mustFallBack).toBeGreaterThan(0);
    for (const block of [undefined, 16]) {
      const kernel = compileAttention(PARAMS, { backend, blockQ: 8, blockK: 8, guard: { epsilon: EPSILON, modelMask: MODEL, ...(block ? { block } : {}) } });
      const got = kernel.runGuarded({ q, k, v, bias });
      const ref = referenceAttention({ ...PARAMS, spec: MODEL }, { q, k, v, bias });
      const cmp = compareArrays(got.y, ref.y.data, { atol: EPSILON + TOL.atol, rtol: TOL.rtol });
      if (!cmp.ok) throw new Error(`block ${block}: output beyond epsilon ${EPSILON}: max abs error ${cmp.maxAbsError}, ${JSON.stringify(cmp.mismatches.slice(0, 3))}`);
      expect(got.fallbackRows).toBeGreaterThanOrEqual(mustFallBack);
      expect(got.fallbackRows).toBeLessThanOrEqual(exact ? mustFallBack : keepNoKey);
    }
  });

  it('keeps the other rows on the sparse form: with V near 0 and no masked span, nothing falls back at epsilon >= R', () => {
    const v0 = f32([1, H, N, D], seededValues(13, H * N * D, 1));
    const got = compileAttention(PARAMS, { backend, blockQ: 8, blockK: 8, guard: { epsilon: EPSILON, modelMask: MODEL } }).runGuarded({ q, k, v: v0 });
    expect(got.fallbackRows).toBe(0);
    const ref = referenceAttention({ ...PARAMS, spec: MODEL }, { q, k, v: v0 });
    expect(compareArrays(got.y, ref.y.data, { atol: EPSILON + TOL.atol, rtol: TOL.rtol }).ok).toBe(true);
  });
});

describe.each(['wasm', 'js'] as const)('guarded %s kernel, generated rows that keep no key (V far from 0, epsilon >= R)', (backend) => {
  it('every output coordinate within epsilon of the float64 reference', () => {
    fc.assert(
      fc.property(
        fc.record({
          n: fc.integer({ min: 8, max: 80 }),
          w: fc.integer({ min: 0, max: 12 }),
          nSinks: fc.integer({ min: 0, max: 2 }),
          spanStart: fc.integer({ min: 0, max: 40 }),
          spanLength: fc.integer({ min: 1, max: 30 }),
          boolMask: fc.boolean(),
          epsilon: fc.constantFrom(2, 2.5),
          block: fc.constantFrom(4, 8, 16),
          seed: fc.integer({ min: 0, max: 1 << 20 }),
        }),
        (r) => {
          const spec = union(slidingWindow(r.w, 0), sinks(r.nSinks));
          const params: AttentionParams = { ...PARAMS, numHeads: 1, kvNumHeads: 1, spec };
          const masked = (j: number) => j >= r.spanStart && j < r.spanStart + r.spanLength;
          const bias = r.boolMask
            ? { shape: [r.n, r.n], data: Uint8Array.from({ length: r.n * r.n }, (_, x) => (masked(x % r.n) ? 0 : 1)) }
            : { shape: [1, 1, 1, r.n], data: Float64Array.from({ length: r.n }, (_, j) => (masked(j) ? -Infinity : 0)) };
          const x = {
            q: f32([1, 1, r.n, D], seededValues(r.seed * 3 + 1, r.n * D, 1)),
            k: f32([1, 1, r.n, D], seededValues(r.seed * 3 + 2, r.n * D, 1)),
            v: f32([1, 1, r.n, D], seededValues(r.seed * 3 + 3, r.n * D, 1).map((a) => 5 + a)),
          };
          const got = compileAttention(params, { backend, blockQ: 8, blockK: 8, guard: { epsilon: r.epsilon, modelMask: MODEL, block: r.block } }).runGuarded({ ...x, bias });
          const ref = referenceAttention({ ...params, spec: MODEL }, { ...x, bias });
          const cmp = compareArrays(got.y, ref.y.data, { atol: r.epsilon + TOL.atol, rtol: TOL.rtol });
          if (!cmp.ok) throw new Error(`output beyond epsilon ${r.epsilon}: max abs error ${cmp.maxAbsError}, ${JSON.stringify(cmp.mismatches.slice(0, 3))}`);
        },
      ),
      { numRuns: 40, seed: 1411 },
    );
  });
});
