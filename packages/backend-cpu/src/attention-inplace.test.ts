// The in-place path of compileAttention (float32 inputs read in their own layout with row strides, Y
// written in its final layout; taken when head dims are multiples of 4 and there is no past K/V) against
// the float64 reference on property-generated problems: every layout including packed-qkv, GQA, head
// dims 4..128 with a different value head dim, lengths that leave partial query and key blocks, every
// index spec, float and boolean bias with fully masked rows, kvLength (with 0 kept keys), softcap,
// several block sizes, both backends, calling thread and 2 workers, a reused output array.
// Tolerance: fp32 compute vs float64, |y - ref| <= 1e-5 + 1e-4 |ref| (KERNEL_TOLERANCES.float32); the
// kernels' exp2 has relative error < 4e-7 (simd-math.test.ts), far inside it.

import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { AttentionParams } from '@attnopt/ir';
import { compareArrays, fromBhsd, packQkv, referenceAttention, type ReferenceInputs, type Tensor64 } from '@attnopt/reference';
import { defaultKernelSpecs, KERNEL_TOLERANCES, seededValues } from '@attnopt/properties';
import { compileAttention, type CpuAttentionInputs, CpuWorkerPool } from './index.js';

const TOL = KERNEL_TOLERANCES.float32;
const pool = new CpuWorkerPool(2);
afterAll(() => pool.close());

const LAYOUTS = ['bsd', 'bhsd', 'bshd', 'packed-qkv'] as const;

const problem = fc
  .record({
    batch: fc.integer({ min: 1, max: 2 }),
    kvNumHeads: fc.integer({ min: 1, max: 2 }),
    group: fc.integer({ min: 1, max: 3 }),
    headDim: fc.constantFrom(4, 8, 12, 32, 64, 80, 96, 128),
    vHeadDim: fc.oneof(fc.constant(0), fc.constantFrom(4, 12, 20, 64)),
    nq: fc.integer({ min: 1, max: 70 }),
    nk: fc.integer({ min: 1, max: 75 }),
    layout: fc.constantFrom(...LAYOUTS),
    scale: fc.double({ min: 0.05, max: 1, noNaN: true }),
    softcap: fc.oneof(fc.constant(0), fc.constant(0), fc.double({ min: 1, max: 30, noNaN: true })),
    biasKind: fc.constantFrom('none', 'none', 'float', 'bool'),
    kvLength: fc.boolean(),
    spec: defaultKernelSpecs(75),
    blocks: fc.constantFrom([4, 8], [8, 16], [16, 8], [64, 64], [32, 64]),
    seed: fc.integer({ min: 0, max: 1 << 30 }),
  })
  .map((r) => {
    const packed = r.layout === 'packed-qkv';
    const d = r.headDim;
    const dv = packed || r.vHeadDim === 0 ? d : r.vHeadDim;
    const nq = d >= 64 ? Math.min(r.nq, 40) : r.nq;
    const nk = packed ? nq : d >= 64 ? Math.min(r.nk, 40) : r.nk;
    const H = r.kvNumHeads * r.group;
    const B = r.batch;
    const vals = (salt: number, shape: number[]): Tensor64 => ({
      shape,
      data: Float64Array.from(seededValues(r.seed * 8 + salt, shape.reduce((a, b) => a * b, 1), 1.5), Math.fround),
    });
    const q = vals(0, [B, H, nq, d]);
    const k = vals(1, [B, r.kvNumHeads, nk, d]);
    const v = vals(2, [B, r.kvNumHeads, nk, dv]);
    const f32 = (t: Tensor64) => ({ shape: t.shape, data: Float32Array.from(t.data) });
    const inLayout = (t: Tensor64) => f32(fromBhsd(t, r.layout as 'bsd' | 'bhsd' | 'bshd'));
    let bias: ReferenceInputs['bias'];
    if (r.biasKind !== 'none') {
      const raw = seededValues(r.seed * 8 + 5, B * H * nq * nk, 1);
      // rows 0 and 2 of every head fully masked
      const masked = (idx: number) => Math.floor(idx / nk) % nq === 0 || Math.floor(idx / nk) % nq === 2;
      bias =
        r.biasKind === 'float'
          ? { shape: [B, H, nq, nk], data: Float64Array.from(raw, (x, idx) => (masked(idx) || x < -0.7 ? -Infinity : Math.fround(2 * x))) }
          : { shape: [B, H, nq, nk], data: Uint8Array.from(raw, (x, idx) => (masked(idx) || x < -0.5 ? 0 : 1)) };
    }
    const kvLength = r.kvLength ? Array.from({ length: B }, (_, b) => (b === 0 ? Math.floor(nk / 2) : nk)) : undefined;
    const params: AttentionParams = { numHeads: H, kvNumHeads: r.kvNumHeads, headDim: d, vHeadDim: dv, scale: r.scale, softcap: r.softcap, layout: r.layout, spec: r.spec };
    const refInputs: ReferenceInputs = {
      ...(packed ? { q: packQkv(q, k, v) } : { q: fromBhsd(q, r.layout as 'bsd'), k: fromBhsd(k, r.layout as 'bsd'), v: fromBhsd(v, r.layout as 'bsd') }),
      ...(bias ? { bias } : {}),
      ...(kvLength ? { kvLength } : {}),
    };
    const inputs: CpuAttentionInputs = {
      ...(packed ? { q: f32(packQkv(q, k, v)) } : { q: inLayout(q), k: inLayout(k), v: inLayout(v) }),
      ...(bias ? { bias: bias.data instanceof Uint8Array ? { shape: bias.shape, data: bias.data } : { shape: bias.shape, data: Float32Array.from(bias.data as Float64Array) } } : {}),
      ...(kvLength ? { kvLength } : {}),
    };
    return { params, refInputs, inputs, blockQ: r.blocks[0]!, blockK: r.blocks[1]! };
  });

function check(got: Float32Array, want: Float64Array): void {
  const cmp = compareArrays(got, want, TOL);
  if (!cmp.ok) throw new Error(`max abs error ${cmp.maxAbsError}: ${JSON.stringify(cmp.mismatches)}`);
}

describe.each(['wasm', 'js'] as const)('%s kernel, inputs read in place', (backend) => {
  it('matches the float64 reference on the calling thread', () => {
    fc.assert(
      fc.property(problem, (pr) => {
        const want = referenceAttention(pr.params, pr.refInputs).y.data;
        check(compileAttention(pr.params, { backend, blockQ: pr.blockQ, blockK: pr.blockK }).run(pr.inputs), want);
      }),
      { numRuns: backend === 'wasm' ? 150 : 60, seed: 41 },
    );
  });

  it('matches on 2 worker threads, writing into a given output array', async () => {
    await fc.assert(
      fc.asyncProperty(problem, async (pr) => {
        const want = referenceAttention(pr.params, pr.refInputs).y.data;
        const output = new Float32Array(want.length).fill(Number.NaN);
        const got = await compileAttention(pr.params, { backend, blockQ: pr.blockQ, blockK: pr.blockK }).runParallel(pr.inputs, pool, { output });
        expect(got).toBe(output);
        check(got, want);
      }),
      { numRuns: 40, seed: 42 },
    );
  });
});

describe('in-place anchors', () => {
  it('gives 0 for every row of a batch whose kvLength is 0', () => {
    const p: AttentionParams = { numHeads: 2, kvNumHeads: 1, headDim: 8, vHeadDim: 8, scale: 0.3, softcap: 0, layout: 'bsd', spec: { kind: 'dense' } };
    const n = 9;
    const t = (s: number, w: number) => ({ shape: [2, n, w], data: Float32Array.from(seededValues(s, 2 * n * w, 1)) });
    const y = compileAttention(p, { blockQ: 4, blockK: 8 }).run({ q: t(1, 16), k: t(2, 8), v: t(3, 8), kvLength: [0, n] });
    expect(Array.from(y.subarray(0, n * 16)).every((x) => x === 0)).toBe(true);
    expect(Array.from(y.subarray(n * 16)).some((x) => x !== 0)).toBe(true);
  });

  it('rejects an output array of the wrong length', () => {
    const p: AttentionParams = { numHeads: 1, kvNumHeads: 1, headDim: 4, vHeadDim: 4, scale: 1, softcap: 0, layout: 'bhsd', spec: { kind: 'dense' } };
    const t = { shape: [1, 1, 3, 4], data: new Float32Array(12) };
    expect(() => compileAttention(p).run({ q: t, k: t, v: t }, { output: new Float32Array(11) })).toThrow(/output needs 12 floats/);
  });
});
