// The guarded banded lowering (BOUNDS.md (b')) in onnxruntime on the baselines the other guarded tests do not
// build: a dense baseline with a two-sided window (keys after the band are dropped too) and a top-left causal one.
// Against the float64 reference of the baseline, n = 1024, opset 21: within the budget plus float32 rounding
// (|y - ref| <= budget + 1e-4: inputs and values of size <= 4) on local and adversarial inputs (an outlier key
// before the band, one after it); budget 0 (every row that drops a key falls back) gives the baseline's dense
// attention; on adversarial inputs the unguarded form breaks the budget, on local ones the guarded output is the
// unguarded one (no row fell back). With global tokens too (below).

import { type AttentionParams, type AttentionSpec, attentionNode, causal, dense, Graph, globalTokens, intersect, keySupport, type MaskSpec, rowKeys, sinks, slidingWindow, SplitMix64, tensorType, union, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { guardedDroppedMass, guardFallsBack, keyBlockSummaries, valueRange } from '@attnopt/bounds';
import { referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { cannotLower, GUARD_FALLBACK_VALUE, lowerAttentionPass } from '../src/lower/index.js';
import { guardedSiteParams } from './helpers/guarded-params.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

const H = 2;
const D = 16;
const N = 1024;
const ROUNDING = 1e-4;
const BUDGET = 1e-3;

const params = (spec: AttentionSpec, baseline: AttentionSpec, budget?: number): AttentionParams => guardedSiteParams(H, D, spec, budget, baseline);

function build(p: AttentionParams, flags = false): Uint8Array {
  const g = new Graph('guarded');
  const [q, k, v] = ['q', 'k', 'v'].map((name) => g.addInput(new Value(name, tensorType('f32', [1, H, 'seq', D]))));
  const y = new Value('y', tensorType('f32'));
  const node = attentionNode(p, { q: q!, k: k!, v: v! }, { y }, 'attn');
  g.addNode(node);
  g.outputs.push(y);
  expect(cannotLower(node, { opset: 21, strategy: 'banded' })).toBeUndefined();
  runPipeline(g, [lowerAttentionPass({ opset: 21, strategy: 'banded', blockSize: 64 })]);
  if (flags) g.outputs.push(g.nodes.flatMap((n) => n.outputs).find((o) => o.name.endsWith(`/${GUARD_FALLBACK_VALUE}`))!);
  return exportOnnx(newOnnxModel(g, { opset: 21 }));
}

interface Inputs {
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
}

/** Rotary-like features: q_i . k_j peaked at j = i (local attention). */
function local(seed: number): Inputs {
  const rng = new SplitMix64(seed);
  const w = Array.from({ length: D / 2 }, (_, f) => 0.0015 * 1.6 ** f);
  const feat = (t: number, c: number) => 3 * (c % 2 === 0 ? Math.cos(w[c >> 1]! * t) : Math.sin(w[c >> 1]! * t));
  const q = new Float64Array(H * N * D);
  const k = new Float64Array(H * N * D);
  for (let h = 0; h < H; h++) for (let i = 0; i < N; i++) for (let c = 0; c < D; c++) {
    q[(h * N + i) * D + c] = feat(i, c) * 2;
    k[(h * N + i) * D + c] = feat(i, c) * 2 + 0.05 * (rng.nextFloat() - 0.5);
  }
  const v = Float64Array.from({ length: H * N * D }, () => rng.nextFloat() * 2 - 1);
  return { q, k, v };
}

/** Local inputs with one key at `at` aligned with every query (queries made non-negative). */
function outlier(seed: number, at: number): Inputs {
  const x = local(seed);
  for (let h = 0; h < H; h++) for (let c = 0; c < D; c++) x.k[(h * N + at) * D + c] = 12;
  for (let h = 0; h < H; h++) for (let i = 0; i < N; i++) for (let c = 0; c < D; c++) x.q[(h * N + i) * D + c] = Math.abs(x.q[(h * N + i) * D + c]!);
  return x;
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let t = 0; t < a.length; t++) m = Math.max(m, Math.abs(a[t]! - b[t]!));
  return m;
};

async function run(model: Uint8Array, x: Inputs): Promise<Float64Array> {
  const t = (d: Float64Array) => ortTensor('f32', [1, H, N, D], d);
  return ortValues((await runModel(model, { q: t(x.q), k: t(x.k), v: t(x.v) })).y!);
}

const CASES: [string, AttentionSpec, AttentionSpec][] = [
  ['dense baseline, window 128 on both sides + sinks 4', dense, union(slidingWindow(128, 128), sinks(4))],
  ['causal top-left baseline, window 256 + sinks 4', causal(), intersect(causal(), union(slidingWindow(255, 0), sinks(4)))],
];

const FAMILIES: [string, (seed: number) => Inputs, 'local' | 'adversarial'][] = [
  ['local (rotary-like)', local, 'local'],
  ['an outlier key before the band of most rows', (s) => outlier(s, 100), 'adversarial'],
  ['an outlier key after the band of most rows', (s) => outlier(s, N - 100), 'adversarial'],
];

/**
 * The float64 reference of the baseline and the three models' outputs on `x`: the guarded one within the budget of
 * it, the one with budget 0 (every row that drops a key recomputed) within float32 rounding.
 */
async function withinBudget(m: { guarded: Uint8Array; unguarded: Uint8Array; forced: Uint8Array }, baseline: AttentionSpec, x: Inputs) {
  const f = (t: Float64Array) => Float64Array.from(Float32Array.from(t));
  const ref = referenceAttention(params(baseline, baseline), {
    q: { shape: [1, H, N, D], data: f(x.q) },
    k: { shape: [1, H, N, D], data: f(x.k) },
    v: { shape: [1, H, N, D], data: f(x.v) },
  }).y.data;
  const yg = await run(m.guarded, x);
  const yu = await run(m.unguarded, x);
  expect(maxAbsDiff(yg, ref)).toBeLessThanOrEqual(BUDGET + ROUNDING);
  expect(maxAbsDiff(await run(m.forced, x), ref)).toBeLessThanOrEqual(ROUNDING);
  return { ref, yg, yu };
}

describe.each(CASES)('guarded lowering in onnxruntime, %s', (_name, baseline, spec) => {
  const guarded = build(params(spec, baseline, BUDGET));
  const unguarded = build(params(spec, baseline));
  const forced = build(params(spec, baseline, 0));
  it.each(FAMILIES)('%s: within the budget; budget 0 gives dense attention', async (_family, family, kind) => {
    const x = family(7);
    const { ref, yg, yu } = await withinBudget({ guarded, unguarded, forced }, baseline, x);
    // a key after the band is no baseline key under a causal mask: the unguarded form loses nothing there
    const causalAfter = baseline.kind === 'causal' && _family.includes('after');
    if (kind === 'adversarial' && !causalAfter) expect(maxAbsDiff(yu, ref)).toBeGreaterThan(BUDGET + ROUNDING);
    if (kind === 'local') expect(maxAbsDiff(yg, yu)).toBe(0);
  }, 120_000);
});

// Global tokens (Longformer, BigBird): keys every query keeps and queries that keep every key. A token inside a
// dropped interval is counted out of its block (else its key, which every row keeps, would look dropped: an
// outlier there would make every row fall back), and a global query, whose row is dense, drops nothing. The
// fallback flags (GUARD_FALLBACK_VALUE) say which rows were recomputed.
const GLOBAL_CASES: [string, AttentionSpec, AttentionSpec][] = [
  ['dense baseline, window 128 on both sides + global tokens 0 and 500', dense, union(slidingWindow(128, 128), globalTokens([0, 500]))],
  ['causal top-left baseline, window 256 + global tokens 0 and 500', causal(), intersect(causal(), union(slidingWindow(255, 0), globalTokens([0, 500])))],
];

const GLOBAL_FAMILIES: [string, (seed: number) => Inputs, 'local' | 'adversarial' | 'kept'][] = [
  ['local (rotary-like)', local, 'local'],
  ['an outlier key before the band of most rows', (s) => outlier(s, 100), 'adversarial'],
  ['an outlier key at a global token (every row keeps it)', (s) => outlier(s, 500), 'kept'],
];

/** The guarded model's fallback flags [1, H, N] (1: the row was recomputed densely). */
async function fallbackFlags(model: Uint8Array, x: Inputs): Promise<Float64Array> {
  const t = (d: Float64Array) => ortTensor('f32', [1, H, N, D], d);
  const out = await runModel(model, { q: t(x.q), k: t(x.k), v: t(x.v) });
  return ortValues(Object.entries(out).find(([name]) => name.endsWith(`/${GUARD_FALLBACK_VALUE}`))![1]);
}

const keysOf = (intervals: readonly number[]) => intervals.flatMap((_, t) => (t % 2 === 0 ? Array.from({ length: intervals[t + 1]! - intervals[t]! }, (_, k) => intervals[t]! + k) : []));

/**
 * The flags against the float64 certificate of @attnopt/bounds on the exact dropped keys (baseline minus spec, per
 * row): over the budget in float64 means flagged; flagged means over the budget up to the float32 widening (1e-4
 * (|scale| ||q|| K* + 1) on log B, 1e-3 on the bound: under 5% here). A token counted as dropped is flagged
 * where the float64 certificate is far below the budget.
 */
function checkFlags(flags: Float64Array, x: Inputs, spec: AttentionSpec, baseline: AttentionSpec): { flagged: number; loose: number } {
  const f = (t: Float64Array) => Float64Array.from(Float32Array.from(t));
  const [q, k, v] = [f(x.q), f(x.k), f(x.v)];
  const scale = 1 / Math.sqrt(D);
  const dims = { nq: N, nk: N, past: 0 };
  let flagged = 0;
  let loose = 0; // rows over the budget were the extra keys summarized with their blocks' other keys
  for (let h = 0; h < H; h++) {
    const kh = k.subarray(h * N * D, (h + 1) * N * D);
    // the extra keys (never dropped) are left out of the summaries, as the lowering leaves them out
    const summaries = keyBlockSummaries(kh, N, D, 64, keySupport(spec as MaskSpec)!.extra);
    const withExtras = keyBlockSummaries(kh, N, D, 64);
    const range = valueRange(v.subarray(h * N * D, (h + 1) * N * D), D);
    for (let i = 0; i < N; i++) {
      const qi = q.subarray((h * N + i) * D, (h * N + i + 1) * D);
      const kept = keysOf(rowKeys(spec as MaskSpec, i, dims));
      const keptSet = new Set(kept);
      const counts = new Float64Array(N / 64);
      for (const j of keysOf(rowKeys(baseline as MaskSpec, i, dims))) if (!keptSet.has(j)) counts[j >> 6]! += 1;
      const scores = kept.map((j) => scale * qi.reduce((a, qc, d) => a + qc * kh[j * D + d]!, 0));
      const top = Math.max(...scores);
      const logZKept = top + Math.log(scores.reduce((a, sc) => a + Math.exp(sc - top), 0));
      const mHat = counts.some((c) => c > 0) ? guardedDroppedMass(qi, summaries, scale, 0, logZKept, counts) : 0;
      if (counts.some((c) => c > 0) && guardFallsBack(guardedDroppedMass(qi, withExtras, scale, 0, logZKept, counts), range, BUDGET)) loose++;
      const flag = flags[h * N + i]!;
      if (guardFallsBack(mHat, range, BUDGET)) expect(flag, `head ${h} row ${i}`).toBe(1);
      if (flag === 1) expect(mHat * range, `head ${h} row ${i}`).toBeGreaterThan(BUDGET / 1.05);
      flagged += flag;
    }
  }
  return { flagged, loose };
}

describe.each(GLOBAL_CASES)('guarded lowering in onnxruntime, %s', (_name, baseline, spec) => {
  const guarded = build(params(spec, baseline, BUDGET));
  const flagged = build(params(spec, baseline, BUDGET), true);
  const unguarded = build(params(spec, baseline));
  const forced = build(params(spec, baseline, 0));
  it.each(GLOBAL_FAMILIES)('%s: within the budget; budget 0 gives dense attention', async (_family, family, kind) => {
    const x = family(7);
    const { ref, yg, yu } = await withinBudget({ guarded, unguarded, forced }, baseline, x);
    if (kind === 'adversarial') expect(maxAbsDiff(yu, ref)).toBeGreaterThan(BUDGET + ROUNDING);
    // no row fell back on local inputs; on the others the flags are the float64 certificate's
    if (kind === 'local') expect(maxAbsDiff(yg, yu)).toBe(0);
    const flags = await fallbackFlags(flagged, x);
    const { flagged: over, loose } = checkFlags(flags, x, spec, baseline);
    if (kind === 'local') expect(over).toBe(0);
    if (kind === 'adversarial') expect(over).toBeGreaterThan(0);
    // the outlier is a token every row that sees it keeps: left out of its block's summary, it makes no row fall
    // back (with it in the summary, the rows that drop the rest of its block would); under the causal baseline the
    // rows before it fall back for what their non-negative queries spread past the window
    if (kind === 'kept') expect(over).toBeLessThan(loose);
    if (kind === 'kept' && baseline.kind === 'dense') expect(over).toBe(0);
  }, 120_000);
});

// A window baseline (a sliding window the model's own mask proves: Mistral's, Gemma's local layers) with a narrower
// guarded window and sinks inside it. A row's dropped keys start at the baseline window's first key: a key before it
// is no key of the row, so an outlier there makes no row fall back, and sinks outside the baseline window are
// neither kept nor dropped. The flags are checked against the float64 certificate on the exact dropped keys
// (baseline minus spec): a count that reached past the baseline window would flag rows whose certificate is 0.
const WINDOW_BASELINE = slidingWindow(511, 0);

/** Local inputs with the key at `at` 200 on channel 0, whose query feature 6 cos(0.0015 i) is positive on every row. */
function slowOutlier(seed: number, at: number): Inputs {
  const x = local(seed);
  for (let h = 0; h < H; h++) for (let c = 0; c < D; c++) x.k[(h * N + at) * D + c] = c === 0 ? 200 : 0;
  return x;
}
const WINDOW_CASES: [string, AttentionSpec][] = [
  ['window 128', slidingWindow(127, 0)],
  ['window 256 + sinks 4', intersect(WINDOW_BASELINE, union(slidingWindow(255, 0), sinks(4)))],
];

describe.each(WINDOW_CASES)('guarded lowering in onnxruntime over the baseline window(left=511), %s', (_name, spec) => {
  const guarded = build(params(spec, WINDOW_BASELINE, BUDGET));
  const flagged = build(params(spec, WINDOW_BASELINE, BUDGET), true);
  const unguarded = build(params(spec, WINDOW_BASELINE));
  const forced = build(params(spec, WINDOW_BASELINE, 0));
  const families: [string, (seed: number) => Inputs, number][] = [
    ['local (rotary-like)', local, 0],
    // before the band of rows 228..611 (128) or 356..611 (256) and inside their baseline window
    ['an outlier key at 100', (s) => outlier(s, 100), 100],
    // inside the band or the baseline of no row until row 600, then before the band of rows 728.. (128)
    ['an outlier key at 600', (s) => outlier(s, 600), 600],
    // local queries, one key along the slowest rotary channel (positive on every row): the rows whose baseline
    // window reaches its key block fall back, no later row may
    ['local, an outlier key at 100 along the slowest channel', (s) => slowOutlier(s, 100), -100],
  ];
  it.each(families)('%s: within the budget; budget 0 gives the baseline window', async (_family, family, at) => {
    const x = family(7);
    const { ref, yg, yu } = await withinBudget({ guarded, unguarded, forced }, WINDOW_BASELINE, x);
    const flags = await fallbackFlags(flagged, x);
    const { flagged: over } = checkFlags(flags, x, spec, WINDOW_BASELINE);
    if (at === 0) {
      expect(maxAbsDiff(yg, yu)).toBe(0);
      expect(over).toBe(0);
    } else if (at < 0) {
      expect(over).toBeGreaterThan(0);
      // from the first row whose baseline window starts past the outlier's key block (its summary holds the outlier)
      const clear = (Math.floor(-at / 64) + 1) * 64 + 511;
      for (let h = 0; h < H; h++) for (let i = clear; i < N; i++) expect(flags[h * N + i], `head ${h} row ${i}`).toBe(0);
    } else {
      expect(maxAbsDiff(yu, ref)).toBeGreaterThan(BUDGET + ROUNDING);
      expect(over).toBeGreaterThan(0);
    }
  }, 120_000);
});
