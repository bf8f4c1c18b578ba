// A key bias [.., 1, nk] (constant along the query axis: ALiBi as slope_h · j, an additive key-padding mask
// [B, 1, 1, nk]) on a real WebGPU adapter (lavapipe without a GPU; the test FAILS without one), read by the guarded
// and the plain attention kernels with row stride bias_si = 0 and uploaded as given: O(B H nk), never expanded to
// nq x nk on the host.
// Guarded window site (window(31, 0) inside causal, summary block 32, n = 256, 4 heads of 16, epsilon 1e-3):
//   |y - ref| <= epsilon + 1e-5 + 1e-4 |ref| per coordinate against the float64 causal reference with the bias;
//   the certificate is never below the true dropped mass: m_hat >= m (1 - 1e-6) - 1e-7;
//   every row with (m (1 - 1e-6) - 1e-7) R > epsilon falls back (R: V's largest column range over all keys, as the
//   kernel takes it);
//   ALiBi slopes 1, 1/4, 1/16, 1/256: the bias varies by up to 8 inside one segment, so a segment bound that took
//   any key's bias but the largest dropped one would fall below the true mass; slope 1 (head 0): the kept key i scores at least -4 + i and a dropped key j <= i - 32 at most 4 + j, so
//   every term of B is at most e^(8 - 32): m_hat <= 256 e^-24 (1 + 2^-10) < 1e-7 on every row of that head;
//   padding: a row whose kept keys are all -inf has m_hat = 1 and falls back, also when epsilon >= R (its sparse
//   output, 0, is no convex combination of V: m_hat R bounds nothing there); a row with no key left is 0, m_hat 0.
// Plain kernel (tiled and subgroup): the same two bias shapes against the reference, atol 1e-5, rtol 1e-4.

import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type AttentionParams, causal, type MaskSpec, slidingWindow } from '@attnopt/ir';
import { compareArrays, referenceAttention, type Tensor64 } from '@attnopt/reference';
import { KERNEL_TOLERANCES, seededValues } from '@attnopt/properties';
import { runAttention } from './attention.js';
import { runGuardedAttention, type WgslGuardedResult } from './guarded.js';
import type { WgslRuntime } from './runtime.js';
import { testRuntime } from './testing/gpu.js';

const N = 256;
const D = 16;
const H = 4;
const SCALE = 1 / 4;
const EPSILON = 1e-3;
const BLOCK = 32;
const TOL = { atol: 1e-5, rtol: 1e-4 };
const SPEC: MaskSpec = slidingWindow(31, 0);
const MODEL: MaskSpec = causal();
const PARAMS: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: SCALE, softcap: 0, layout: 'bhsd', spec: SPEC };

let rt: WgslRuntime;
beforeAll(async () => {
  rt = await testRuntime();
});
afterEach(() => {
  vi.restoreAllMocks();
});

const f64 = (shape: number[], data: Float64Array): Tensor64 => ({ shape, data: data.map(Math.fround) });
const f32 = (t: Tensor64) => ({ shape: t.shape, data: Float32Array.from(t.data) });

/** Q, K uniform in [-1, 1] (|scale q . k| <= 4), V uniform in [-1, 1]; or `local`: a topic per span of 32, score 40 on it. */
function qkv(batch: number, seed: number, local: boolean) {
  const len = batch * H * N * D;
  const q = seededValues(seed * 3 + 1, len, 1);
  const k = seededValues(seed * 3 + 2, len, 1);
  const v = seededValues(seed * 3 + 3, len, 1);
  if (local) {
    const a = Math.sqrt(40 / SCALE);
    const topics = seededValues(seed * 3 + 4, batch * H * (N / 32) * D, 1);
    for (let bh = 0; bh < batch * H; bh++) {
      for (let t = 0; t < N / 32; t++) {
        const u = topics.subarray((bh * (N / 32) + t) * D, (bh * (N / 32) + t + 1) * D);
        const norm = Math.hypot(...u);
        for (let i = 32 * t; i < 32 * t + 32; i++) {
          for (let c = 0; c < D; c++) {
            q[(bh * N + i) * D + c] = (a * u[c]!) / norm;
            k[(bh * N + i) * D + c] = (a * u[c]!) / norm + 0.01 * k[(bh * N + i) * D + c]!;
          }
        }
      }
    }
  }
  const shape = [batch, H, N, D];
  return { q: f64(shape, q), k: f64(shape, k), v: f64(shape, v) };
}

/** Runs the guarded kernel with the bias as given, recording every buffer size the runtime is asked for. */
async function runGuarded(x: ReturnType<typeof qkv>, bias: { shape: number[]; data: Float32Array }) {
  const acquired: number[] = [];
  const uploaded: ArrayBufferView[] = [];
  const acquire = rt.acquire.bind(rt);
  const upload = rt.upload.bind(rt);
  vi.spyOn(rt, 'acquire').mockImplementation((size, usage) => {
    acquired.push(size);
    return acquire(size, usage);
  });
  vi.spyOn(rt, 'upload').mockImplementation((data, usage) => {
    uploaded.push(data);
    return upload(data, usage);
  });
  const got = await runGuardedAttention(rt, PARAMS, { q: f32(x.q), k: f32(x.k), v: f32(x.v), bias }, { epsilon: EPSILON, modelMask: MODEL, block: BLOCK });
  vi.restoreAllMocks();
  return { got, acquired, uploaded };
}

/** Per (batch, head, row): the mass the window drops from the reference probabilities, and V's column range per (batch, head). */
function droppedMass(probs: Tensor64, v: Tensor64, batch: number) {
  const mass = new Float64Array(batch * H * N);
  const range = new Float64Array(batch * H);
  for (let bh = 0; bh < batch * H; bh++) {
    for (let c = 0; c < D; c++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let j = 0; j < N; j++) {
        lo = Math.min(lo, v.data[(bh * N + j) * D + c]!);
        hi = Math.max(hi, v.data[(bh * N + j) * D + c]!);
      }
      range[bh] = Math.max(range[bh]!, hi - lo);
    }
    for (let i = 0; i < N; i++) for (let j = 0; j < i - 31; j++) mass[bh * N + i] += probs.data[(bh * N + i) * N + j]!;
  }
  return { mass, range };
}

/** The checks every guarded run must pass; returns the number of rows that must fall back. */
function checkGuarded(got: WgslGuardedResult, x: ReturnType<typeof qkv>, bias: Tensor64, batch: number, label: string): { mustFallBack: number; mass: Float64Array } {
  const ref = referenceAttention({ ...PARAMS, spec: MODEL, scoresMode: 'softmax' }, { ...x, bias });
  const cmp = compareArrays(got.y, ref.y.data, { atol: EPSILON + TOL.atol, rtol: TOL.rtol });
  if (!cmp.ok) throw new Error(`${label}: output beyond epsilon ${EPSILON}: max abs error ${cmp.maxAbsError}, ${JSON.stringify(cmp.mismatches)}`);
  const { mass, range } = droppedMass(ref.scores!, x.v, batch);
  let mustFallBack = 0;
  for (let r = 0; r < batch * H * N; r++) {
    const m = mass[r]!;
    if (!(got.certificates[r]! >= m * (1 - 1e-6) - 1e-7)) throw new Error(`${label}: row ${r}: certificate ${got.certificates[r]} below the dropped mass ${m}`);
    if ((m * (1 - 1e-6) - 1e-7) * range[Math.floor(r / N)]! > EPSILON) mustFallBack++;
  }
  expect(got.rows).toBe(batch * H * N);
  expect(got.fallbackRows).toBeGreaterThanOrEqual(mustFallBack);
  return { mustFallBack, mass };
}

describe('guarded WGSL kernel with a key bias [.., 1, nk]', () => {
  it('ALiBi [1, H, 1, nk]: within the budget, the steep head certified from the bias, no n x n buffer', async () => {
    const slopes = [1, 1 / 4, 1 / 16, 1 / 256];
    const alibi = new Float64Array(H * N);
    for (let h = 0; h < H; h++) for (let j = 0; j < N; j++) alibi[h * N + j] = Math.fround(slopes[h]! * j);
    const bias = { shape: [1, H, 1, N], data: alibi };
    const x = qkv(1, 11, false);
    const biasF32 = Float32Array.from(alibi);
    const { got, acquired, uploaded } = await runGuarded(x, { shape: bias.shape, data: biasF32 });
    const { mustFallBack } = checkGuarded(got, x, bias, 1, 'ALiBi');
    // head 0 (slope 1): every row certified far below epsilon / R, so none of its rows falls back
    for (let i = 0; i < N; i++) expect(got.certificates[i]!).toBeLessThan(1e-7);
    expect(got.fallbackRows).toBeLessThanOrEqual((H - 1) * N);
    // head 3 (slope 1/256) on diffuse inputs: rows far from the start drop most of their mass and must fall back
    expect(mustFallBack).toBeGreaterThan(N / 2);
    // the bias went to the device as given (H · nk values) and nothing of nq · nk was asked for
    expect(uploaded.filter((d) => d === biasF32)).toHaveLength(1);
    expect(Math.max(...acquired)).toBeLessThan(4 * H * N * N);
  });

  it('key-padding mask [B, 1, 1, nk] with -inf: left and right padding, a masked span, rows with no kept key', async () => {
    const B = 2;
    const pad = new Float64Array(B * N);
    for (let j = 0; j < N; j++) {
      pad[j] = j < 40 || j >= 240 ? -Infinity : 0; // batch 0: left padding of 40 keys, right padding from 240
      pad[N + j] = j >= 100 && j < 140 ? -Infinity : 0; // batch 1: a masked span (between two packed sequences)
    }
    const bias = { shape: [B, 1, 1, N], data: pad };
    const x = qkv(B, 5, true);
    const biasF32 = Float32Array.from(pad);
    const { got, acquired, uploaded } = await runGuarded(x, { shape: bias.shape, data: biasF32 });
    const { mustFallBack, mass } = checkGuarded(got, x, bias, B, 'padding');
    const row = (b: number, h: number, i: number) => (b * H + h) * N + i;
    for (let h = 0; h < H; h++) {
      // batch 0, rows before the first real key: nothing to attend, output 0, nothing dropped
      for (let i = 0; i < 40; i++) {
        expect(got.certificates[row(0, h, i)]).toBe(0);
        for (let c = 0; c < D; c++) expect(got.y[row(0, h, i) * D + c]).toBe(0);
      }
      // batch 1, rows 131..139: their window [i - 31, i] lies inside the masked span, all their mass is dropped
      for (let i = 131; i < 140; i++) {
        expect(mass[row(1, h, i)]).toBeCloseTo(1, 12);
        expect(got.certificates[row(1, h, i)]!).toBeGreaterThanOrEqual(1 - 1e-6); // B / (0 + B) with WGSL's 2.5-ulp division
      }
    }
    expect(mustFallBack).toBeGreaterThanOrEqual(H * 9);
    // local inputs: apart from the rows the mask forces, the guard holds (the fallback is not everything)
    expect(got.fallbackRows).toBeLessThan(got.rows / 4);
    expect(uploaded.filter((d) => d === biasF32)).toHaveLength(1);
    expect(Math.max(...acquired)).toBeLessThan(4 * B * N * N);
  });

  it('a row whose kept keys are all masked is recomputed even when epsilon >= R (its sparse output, 0, is no bound)', async () => {
    // V in [4, 6]: R <= 2 < epsilon 2.5, so m_hat · R <= epsilon on every row, yet the dense output of a row is near 5
    const B = 1;
    const pad = new Float64Array(N);
    for (let j = 0; j < N; j++) pad[j] = j >= 100 && j < 140 ? -Infinity : 0;
    const bias = { shape: [B, 1, 1, N], data: pad };
    const x = qkv(B, 7, true);
    const v = { shape: x.v.shape, data: x.v.data.map((a) => Math.fround(5 + a)) };
    const got = await runGuardedAttention(rt, PARAMS, { q: f32(x.q), k: f32(x.k), v: f32(v), bias: { shape: bias.shape, data: Float32Array.from(pad) } }, { epsilon: 2.5, modelMask: MODEL, block: BLOCK });
    const ref = referenceAttention({ ...PARAMS, spec: MODEL }, { ...x, v, bias });
    const cmp = compareArrays(got.y, ref.y.data, { atol: 2.5 + TOL.atol, rtol: TOL.rtol });
    if (!cmp.ok) throw new Error(`output beyond epsilon 2.5: max abs error ${cmp.maxAbsError}, ${JSON.stringify(cmp.mismatches)}`);
    // rows 131..139 of every head keep no unmasked key: exactly they fall back
    expect(got.fallbackRows).toBe(H * 9);
  });

  it('refuses a bias whose query dim is neither nq nor 1, or whose data does not fill its shape', async () => {
    const x = qkv(1, 1, false);
    const base = { q: f32(x.q), k: f32(x.k), v: f32(x.v) };
    await expect(runGuardedAttention(rt, PARAMS, { ...base, bias: { shape: [1, H, 2, N], data: new Float32Array(2 * H * N) } }, { epsilon: EPSILON })).rejects.toThrow(
      `bias [1, ${H}, 2, ${N}] does not broadcast to [1, ${H}, ${N}, ${N}]`,
    );
    await expect(runGuardedAttention(rt, PARAMS, { ...base, bias: { shape: [1, H, 1, N], data: new Float32Array(N) } }, { epsilon: EPSILON })).rejects.toThrow(
      `bias [1, ${H}, 1, ${N}] needs ${H * N} values, got ${N}`,
    );
  });
});

describe.each(['tiled', 'subgroup'] as const)('%s attention kernel with a key bias [.., 1, nk]', (kernel) => {
  const n = 64;
  const d = 8;
  const params: AttentionParams = { numHeads: H, kvNumHeads: 1, headDim: d, vHeadDim: d, scale: 0.3, softcap: 0, layout: 'bhsd', spec: causal() };
  const cases: [string, number[], (b: number, h: number, j: number) => number][] = [
    ['ALiBi [1, H, 1, nk]', [1, H, 1, n], (_b, h, j) => Math.fround((h + 1) * 0.25 * j)],
    // batch 0: left padding of 10 keys (its first 10 rows see nothing); batch 1: every fifth key masked
    ['padding [B, 1, 1, nk]', [2, 1, 1, n], (b, _h, j) => (b === 0 ? (j < 10 ? -Infinity : 0) : j % 5 === 2 ? -Infinity : 0)],
  ];
  it.each(cases)('%s matches the float64 reference, uploaded as given', async (_, shape, at) => {
    if (kernel === 'subgroup' && !rt.features.subgroups) expect.fail(`adapter ${rt.adapterDescription} does not offer subgroups; lavapipe (Mesa 25) does`);
    const B = 2;
    const data = new Float64Array(shape[0]! * shape[1]! * n);
    for (let b = 0; b < shape[0]!; b++) for (let h = 0; h < shape[1]!; h++) for (let j = 0; j < n; j++) data[(b * shape[1]! + h) * n + j] = at(b, h, j);
    const t = (salt: number, s: number[]) => f64(s, seededValues(salt, s.reduce((a, c) => a * c), 1));
    const inputs = { q: t(1, [B, H, n, d]), k: t(2, [B, 1, n, d]), v: t(3, [B, 1, n, d]), bias: { shape, data } };
    const acquired: number[] = [];
    const acquire = rt.acquire.bind(rt);
    vi.spyOn(rt, 'acquire').mockImplementation((size, usage) => {
      acquired.push(size);
      return acquire(size, usage);
    });
    const y = await runAttention(rt, params, inputs, { subgroups: kernel === 'subgroup' });
    vi.restoreAllMocks();
    const ref = referenceAttention(params, inputs);
    const cmp = compareArrays(y, ref.y.data, KERNEL_TOLERANCES.float32);
    if (!cmp.ok) throw new Error(`max abs error ${cmp.maxAbsError}, ${JSON.stringify(cmp.mismatches)}`);
    expect(acquired).toContain(4 * data.length);
    expect(Math.max(...acquired)).toBeLessThan(4 * H * n * n);
  });
});
