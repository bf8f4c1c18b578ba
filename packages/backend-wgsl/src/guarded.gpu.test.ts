// The guarded WGSL kernel on a real WebGPU adapter (lavapipe without a GPU; the test FAILS without one)
// against the float64 reference of the model's own attention, small n: natural and adversarial inputs
// (repeated spans, an outlier key far outside the window, logits up to 80, all-equal keys, sinks that carry
// most of the mass); an additive bias with -inf entries, padded keys (kvLength); window + sinks, window + global
// tokens and block-sparse specs, softcap.
//   |y - ref| <= epsilon + 1e-5 + 1e-4 |ref| per coordinate (f32 storage and arithmetic);
//   the certificate is never below the true dropped mass: m_hat >= m (1 - 1e-6) - 1e-7;
//   epsilon 0 with non-local attention: the fallback counter counts every row that drops a key, output dense;
//   layouts bshd, bsd and packed QKV read through strides: the bhsd run's outputs and certificates, bit for bit;
//   past keys (a KV cache, align past) within epsilon of the causal reference over the present keys, and the same
//   keys as an external cache (kvLength, the spec's past = kvLength - nq) giving the same outputs;
//   f16 storage: within epsilon of the reference on the f16-rounded inputs, |y - ref| <= epsilon (1 + 2^-11) + 1e-5
//   + (1e-4 + 2^-11) |ref| (Y rounded to f16 once), certificates at least the dropped mass of those inputs.
// Runs per property: WGSL_NUM_RUNS (default 6): each problem compiles its own pipeline, slow on lavapipe.

import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { type AttentionParams, blockSparse, causal, dense, floatToHalf, halfToFloat, intersect, keeps, type MaskSpec, sinks, slidingWindow, union, globalTokens } from '@attnopt/ir';
import { compareArrays, referenceAttention, type Tensor64 } from '@attnopt/reference';
import { adversarialHeads, seededValues } from '@attnopt/properties';
import { guardInfo, runGuardedAttention } from './guarded.js';
import type { WgslRuntime } from './runtime.js';
import { testRuntime } from './testing/gpu.js';

const NUM_RUNS = Number(process.env.WGSL_NUM_RUNS ?? 6);
const TOL = { atol: 1e-5, rtol: 1e-4 };
const FAMILIES = ['natural', 'repeated', 'outlier', 'logits80', 'equalKeys', 'sinkMass', 'floatBias', 'padded'] as const;
type Family = (typeof FAMILIES)[number];

let rt: WgslRuntime;
beforeAll(async () => {
  rt = await testRuntime();
});

/** Q, K, V [1, H, n, d] of a family (floatBias and padded: natural inputs, their bias or lengths added by the test). */
const inputs = (family: Family, n: number, d: number, H: number, seed: number, scale: number) =>
  adversarialHeads(family === 'floatBias' || family === 'padded' ? 'natural' : family, { n, d, heads: H, seed, scale });

const f32 = (t: Tensor64) => ({ shape: t.shape, data: Float32Array.from(t.data) });

/** Rows of several [n, w_k] sequence-major arrays side by side: [n, sum w_k] (Q | K | V packed per position). */
function packRows(parts: Float32Array[], n: number): Float32Array {
  const widths = parts.map((x) => x.length / n);
  const row = widths.reduce((a, w) => a + w, 0);
  const out = new Float32Array(n * row);
  for (let i = 0; i < n; i++) {
    let at = i * row;
    parts.forEach((x, k) => {
      out.set(x.subarray(i * widths[k]!, (i + 1) * widths[k]!), at);
      at += widths[k]!;
    });
  }
  return out;
}

interface Extra {
  readonly bias?: Tensor64;
  readonly kvLength?: number[];
}

async function check(params: AttentionParams, modelMask: MaskSpec, x: ReturnType<typeof inputs>, epsilon: number, block: number, label: string, extra: Extra = {}) {
  const got = await runGuardedAttention(
    rt,
    params,
    { q: f32(x.q), k: f32(x.k), v: f32(x.v), ...(extra.bias ? { bias: f32(extra.bias) } : {}), ...(extra.kvLength ? { kvLength: extra.kvLength } : {}) },
    { epsilon, modelMask, block },
  );
  const ref = referenceAttention({ ...params, spec: modelMask, scoresMode: 'softmax' }, { ...x, ...extra });
  const cmp = compareArrays(got.y, ref.y.data, { atol: epsilon + TOL.atol, rtol: TOL.rtol });
  if (!cmp.ok) throw new Error(`${label}: output beyond epsilon ${epsilon}: max abs error ${cmp.maxAbsError}`);
  const [, H, n] = x.q.shape as [number, number, number];
  const sparse = intersect(modelMask, params.spec as MaskSpec);
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < n; i++) {
      let m = 0;
      for (let j = 0; j < n; j++) if (!keeps(sparse, i, j, { nq: n, nk: n })) m += ref.scores!.data[(h * n + i) * n + j]!;
      const cert = got.certificates[h * n + i]!;
      if (!(cert >= m * (1 - 1e-6) - 1e-7)) throw new Error(`${label}: row ${i} head ${h}: certificate ${cert} below the dropped mass ${m}`);
    }
  }
  return got;
}

describe('guarded WGSL kernel', () => {
  it('stays within epsilon of dense attention and certifies at least the dropped mass', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          family: fc.constantFrom(...FAMILIES),
          n: fc.integer({ min: 1, max: 40 }),
          d: fc.constantFrom(4, 8, 16),
          H: fc.integer({ min: 1, max: 2 }),
          w: fc.integer({ min: 0, max: 6 }),
          nSinks: fc.integer({ min: 0, max: 3 }),
          form: fc.constantFrom('window+sinks', 'window+global', 'blocks'),
          softcap: fc.constantFrom(0, 0, 4),
          causalModel: fc.boolean(),
          epsilon: fc.constantFrom(0, 1e-3, 0.05, 0.5),
          block: fc.constantFrom(4, 8, 16),
          seed: fc.integer({ min: 0, max: 1 << 20 }),
        }),
        async (r) => {
          const scale = 1 / Math.sqrt(r.d);
          const spec: MaskSpec =
            r.form === 'window+global'
              ? union(slidingWindow(r.w, r.w), globalTokens([Math.floor(r.n / 3)]))
              : r.form === 'blocks'
                ? blockSparse(8, 8, Array.from({ length: Math.ceil(r.n / 8) }, (_, i) => [i, 0]))
                : union(slidingWindow(r.w, 0), sinks(r.nSinks));
          const params: AttentionParams = { numHeads: r.H, kvNumHeads: r.H, headDim: r.d, vHeadDim: r.d, scale, softcap: r.softcap, layout: 'bhsd', spec };
          const extra: Extra = {};
          if (r.family === 'floatBias') {
            // an additive bias in [-4, 4] per (head, query, key), -inf on every seventh entry
            const data = seededValues(r.seed + 17, r.H * r.n * r.n, 4).map(Math.fround);
            for (let x = 0; x < data.length; x++) if (x % 7 === 3) data[x] = -Infinity;
            Object.assign(extra, { bias: { shape: [1, r.H, r.n, r.n], data } });
          }
          if (r.family === 'padded') Object.assign(extra, { kvLength: [Math.max(1, r.n - 1 - (r.seed % 4))] });
          await check(params, r.causalModel ? causal() : dense, inputs(r.family, r.n, r.d, r.H, r.seed, scale), r.epsilon, r.block, r.family, extra);
        },
      ),
      { numRuns: NUM_RUNS, seed: 1404 },
    );
  }, 600_000); // each run compiles three pipelines on lavapipe: about 1 s a run alone, far more beside other suites

  it('forced fallback (epsilon 0, non-local attention): every row that drops a key falls back, output dense', async () => {
    const n = 37;
    const d = 8;
    const params: AttentionParams = { numHeads: 2, kvNumHeads: 1, headDim: d, vHeadDim: d, scale: 0.3, softcap: 0, layout: 'bhsd', spec: union(slidingWindow(4, 0), sinks(2)) };
    const x = inputs('natural', n, d, 2, 5, 0.3);
    const kv = (t: Tensor64): Tensor64 => ({ shape: [1, 1, n, d], data: t.data.subarray(0, n * d) });
    const gqa = { q: x.q, k: kv(x.k), v: kv(x.v) };
    const got = await check(params, causal(), gqa, 0, 8, 'forced');
    // rows i >= 7 drop keys 2 .. i - 5, of positive probability on random inputs, in both query heads
    expect(got.fallbackRows).toBe(2 * (n - 7));
    expect(got.rows).toBe(2 * n);
  });

  it('with an additive bias (-inf entries) and padded keys, at epsilon 0 and 0.05', async () => {
    const n = 29;
    const d = 8;
    const params: AttentionParams = { numHeads: 2, kvNumHeads: 2, headDim: d, vHeadDim: d, scale: 0.35, softcap: 0, layout: 'bhsd', spec: union(slidingWindow(3, 0), sinks(2)) };
    const data = seededValues(77, 2 * n * n, 4).map(Math.fround);
    for (let x = 0; x < data.length; x++) if (x % 5 === 2) data[x] = -Infinity;
    const extra = { bias: { shape: [1, 2, n, n], data }, kvLength: [n - 4] };
    for (const epsilon of [0, 0.05]) await check(params, causal(), inputs('natural', n, d, 2, 9, 0.35), epsilon, 8, `bias, eps ${epsilon}`, extra);
  });

  // A segment that holds none of the row's candidate keys (outside its band and extra keys) is counted in closed
  // form from the model mask's interval; counted key by key (the same model mask written as a union: no single
  // interval) the certificates must come out the same, bit for bit. A closed form one key short passes the checks
  // above (the bound stays above the true mass on these inputs), not this one.
  it.each([
    ['causal model mask', causal(), union(causal(), causal()), undefined],
    ['dense model mask, padded keys', dense, union(dense, dense), [131]],
  ] as const)('%s: the closed-form dropped counts equal the counted ones', async (_label, model, counted, kvLength) => {
    const n = 150;
    const d = 8;
    const params: AttentionParams = { numHeads: 2, kvNumHeads: 2, headDim: d, vHeadDim: d, scale: 0.35, softcap: 0, layout: 'bhsd', spec: union(slidingWindow(8, 0), sinks(2)) };
    const x = inputs('natural', n, d, 2, 23, 0.35);
    const run = (modelMask: MaskSpec) =>
      runGuardedAttention(rt, params, { q: f32(x.q), k: f32(x.k), v: f32(x.v), ...(kvLength ? { kvLength } : {}) }, { epsilon: 1e-3, modelMask, block: 16 });
    const [closed, byKey] = [await run(model), await run(counted)];
    expect([...closed.certificates]).toEqual([...byKey.certificates]);
    expect([...closed.y]).toEqual([...byKey.y]);
    expect(closed.fallbackRows).toBe(byKey.fallbackRows);
  });

  it.each(['bshd', 'bsd', 'packed-qkv'] as const)('layout %s: the same outputs and certificates as bhsd, through strides', async (layout) => {
    const n = 27;
    const d = 8;
    const H = 2;
    const KVH = layout === 'packed-qkv' ? 2 : 1;
    const base: AttentionParams = { numHeads: H, kvNumHeads: KVH, headDim: d, vHeadDim: d, scale: 0.35, softcap: 0, layout: 'bhsd', spec: union(slidingWindow(4, 0), sinks(2)) };
    const x = inputs('repeated', n, d, H, 31, 0.35);
    const kv = (t: Tensor64): Tensor64 => ({ shape: [1, KVH, n, d], data: t.data.subarray(0, KVH * n * d) });
    const bhsd = { q: x.q, k: kv(x.k), v: kv(x.v) };
    const guard = { epsilon: 0.05, modelMask: causal(), block: 8 };
    const want = await check(base, causal(), bhsd, guard.epsilon, guard.block, 'bhsd');
    // [1, heads, n, d] -> [1, n, heads, d] (row-major)
    const seqMajor = (t: Tensor64, heads: number) => {
      const out = new Float32Array(heads * n * d);
      for (let h = 0; h < heads; h++) for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) out[(i * heads + h) * d + c] = t.data[(h * n + i) * d + c]!;
      return out;
    };
    const p: AttentionParams = { ...base, layout };
    const got =
      layout === 'packed-qkv'
        ? await runGuardedAttention(rt, p, { q: { shape: [1, n, 3 * H * d], data: packRows([seqMajor(bhsd.q, H), seqMajor(bhsd.k, KVH), seqMajor(bhsd.v, KVH)], n) } }, guard)
        : await runGuardedAttention(
            rt,
            p,
            Object.fromEntries(
              (['q', 'k', 'v'] as const).map((name) => {
                const heads = name === 'q' ? H : KVH;
                return [name, { shape: layout === 'bshd' ? [1, n, heads, d] : [1, n, heads * d], data: seqMajor(bhsd[name], heads) }];
              }),
            ) as unknown as Parameters<typeof runGuardedAttention>[2],
            guard,
          );
    // Y comes back sequence-major: the bhsd run's Y reordered, bit for bit; the certificates and fallback count equal
    expect([...got.y]).toEqual([...seqMajor({ shape: [1, H, n, d], data: Float64Array.from(want.y) }, H)]);
    expect([...got.certificates]).toEqual([...want.certificates]);
    expect(got.fallbackRows).toBe(want.fallbackRows);
    expect(want.fallbackRows).toBeGreaterThan(0);
  });

  it('past keys (a KV cache) and an external cache (kvLength, no past): within epsilon of the causal reference over the present keys', async () => {
    const [P, n, d, H, KVH] = [40, 13, 8, 2, 1];
    const scale = 0.35;
    const spec = union(slidingWindow(6, 0, 'past'), sinks(2));
    const params: AttentionParams = { numHeads: H, kvNumHeads: KVH, headDim: d, vHeadDim: d, scale, softcap: 0, layout: 'bshd', spec };
    const present = inputs('repeated', P + n, d, KVH, 41, scale); // [1, KVH, P + n, d]: the cache, then this call's keys
    const q = inputs('natural', n, d, H, 43, scale).q; // [1, H, n, d]
    const rows = (t: Tensor64, heads: number, from: number, count: number) => {
      const all = t.shape[2]!;
      const out = new Float64Array(heads * count * d);
      for (let h = 0; h < heads; h++) out.set(t.data.subarray((h * all + from) * d, (h * all + from + count) * d), h * count * d);
      return { shape: [1, heads, count, d], data: out };
    };
    const bshd = (t: { shape: readonly number[]; data: Float64Array }) => {
      const [, heads, s] = t.shape as [number, number, number];
      const out = new Float32Array(heads * s * d);
      for (let h = 0; h < heads; h++) for (let i = 0; i < s; i++) for (let c = 0; c < d; c++) out[(i * heads + h) * d + c] = t.data[(h * s + i) * d + c]!;
      return { shape: [1, s, heads, d], data: out };
    };
    const [pastK, pastV, newK, newV] = [rows(present.k, KVH, 0, P), rows(present.v, KVH, 0, P), rows(present.k, KVH, P, n), rows(present.v, KVH, P, n)];
    for (const epsilon of [0, 0.05]) {
      const guard = { epsilon, modelMask: causal('past'), block: 8 };
      const got = await runGuardedAttention(rt, params, { q: bshd(q), k: bshd(newK), v: bshd(newV), pastKey: f32(pastK), pastValue: f32(pastV) }, guard);
      const ref = referenceAttention({ ...params, layout: 'bhsd', spec: causal('past') }, { q, k: newK, v: newV, pastKey: pastK, pastValue: pastV });
      // Y is bshd: compare against the bhsd reference reordered
      const want = bshd({ shape: [1, H, n, d], data: ref.y.data });
      const cmp = compareArrays(got.y, Float64Array.from(want.data), { atol: epsilon + TOL.atol, rtol: TOL.rtol });
      expect(cmp.ok, `past keys, epsilon ${epsilon}: max abs error ${cmp.maxAbsError}`).toBe(true);
      if (epsilon === 0) expect(got.fallbackRows).toBeGreaterThan(0); // repeated spans far back: rows drop mass
    }
    // the same present keys as an external cache: K, V of P + n rows, kvLength = P + n, no past input; the spec's past
    // offset is then kvLength - nq = P, so the window and the causal cut line up as with the cache
    const ext = await runGuardedAttention(
      rt,
      params,
      { q: bshd(q), k: bshd(rows(present.k, KVH, 0, P + n)), v: bshd(rows(present.v, KVH, 0, P + n)), kvLength: [P + n] },
      { epsilon: 0.05, modelMask: causal('past'), block: 8 },
    );
    const cached = await runGuardedAttention(rt, params, { q: bshd(q), k: bshd(newK), v: bshd(newV), pastKey: f32(pastK), pastValue: f32(pastV) }, { epsilon: 0.05, modelMask: causal('past'), block: 8 });
    expect([...ext.y]).toEqual([...cached.y]);
    expect([...ext.certificates]).toEqual([...cached.certificates]);
  });

  it('f16 storage (f32 arithmetic): within epsilon of the reference on the f16-rounded inputs, plus the f16 rounding of Y', async () => {
    const [n, d, H] = [37, 16, 2];
    const scale = 1 / Math.sqrt(d);
    const params: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: d, vHeadDim: d, scale, softcap: 0, layout: 'bhsd', spec: union(slidingWindow(5, 0), sinks(2)) };
    const half = (t: Tensor64): Tensor64 => ({ shape: t.shape, data: t.data.map((x) => halfToFloat(floatToHalf(x))) });
    for (const family of ['natural', 'repeated', 'logits80'] as const) {
      const raw = inputs(family, n, d, H, 53, scale);
      const x = { q: half(raw.q), k: half(raw.k), v: half(raw.v) };
      for (const epsilon of [0, 0.01]) {
        const got = await runGuardedAttention(rt, params, { q: f32(x.q), k: f32(x.k), v: f32(x.v) }, { epsilon, modelMask: causal(), block: 8, dtype: 'f16' });
        const ref = referenceAttention({ ...params, spec: causal(), scoresMode: 'softmax' }, x);
        const HALF_ULP = 2 ** -11;
        const cmp = compareArrays(got.y, ref.y.data, { atol: epsilon * (1 + HALF_ULP) + TOL.atol, rtol: TOL.rtol + HALF_ULP });
        expect(cmp.ok, `${family}, epsilon ${epsilon}: max abs error ${cmp.maxAbsError}`).toBe(true);
        // every stored value is Y rounded to f16
        expect(got.y.every((y) => halfToFloat(floatToHalf(y)) === y)).toBe(true);
        // the certificate bounds the dropped mass of the f16 inputs it read
        const sparse = intersect(causal(), params.spec as MaskSpec);
        for (let h = 0; h < H; h++) {
          for (let i = 0; i < n; i++) {
            let m = 0;
            for (let j = 0; j < n; j++) if (!keeps(sparse, i, j, { nq: n, nk: n })) m += ref.scores!.data[(h * n + i) * n + j]!;
            expect(got.certificates[h * n + i]!).toBeGreaterThanOrEqual(m * (1 - 1e-6) - 1e-7);
          }
        }
        if (family === 'repeated' && epsilon === 0) expect(got.fallbackRows).toBeGreaterThan(0);
      }
    }
  });

  it('refuses inputs that do not match their layout', async () => {
    const p: AttentionParams = { numHeads: 2, kvNumHeads: 2, headDim: 4, vHeadDim: 4, scale: 0.5, softcap: 0, layout: 'bshd', spec: slidingWindow(2, 0) };
    const t = (shape: number[]) => ({ shape, data: new Float32Array(shape.reduce((a, x) => a * x, 1)) });
    await expect(runGuardedAttention(rt, p, { q: t([1, 2, 5, 4]), k: t([1, 5, 2, 4]), v: t([1, 5, 2, 4]) }, { epsilon: 0.1 })).rejects.toThrow(/Q \[1, 2, 5, 4\] \(40 values\) is not \[1, 2, 2, 4\] for layout bshd/);
    await expect(runGuardedAttention(rt, { ...p, layout: 'packed-qkv' }, { q: t([1, 5, 24]), k: t([1, 5, 2, 4]) }, { epsilon: 0.1 })).rejects.toThrow(/packed-qkv takes Q alone/);
  });

  // a NaN channel in key 48 (or in its value), head 1, on sink-dominated local inputs (without it no row falls
  // back: checked): the model's attention is NaN on every row that sees key 48 (48 on, causal; in V only that
  // channel). Rows 81 on drop it (window 32 + sinks 2): their certificate must say no bound, so they are recomputed
  // and NaN exactly where the reference is. lavapipe's min / max pass over a NaN, so the summaries and R test their
  // values' bits. (Key 48 opens a segment of 16, and the kernel skips keys a row masks without reading them.)
  it.each(['k', 'v'] as const)('a NaN in %s: NaN exactly where the reference has it', async (where) => {
    const n = 200;
    const d = 16;
    const params: AttentionParams = { numHeads: 2, kvNumHeads: 2, headDim: d, vHeadDim: d, scale: 0.25, softcap: 0, layout: 'bhsd', spec: union(slidingWindow(32, 0), sinks(2)) };
    const x = adversarialHeads('sinkLocal', { n, d, heads: 2, seed: 9, scale: 0.25 });
    const clean = await runGuardedAttention(rt, params, { q: f32(x.q), k: f32(x.k), v: f32(x.v) }, { epsilon: 1e-3, modelMask: causal(), block: 16 });
    expect(clean.fallbackRows).toBe(0); // without the NaN the certificate passes every row
    x[where].data[(n + 48) * d + 3] = Number.NaN;
    const got = await runGuardedAttention(rt, params, { q: f32(x.q), k: f32(x.k), v: f32(x.v) }, { epsilon: 1e-3, modelMask: causal(), block: 16 });
    const ref = referenceAttention({ ...params, spec: causal() }, x).y.data;
    let nan = 0;
    ref.forEach((r, t) => {
      expect(Number.isNaN(got.y[t]!), `coordinate ${t}: ${got.y[t]} against ${r}`).toBe(Number.isNaN(r));
      if (Number.isNaN(r)) nan++;
      else expect(Math.abs(got.y[t]! - r)).toBeLessThanOrEqual(1e-3 + TOL.atol + TOL.rtol * Math.abs(r));
    });
    expect(nan).toBe((n - 48) * (where === 'k' ? d : 1));
  });

  // keys and values at or past kvLength are padding (a KV cache's unwritten slots may hold anything): a NaN there
  // reaches no row, and sends none to the fallback (the summaries and R leave padding out). Key 141 shares its
  // segment of 16, [128, 144), with valid keys 128..139, which rows 172 on drop
  it.each(['k', 'v'] as const)('a NaN in padding %s: no row reads it, none falls back for it', async (where) => {
    const n = 200;
    const d = 16;
    const kvLength = [140];
    const params: AttentionParams = { numHeads: 2, kvNumHeads: 2, headDim: d, vHeadDim: d, scale: 0.25, softcap: 0, layout: 'bhsd', spec: union(slidingWindow(32, 0), sinks(2)) };
    const x = adversarialHeads('sinkLocal', { n, d, heads: 2, seed: 9, scale: 0.25 });
    const run = () => runGuardedAttention(rt, params, { q: f32(x.q), k: f32(x.k), v: f32(x.v), kvLength }, { epsilon: 1e-3, modelMask: causal(), block: 16 });
    const clean = await run();
    for (let h = 0; h < 2; h++) x[where].data[(h * n + 141) * d + 3] = Number.NaN;
    const got = await run();
    expect(got.fallbackRows).toBe(clean.fallbackRows);
    const ref = referenceAttention({ ...params, spec: causal() }, { ...x, kvLength }).y.data;
    ref.forEach((r, t) => {
      expect(Number.isNaN(r)).toBe(false);
      expect(Math.abs(got.y[t]! - r), `coordinate ${t}: ${got.y[t]} against ${r}`).toBeLessThanOrEqual(1e-3 + TOL.atol + TOL.rtol * Math.abs(r));
    });
  });

  it('metadata records the tier, the budget and the summaries', () => {
    expect(guardInfo({ epsilon: 0.01, modelMask: causal() })).toMatchObject({ tier: 'guarded', epsilon: 0.01, block: 64, modelMask: causal() });
  });
});
