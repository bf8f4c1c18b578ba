// Low-rank specs (Nystrom, Linformer, Performer) as kernel sequences on a real WebGPU adapter against the
// float64 reference, on property-generated problems (layouts, GQA, past K/V, odd lengths, head dims
// 1..128). Tolerances (f32 storage):
// - Linformer, Performer: atol 1e-5, rtol 1e-4 (KERNEL_TOLERANCES.float32);
// - Nystrom: atol 1e-5 + 4 kappa u max|y|, rtol 1e-4, with kappa the largest 2-norm condition number of the
//   landmark matrix A = softmax(scale Ql Klᵀ) over the heads (computed here in float64 from the inputs) and
//   u = 2^-24: A is formed in f32 on the device (its entries carry a few ulps of rounding) and the exact
//   pseudo-inverse amplifies a relative perturbation of A by up to kappa (first-order perturbation bound).
// f16 storage (inputs rounded to f16 before the reference runs, f32 intermediates, Y stored as f16): atol
// 1e-2, rtol 1e-2, plus the same kappa term for Nystrom.

import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { type AttentionParams, type AttentionSpec, floatToHalf, halfToFloat, linformer, nystrom, performer } from '@attnopt/ir';
import {
  compareArrays,
  headsView,
  matrix,
  matmulTransposed,
  referenceAttention,
  type ReferenceInputs,
  segmentMeans,
  softmaxRows,
  svd,
  type Tensor64,
  type Tolerance,
} from '@attnopt/reference';
import { attentionProblemArbitrary, KERNEL_TOLERANCES, lowRankSpecArbitrary, seededValues } from '@attnopt/properties';
import type { StorageDType } from './attention-program.js';
import { prepareAttention } from './attention.js';
import { segmentMeanMatrix } from './low-rank.js';
import { testRuntime } from './testing/gpu.js';
import type { WgslRuntime } from './runtime.js';

const NUM_RUNS = Number(process.env.WGSL_NUM_RUNS ?? 12);
const TOL: Record<StorageDType, Tolerance> = { f32: KERNEL_TOLERANCES.float32, f16: KERNEL_TOLERANCES.float16 };
const U32 = 2 ** -24;

let rt: WgslRuntime;
beforeAll(async () => {
  rt = await testRuntime();
});

const rounder = (dtype: StorageDType) => (dtype === 'f32' ? Math.fround : (x: number) => halfToFloat(floatToHalf(x)));

function roundInputs(inputs: ReferenceInputs, dtype: StorageDType): ReferenceInputs {
  const r = rounder(dtype);
  const t = (x: Tensor64 | undefined): Tensor64 | undefined => (x === undefined ? x : { shape: x.shape, data: x.data.map(r) });
  return {
    q: t(inputs.q)!,
    ...(inputs.k ? { k: t(inputs.k)! } : {}),
    ...(inputs.v ? { v: t(inputs.v)! } : {}),
    ...(inputs.pastKey && inputs.pastValue ? { pastKey: t(inputs.pastKey)!, pastValue: t(inputs.pastValue)! } : {}),
  };
}

/** The largest condition number of the Nystrom landmark matrix A over (batch, head), in float64. */
function nystromKappa(p: AttentionParams, inputs: ReferenceInputs, landmarks: number): number {
  const view = headsView(p, inputs.q, inputs.k, inputs.v);
  const { batch, nq } = view;
  const H = p.numHeads;
  const G = p.kvNumHeads;
  const d = p.headDim;
  const past = inputs.pastKey?.shape[2] ?? 0;
  const nkNew = view.k.shape[2]!;
  const nk = past + nkNew;
  const m = Math.min(landmarks, nq, nk);
  let kappa = 1;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / G));
      const q = matrix(nq, d, view.q.data.slice((b * H + h) * nq * d, (b * H + h + 1) * nq * d));
      const kd = new Float64Array(nk * d);
      if (past > 0) kd.set(inputs.pastKey!.data.subarray((b * G + g) * past * d, (b * G + g + 1) * past * d));
      kd.set(view.k.data.subarray((b * G + g) * nkNew * d, (b * G + g + 1) * nkNew * d), past * d);
      const a = softmaxRows(matmulTransposed(segmentMeans(q, m), segmentMeans(matrix(nk, d, kd), m)), p.scale);
      const s = svd(a).s;
      kappa = Math.max(kappa, Math.max(...s) / Math.min(...s));
    }
  }
  return kappa;
}

async function expectMatchesReference(params: AttentionParams, raw: ReferenceInputs, dtype: StorageDType): Promise<void> {
  const inputs = roundInputs(raw, dtype);
  const expected = referenceAttention(params, inputs).y.data;
  let tol = TOL[dtype];
  if (params.spec.kind === 'nystrom') {
    const kappa = nystromKappa(params, inputs, params.spec.landmarks);
    const ymax = expected.reduce((x, y) => Math.max(x, Math.abs(y)), 0);
    tol = { atol: tol.atol + 4 * kappa * U32 * ymax, rtol: tol.rtol };
  }
  const prepared = await prepareAttention(rt, params, inputs, { dtype });
  try {
    expect(prepared.plan).toBeUndefined();
    await prepared.run();
    const actual = await prepared.read();
    const cmp = compareArrays(actual, expected, tol);
    if (!cmp.ok) {
      throw new Error(
        `${dtype} ${JSON.stringify(params.spec)} differs from the reference (max abs error ${cmp.maxAbsError}, atol ${tol.atol}): ` +
          JSON.stringify(cmp.mismatches),
      );
    }
  } finally {
    prepared.release();
  }
}

/** Low-rank problems from the shared arbitrary: layouts, GQA, past K/V, odd lengths (no bias, no softcap). */
const sharedProblems = attentionProblemArbitrary({ range: 1, maxLen: 16, bias: false, spec: lowRankSpecArbitrary(16) }).map((p) => ({
  params: { ...p.params, softcap: 0 },
  inputs: p.inputs,
}));

/** Head dims 32/64/80/96/128, GQA, odd lengths, every low-rank kind. */
const headDimProblems = fc
  .record({
    d: fc.constantFrom(32, 64, 80, 96, 128),
    group: fc.integer({ min: 1, max: 4 }),
    kvHeads: fc.integer({ min: 1, max: 2 }),
    batch: fc.integer({ min: 1, max: 2 }),
    nq: fc.integer({ min: 1, max: 23 }),
    nk: fc.integer({ min: 1, max: 23 }),
    seed: fc.integer({ min: 0, max: 2 ** 30 }),
    spec: fc.oneof(
      fc.integer({ min: 1, max: 12 }).map((m) => nystrom(m) as AttentionSpec),
      fc.tuple(fc.integer({ min: 1, max: 12 }), fc.nat(1000)).map(([r, s]) => linformer(r, s) as AttentionSpec),
      fc.tuple(fc.integer({ min: 1, max: 160 }), fc.nat(1000), fc.boolean()).map(([m, s, o]) => performer(m, s, o) as AttentionSpec),
    ),
  })
  .map((r) => {
    const H = r.group * r.kvHeads;
    const params: AttentionParams = { numHeads: H, kvNumHeads: r.kvHeads, headDim: r.d, vHeadDim: r.d, scale: 1 / Math.sqrt(r.d), softcap: 0, layout: 'bhsd', spec: r.spec };
    const t = (salt: number, shape: number[]): Tensor64 => ({ shape, data: seededValues(r.seed * 4 + salt, shape.reduce((a, b) => a * b), 1) });
    const inputs: ReferenceInputs = { q: t(0, [r.batch, H, r.nq, r.d]), k: t(1, [r.batch, r.kvHeads, r.nk, r.d]), v: t(2, [r.batch, r.kvHeads, r.nk, r.d]) };
    return { params, inputs };
  });

describe('low-rank specs as kernel sequences vs the float64 reference', () => {
  it('f32: any layout, GQA, past K/V, odd lengths', async () => {
    await fc.assert(
      fc.asyncProperty(sharedProblems, async (p) => {
        await expectMatchesReference(p.params, p.inputs, 'f32');
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('f32: head dims 32/64/80/96/128 with GQA', async () => {
    await fc.assert(
      fc.asyncProperty(headDimProblems, async (p) => {
        await expectMatchesReference(p.params, p.inputs, 'f32');
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('f16 storage', async () => {
    if (!rt.features.f16) expect.fail(`adapter ${rt.adapterDescription} does not offer shader-f16; lavapipe (Mesa 25) does`);
    await fc.assert(
      fc.asyncProperty(fc.oneof(sharedProblems, headDimProblems), async (p) => {
        await expectMatchesReference(p.params, p.inputs, 'f16');
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('Nystrom with landmarks >= n on self-attention is dense attention', async () => {
    const n = 9;
    const d = 32;
    const base: AttentionParams = { numHeads: 2, kvNumHeads: 1, headDim: d, vHeadDim: d, scale: 1 / Math.sqrt(d), softcap: 0, layout: 'bhsd', spec: nystrom(n) };
    const t = (salt: number, shape: number[]): Tensor64 => ({ shape, data: seededValues(salt, shape.reduce((a, b) => a * b), 1).map(Math.fround) });
    const inputs = { q: t(1, [1, 2, n, d]), k: t(2, [1, 1, n, d]), v: t(3, [1, 1, n, d]) };
    const dense = referenceAttention({ ...base, spec: { kind: 'dense' } }, inputs).y.data;
    const prepared = await prepareAttention(rt, base, inputs);
    await prepared.run();
    const y = await prepared.read();
    prepared.release();
    const kappa = nystromKappa(base, inputs, n);
    const cmp = compareArrays(y, dense, { atol: 1e-5 + 4 * kappa * U32, rtol: 1e-4 });
    expect(cmp.ok, `max abs error ${cmp.maxAbsError}, kappa ${kappa}`).toBe(true);
  });

  it('refuses bias, kvLength and softcap with a message', async () => {
    const p: AttentionParams = { numHeads: 1, kvNumHeads: 1, headDim: 4, vHeadDim: 4, scale: 0.5, softcap: 0, layout: 'bhsd', spec: linformer(2, 1) };
    const x = { shape: [1, 1, 3, 4], data: new Float32Array(12) };
    await expect(prepareAttention(rt, { ...p, softcap: 2 }, { q: x, k: x, v: x })).rejects.toThrow(/low-rank spec linformer.*softcap/);
    await expect(prepareAttention(rt, p, { q: x, k: x, v: x, kvLength: [2] })).rejects.toThrow(/kvLength/);
  });
});

describe('host pieces of the sequences', () => {
  it('segmentMeanMatrix times X gives the reference segment means', () => {
    for (const [m, n, d] of [[1, 1, 3], [3, 7, 2], [5, 5, 4], [4, 13, 3]] as const) {
      const x = seededValues(m * n, n * d, 1);
      const expected = segmentMeans(matrix(n, d, x), m).data;
      const w = segmentMeanMatrix(m, n);
      for (let t = 0; t < m; t++) {
        for (let c = 0; c < d; c++) {
          let s = 0;
          for (let i = 0; i < n; i++) s += w[t * n + i]! * x[i * d + c]!;
          expect(s).toBeCloseTo(expected[t * d + c]!, 12);
        }
      }
    }
  });
});
