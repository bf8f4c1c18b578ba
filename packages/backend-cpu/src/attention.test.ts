// Every generated kernel (WebAssembly SIMD128 and JavaScript; calling thread and 2 worker threads) against
// the float64 reference on property-generated problems: all index specs, GQA, every layout, odd lengths,
// bias with fully masked rows, past K/V, softcap, head dims 1..16/32/64/80/96/128, fp16 inputs.
// Tolerance: fp32 compute vs float64, |y - ref| <= 1e-5 + 1e-4 |ref| (KERNEL_TOLERANCES.float32);
// fp16 inputs are rounded to fp16 before the reference runs, so the same tolerance applies.

import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { type AttentionParams, causal, dense, floatToHalf, halfToFloat, sinks, slidingWindow, union } from '@attnopt/ir';
import { compareArrays, fromBhsd, referenceAttention, type Tensor64 } from '@attnopt/reference';
import {
  assertAttentionKernel,
  attentionProblemArbitrary,
  defaultKernelSpecs,
  KERNEL_TOLERANCES,
  seededValues,
} from '@attnopt/properties';
import { compileAttention, type CpuAttentionInputs, CpuWorkerPool } from './index.js';

const TOL = KERNEL_TOLERANCES.float32;
const BACKENDS = ['wasm', 'js'] as const;
const pool = new CpuWorkerPool(2);
afterAll(() => pool.close());

const f32 = (t: Tensor64): Tensor64 => ({ shape: t.shape, data: t.data.map(Math.fround) });

describe.each(BACKENDS)('%s kernel, calling thread', (backend) => {
  it('matches the float64 reference on generated problems (all index specs, GQA, layouts, bias, past)', () => {
    assertAttentionKernel((pr) => compileAttention(pr.params, { backend, blockQ: 8, blockK: 8 }).run(pr.inputs), {
      numRuns: 120,
      seed: 11,
    });
  });
  it('ignores padding: a lengths input whose padding keys and values hold NaN', () => {
    assertAttentionKernel((pr) => compileAttention(pr.params, { backend, blockQ: 8, blockK: 8 }).run(pr.inputs), { numRuns: 120, seed: 13, kvLength: true });
  });
  it('matches with one block covering everything and with the default 64 x 64 blocks', () => {
    assertAttentionKernel((pr) => compileAttention(pr.params, { backend }).run(pr.inputs), { numRuns: 40, seed: 12 });
  });
});

/** Problems at the head dims of real models (32/64/80/96/128), odd lengths, GQA, every index spec. */
const bigHeadProblem = fc
  .record({
    headDim: fc.constantFrom(32, 64, 80, 96, 128),
    kvNumHeads: fc.integer({ min: 1, max: 2 }),
    group: fc.integer({ min: 1, max: 2 }),
    nq: fc.integer({ min: 1, max: 37 }),
    nk: fc.integer({ min: 1, max: 41 }),
    softcap: fc.oneof(fc.constant(0), fc.double({ min: 1, max: 30, noNaN: true })),
    layout: fc.constantFrom('bsd', 'bhsd', 'bshd') as fc.Arbitrary<'bsd' | 'bhsd' | 'bshd'>,
    spec: defaultKernelSpecs(40),
    seed: fc.integer({ min: 0, max: 1 << 30 }),
  })
  .map((r) => {
    const H = r.kvNumHeads * r.group;
    const params: AttentionParams = {
      numHeads: H,
      kvNumHeads: r.kvNumHeads,
      headDim: r.headDim,
      vHeadDim: r.headDim,
      scale: 1 / Math.sqrt(r.headDim),
      softcap: r.softcap,
      layout: r.layout,
      spec: r.spec,
    };
    const t = (salt: number, shape: number[]) => fromBhsd(f32({ shape, data: seededValues(r.seed * 4 + salt, shape.reduce((a, b) => a * b), 2) }), r.layout);
    const inputs = { q: t(0, [1, H, r.nq, r.headDim]), k: t(1, [1, r.kvNumHeads, r.nk, r.headDim]), v: t(2, [1, r.kvNumHeads, r.nk, r.headDim]) };
    return { params, inputs };
  });

describe.each(BACKENDS)('%s kernel at head dims 32/64/80/96/128', (backend) => {
  it('matches the reference', () => {
    fc.assert(
      fc.property(bigHeadProblem, ({ params, inputs }) => {
        const want = referenceAttention(params, inputs).y.data;
        const got = compileAttention(params, { backend, blockQ: 8, blockK: 16 }).run(inputs);
        const cmp = compareArrays(got, want, TOL);
        if (!cmp.ok) throw new Error(`max abs error ${cmp.maxAbsError}: ${JSON.stringify(cmp.mismatches)}`);
      }),
      { numRuns: 40, seed: 21 },
    );
  });
});

describe.each(BACKENDS)('%s kernel on 2 worker threads', (backend) => {
  it('matches the reference on generated problems', async () => {
    const arb = attentionProblemArbitrary({ maxLen: 24, range: 1, spec: defaultKernelSpecs(24) });
    await fc.assert(
      fc.asyncProperty(arb, async (raw) => {
        const inputs = {
          ...raw.inputs,
          q: f32(raw.inputs.q),
          ...(raw.inputs.k ? { k: f32(raw.inputs.k) } : {}),
          ...(raw.inputs.v ? { v: f32(raw.inputs.v) } : {}),
          ...(raw.inputs.pastKey ? { pastKey: f32(raw.inputs.pastKey), pastValue: f32(raw.inputs.pastValue!) } : {}),
          ...(raw.inputs.bias && raw.inputs.bias.data instanceof Float64Array ? { bias: f32(raw.inputs.bias as Tensor64) } : {}),
        };
        const want = referenceAttention(raw.params, inputs).y.data;
        const got = await compileAttention(raw.params, { backend, blockQ: 4, blockK: 8 }).runParallel(inputs as CpuAttentionInputs, pool);
        const cmp = compareArrays(got, want, TOL);
        if (!cmp.ok) throw new Error(`max abs error ${cmp.maxAbsError}: ${JSON.stringify(cmp.mismatches)}`);
      }),
      { numRuns: 40, seed: 31 },
    );
  });
});

// One compiled kernel, called again and again: while the shapes stay, its key-block lists and mask tiles are
// planned once and reused; a change of batch, length or kvLength plans them anew. Every call against the
// float64 reference, the plain kernel and the guarded one (whose fallback lists over the model mask are reused
// alike), on the calling thread and on 2 worker threads.
describe.each(BACKENDS)('%s kernel called with changing shapes', (backend) => {
  const params: AttentionParams = { numHeads: 2, kvNumHeads: 2, headDim: 8, vHeadDim: 8, scale: 0.35, softcap: 0, layout: 'bhsd', spec: union(slidingWindow(5, 0), sinks(2)) };
  const calls: { batch: number; n: number; kvLength?: number[] }[] = [
    { batch: 1, n: 40 },
    { batch: 1, n: 40 },
    { batch: 1, n: 23 },
    { batch: 1, n: 40 },
    { batch: 2, n: 33, kvLength: [30, 17] },
    { batch: 2, n: 33, kvLength: [17, 30] },
    { batch: 2, n: 33, kvLength: [17, 30] },
    { batch: 2, n: 33 },
  ];
  const inputsOf = (c: (typeof calls)[number], seed: number): { q: Tensor64; k: Tensor64; v: Tensor64; kvLength?: number[] } => {
    const t = (s: number): Tensor64 => ({ shape: [c.batch, 2, c.n, 8], data: seededValues(s, c.batch * 2 * c.n * 8, 1).map(Math.fround) });
    return { q: t(seed), k: t(seed + 1), v: t(seed + 2), ...(c.kvLength ? { kvLength: c.kvLength } : {}) };
  };
  const reference = (spec: AttentionParams['spec'], x: ReturnType<typeof inputsOf>) => referenceAttention({ ...params, spec }, x).y.data;

  it('the plain kernel matches the reference on every call', async () => {
    const kernel = compileAttention(params, { backend, blockQ: 8, blockK: 8 });
    for (const [i, c] of calls.entries()) {
      const x = inputsOf(c, 10 * i);
      const want = reference(params.spec, x);
      expect(compareArrays(kernel.run(x), want, TOL).ok, `call ${i}`).toBe(true);
      expect(compareArrays(await kernel.runParallel(x, pool), want, TOL).ok, `call ${i}, 2 threads`).toBe(true);
    }
  });

  it('the guarded kernel at epsilon 0 gives the causal reference on every call', async () => {
    const kernel = compileAttention(params, { backend, blockQ: 8, blockK: 8, guard: { epsilon: 0, modelMask: causal() } });
    for (const [i, c] of calls.entries()) {
      const x = inputsOf(c, 10 * i + 5);
      const want = reference(causal(), x);
      expect(compareArrays(kernel.runGuarded(x).y, want, TOL).ok, `call ${i}`).toBe(true);
      expect(compareArrays((await kernel.runGuardedParallel(x, pool)).y, want, TOL).ok, `call ${i}, 2 threads`).toBe(true);
    }
  });
});

describe('anchors', () => {
  const base = { numHeads: 2, kvNumHeads: 1, headDim: 64, vHeadDim: 64, scale: 0.125, softcap: 0, layout: 'bhsd' as const };
  const mk = (n: number) => ({
    q: f32({ shape: [1, 2, n, 64], data: seededValues(1, 2 * n * 64, 1) }),
    k: f32({ shape: [1, 1, n, 64], data: seededValues(2, n * 64, 1) }),
    v: f32({ shape: [1, 1, n, 64], data: seededValues(3, n * 64, 1) }),
  });

  it('accepts fp16 inputs (converted on load)', () => {
    const n = 33;
    const x = mk(n);
    const half = (t: Tensor64) => ({ shape: t.shape, data: Uint16Array.from(t.data, floatToHalf) });
    const rounded = (t: Tensor64): Tensor64 => ({ shape: t.shape, data: Float64Array.from(half(t).data, halfToFloat) });
    const params = { ...base, spec: causal() };
    const want = referenceAttention(params, { q: rounded(x.q), k: rounded(x.k), v: rounded(x.v) }).y.data;
    const got = compileAttention(params).run({ q: half(x.q), k: half(x.k), v: half(x.v) });
    // the reference sees the fp16-rounded values: the fp32 tolerance applies
    expect(compareArrays(got, want, TOL).ok).toBe(true);
  });

  it('skips empty key blocks and does no mask work on full ones (causal window plan)', () => {
    const n = 512;
    const params = { ...base, spec: slidingWindow(127, 0) };
    const stats = compileAttention(params).planStats(mk(n));
    // per head: 8 query blocks; each sees at most 3 key blocks of 64 (window 128), 2 of them partial at most
    expect(stats.blocks).toBeLessThanOrEqual(2 * 8 * 3);
    const dense64 = compileAttention({ ...base, spec: dense }).planStats(mk(n));
    expect(dense64).toEqual({ blocks: 2 * 8 * 8, partial: 0 });
  });

  it('gives 0 on fully masked rows', () => {
    const n = 20;
    const x = mk(n);
    const bias = { shape: [n, n], data: new Uint8Array(n * n).fill(1).fill(0, 0, 3 * n) };
    for (const backend of BACKENDS) {
      const y = compileAttention({ ...base, spec: dense }, { backend, blockQ: 8, blockK: 8 }).run({ ...x, bias });
      expect(Array.from(y.subarray(0, 3 * 64)).every((v) => v === 0)).toBe(true);
      expect(y[3 * 64]).not.toBe(0);
    }
  });
});
