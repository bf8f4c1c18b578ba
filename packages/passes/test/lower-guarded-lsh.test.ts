// The guarded LSH lowering (BOUNDS.md (b')) over a dense baseline, in onnxruntime against the float64 reference of
// dense attention, n = 1024: lsh(2, 8) with chunk 0 (bucket-masked scores, per-bucket summaries) at opset 21
// (ScatterElements summaries) and 13 (one-hot summaries), and lsh(2, 8) with chunk 128 (sorted, chunked, per-chunk
// summaries) at opset 21. On clustered inputs (natural for LSH; also with shared queries and keys, as Reformer's
// shared-QK attention), diffuse and adversarial (an outlier key, logits up to 80) inputs every output is within the
// budget plus float32 rounding (|y - ref| <= budget + 1e-4, f32 scores and sums). Beside it the unguarded LSH form:
// on diffuse and outlier inputs it breaks the budget (so the guard did the work). Budget 0 recomputes every row that
// drops a key: the output is dense attention. The fallback flags are checked against what they claim (a flagged row
// is the dense row, an unflagged one the unguarded sparse row, bit for bit) and against the float64 certificate of
// @attnopt/bounds (lshHeadGroups, lshDroppedMass) on the f32-rounded inputs: over the budget in float64 => flagged;
// flagged => over the budget up to the float32 widening (1e-4 on log B, 1e-3 on the bound: 5% here). The buckets are
// the float64 semantics' (lshHashes); a bucket tie that float32 breaks the other way would show as a mismatch here
// (none on these inputs). The same check against two mutated float64 certificates (the maximum over the rounds, the
// row's own groups counted as dropped) must fail: the flags tell them apart.

import { guardFallsBack, keptLogSumExp, lshDroppedMass, lshHeadGroups, lshRoundLogB, droppedMassCertificateFromLog, valueRange } from '@attnopt/bounds';
import { type AttentionParams, type AttentionSpec, attentionNode, causal, dense, Graph, intersect, intervals, type Lsh, lshBuckets, lshRows, SplitMix64, tensorType, Value } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { cannotLower } from '../src/lower/index.js';
import { clusteredInputs, type QKV } from './helpers/guarded-inputs.js';
import { buildBhsdSite, f32, maxAbsDiff, referenceBhsd, runBhsdSite, type Shape } from './helpers/bhsd-site.js';

const N = 1024;
const D = 16;
const BUDGET = 1e-3;
const ROUNDING = 1e-4;
const LEAF = lshBuckets(2, 8, 5);
const CHUNKED = lshBuckets(2, 8, 5, 128);

const ONE: Shape = { B: 1, H: 2, Hkv: 2 };

function params(shape: Shape, spec: AttentionSpec, budget?: number, baseline: AttentionSpec = dense): AttentionParams {
  return {
    numHeads: shape.H,
    kvNumHeads: shape.Hkv,
    headDim: D,
    vHeadDim: D,
    scale: 1 / Math.sqrt(D),
    softcap: 0,
    layout: 'bhsd',
    spec,
    ...(budget !== undefined ? { guard: { budget, blockSize: 64, baseline } } : {}),
  };
}

const build = buildBhsdSite;
const run = (model: Uint8Array, shape: Shape, x: QKV, kvLength?: number[]) => runBhsdSite(model, shape, x, N, D, kvLength);
const reference = (shape: Shape, x: QKV, kvLength?: number[], baseline: AttentionSpec = dense) => referenceBhsd(params(shape, baseline), shape, x, N, kvLength);

/** Clustered q and k (helpers/guarded-inputs.ts: what LSH is for), at this file's N and D. */
const clustered = (seed: number, shape: Shape = ONE): QKV => clusteredInputs(seed, shape.B, shape.H, shape.Hkv, N, D);

/** Independent uniform q, k in [-1, 1]: diffuse attention, every bucket carries mass. */
function diffuse(seed: number, shape: Shape = ONE): QKV {
  const rng = new SplitMix64(seed);
  const u = (heads: number) => Float64Array.from({ length: shape.B * heads * N * D }, () => rng.nextFloat() * 2 - 1);
  return { q: u(shape.H), k: u(shape.Hkv), v: u(shape.Hkv) };
}

/** Clustered, plus one outlier key (12 on every channel: no cluster's direction) that every query scores highest. */
function outlier(seed: number): QKV {
  const x = clustered(seed);
  for (let t = 0; t < x.q.length; t++) x.q[t] = Math.abs(x.q[t]!);
  for (let h = 0; h < ONE.H; h++) for (let c = 0; c < D; c++) x.k[(h * N + 600) * D + c] = 12;
  return x;
}

/** Clustered, q x 5: a query's logits on its own cluster's keys about 5 x 8 x 8 / 4 = 80. */
function logits80(seed: number): QKV {
  const x = clustered(seed);
  for (let t = 0; t < x.q.length; t++) x.q[t]! *= 5;
  return x;
}

/** Clustered with shared queries and keys (as Reformer's shared-QK attention): q_i = k_i, so a query sorts beside its key. */
function sharedQK(seed: number): QKV {
  const x = clustered(seed);
  return { q: Float64Array.from(x.k), k: x.k, v: x.v };
}

type Family = (seed: number) => QKV;
const FAMILIES: Record<string, Family> = { clustered: (s) => clustered(s), sharedQK, logits80, diffuse: (s) => diffuse(s), outlier };

/** The float64 certificate's fallback decisions per (head, row), and the same by two mutated certificates. */
function certificateDecisions(
  leaf: Lsh,
  x: QKV,
  shape: Shape,
  budget: number,
  causalBaseline = false,
): Record<'sound' | 'maxOverRounds' | 'ownBucketDropped', boolean[]> & { bound: number[] } {
  const [q, k, v] = [f32(x.q), f32(x.k), f32(x.v)];
  const scale = 1 / Math.sqrt(D);
  const out = { sound: [] as boolean[], maxOverRounds: [] as boolean[], ownBucketDropped: [] as boolean[], bound: [] as number[] };
  for (let h = 0; h < shape.H; h++) {
    const qh = q.subarray(h * N * D, (h + 1) * N * D);
    const kh = k.subarray(h * N * D, (h + 1) * N * D);
    const range = valueRange(v.subarray(h * N * D, (h + 1) * N * D), D);
    const groups = lshHeadGroups(leaf, qh, N, kh, N, D);
    const kept = lshRows(leaf, { q: qh, k: kh, nq: N, nk: N, d: D });
    for (let i = 0; i < N; i++) {
      const qi = qh.subarray(i * D, (i + 1) * D);
      // over a causal baseline the kept keys are the leaf's up to the query; the baseline keys are [0, i]
      const S = causalBaseline ? intervals.intersectSets(kept[i]!, intervals.range(0, i + 1, N)) : kept[i]!;
      const scores: number[] = [];
      for (let t = 0; t < S.length; t += 2) for (let j = S[t]!; j < S[t + 1]!; j++) scores.push(scale * qi.reduce((a, qc, c) => a + qc * kh[j * D + c]!, 0));
      const logZ = keptLogSumExp(scores);
      const drops = intervals.size(S) < (causalBaseline ? i + 1 : N);
      const own = groups.keptGroups(i);
      const mHat = drops ? lshDroppedMass(qi, groups.rounds, own, scale, 0, logZ) : 0;
      const logBs = groups.rounds.map((s, r) => lshRoundLogB(qi, s, scale, 0, own[r]!));
      const maxHat = drops ? droppedMassCertificateFromLog(logZ, Math.max(...logBs)) : 0;
      const ownHat = drops ? droppedMassCertificateFromLog(logZ, Math.min(...groups.rounds.map((s) => lshRoundLogB(qi, s, scale, 0, [])))) : 0;
      out.bound.push(mHat * range);
      out.sound.push(guardFallsBack(mHat, range, budget));
      out.maxOverRounds.push(guardFallsBack(maxHat, range, budget));
      out.ownBucketDropped.push(guardFallsBack(ownHat, range, budget));
    }
  }
  return out;
}

for (const [name, leaf, opset] of [['lsh(2, 8)', LEAF, 21], ['lsh(2, 8)', LEAF, 13], ['lsh(2, 8, chunk 128)', CHUNKED, 21]] as const)
  describe(`guarded ${name} in onnxruntime at opset ${opset}, within the budget of the float64 dense reference (n = ${N})`, () => {
    const guarded = build(ONE, params(ONE, leaf, BUDGET), { flags: true, opset });
    const unguarded = build(ONE, params(ONE, leaf), { opset });
    const forced = build(ONE, params(ONE, leaf, 0), { opset });
    it.each(Object.keys(FAMILIES))('%s', async (family) => {
      const x = FAMILIES[family]!(17);
      const ref = reference(ONE, x);
      const g = await run(guarded, ONE, x);
      const u = await run(unguarded, ONE, x);
      expect(maxAbsDiff(g.y, ref)).toBeLessThanOrEqual(BUDGET + ROUNDING);
      if (family === 'diffuse' || family === 'outlier') expect(maxAbsDiff(u.y, ref)).toBeGreaterThan(BUDGET + ROUNDING);
      const flagged = g.flags!;
      expect(flagged.length).toBe(ONE.B * ONE.H * N);
      for (let i = 0; i < N; i++) {
        const anyHead = Array.from({ length: ONE.H }, (_, h) => flagged[h * N + i]!).some((f) => f === 1);
        for (let h = 0; h < ONE.H; h++) {
          const at = (t: Float64Array) => t.subarray((h * N + i) * D, (h * N + i + 1) * D);
          if (anyHead) expect(maxAbsDiff(at(g.y), at(ref))).toBeLessThanOrEqual(ROUNDING);
          else expect(maxAbsDiff(at(g.y), at(u.y))).toBe(0);
        }
      }
      const rate = flagged.reduce((a, f) => a + f, 0) / flagged.length;
      // chunk 0 keeps a query's whole bucket: about 12% of the rows fall back here (a cluster split by a hyperplane);
      // chunk 128 cuts a bucket at chunk boundaries: about 40%
      if (family === 'clustered' || family === 'sharedQK') expect(rate).toBeLessThan(leaf.chunk === 0 ? 0.25 : 0.5);
      if (family === 'diffuse') expect(rate).toBe(1);
      expect(maxAbsDiff((await run(forced, ONE, x)).y, ref)).toBeLessThanOrEqual(ROUNDING);
    }, 120_000);
  });

for (const [name, leaf] of [['lsh(2, 8)', LEAF], ['lsh(2, 8, chunk 128)', CHUNKED]] as const)
describe(`${name}: the fallback flags against the float64 certificate of @attnopt/bounds, and two mutations of it`, () => {
  const guarded = build(ONE, params(ONE, leaf, BUDGET), { flags: true });
  const seen = { maxOverRounds: false, ownBucketDropped: false };
  it.each(Object.keys(FAMILIES))('%s', async (family) => {
    const x = FAMILIES[family]!(23);
    const flags = (await run(guarded, ONE, x)).flags!;
    const decisions = certificateDecisions(leaf, x, ONE, BUDGET);
    const [q, k, v] = [f32(x.q), f32(x.k), f32(x.v)];
    const scale = 1 / Math.sqrt(D);
    for (let h = 0; h < ONE.H; h++) {
      const qh = q.subarray(h * N * D, (h + 1) * N * D);
      const kh = k.subarray(h * N * D, (h + 1) * N * D);
      const range = valueRange(v.subarray(h * N * D, (h + 1) * N * D), D);
      const groups = lshHeadGroups(leaf, qh, N, kh, N, D);
      const kept = lshRows(leaf, { q: qh, k: kh, nq: N, nk: N, d: D });
      for (let i = 0; i < N; i++) {
        const flag = flags[h * N + i]!;
        if (decisions.sound[h * N + i]) expect(flag).toBe(1);
        if (flag === 1) {
          const qi = qh.subarray(i * D, (i + 1) * D);
          const S = kept[i]!;
          const scores: number[] = [];
          for (let t = 0; t < S.length; t += 2) for (let j = S[t]!; j < S[t + 1]!; j++) scores.push(scale * qi.reduce((a, qc, c) => a + qc * kh[j * D + c]!, 0));
          const mHat = lshDroppedMass(qi, groups.rounds, groups.keptGroups(i), scale, 0, keptLogSumExp(scores));
          expect(mHat * range).toBeGreaterThan(BUDGET / 1.05);
        }
      }
    }
    // a lowering that took the maximum over the rounds, or counted the row's own bucket as dropped, would flag these rows
    for (const mutant of ['maxOverRounds', 'ownBucketDropped'] as const) if (decisions[mutant].some((d, r) => d && flags[r] === 0)) seen[mutant] = true;
  }, 120_000);
  it('the flags tell the sound certificate from both mutations (on some family, some row)', () => {
    expect(seen).toEqual({ maxOverRounds: true, ownBucketDropped: true });
  });
});

for (const [name, leaf] of [['lsh(2, 8)', LEAF], ['lsh(2, 8, chunk 128)', CHUNKED]] as const)
  describe(`causal ∩ ${name} over its causal baseline: within the budget of the float64 causal reference`, () => {
    const spec = intersect(causal(), leaf);
    const guarded = build(ONE, params(ONE, spec, BUDGET, causal()), { flags: true });
    const unguarded = build(ONE, params(ONE, spec));
    const forced = build(ONE, params(ONE, spec, 0, causal()));
    it.each(['clustered', 'sharedQK', 'diffuse', 'outlier'])('%s', async (family) => {
      const x = FAMILIES[family]!(29);
      const ref = reference(ONE, x, undefined, causal());
      const g = await run(guarded, ONE, x);
      expect(maxAbsDiff(g.y, ref)).toBeLessThanOrEqual(BUDGET + ROUNDING);
      if (family === 'diffuse') expect(maxAbsDiff((await run(unguarded, ONE, x)).y, ref)).toBeGreaterThan(BUDGET + ROUNDING);
      // the flags against the float64 certificate over the causal baseline (as in the dense case above)
      const decisions = certificateDecisions(leaf, x, ONE, BUDGET, true);
      g.flags!.forEach((flag, r) => {
        if (decisions.sound[r]) expect(flag).toBe(1);
        if (flag === 1) expect(decisions.bound[r]).toBeGreaterThan(BUDGET / 1.05);
      });
      const rate = g.flags!.reduce((a, f) => a + f, 0) / g.flags!.length;
      // every key of a dropped group counts, future keys too: looser than over a dense baseline, still some rows sparse
      if (family === 'sharedQK') expect(rate).toBeLessThan(0.6);
      expect(maxAbsDiff((await run(forced, ONE, x)).y, ref)).toBeLessThanOrEqual(ROUNDING);
    }, 120_000);
  });

for (const [name, spec, baseline] of [
  ['lsh(2, 8)', LEAF, dense],
  ['causal ∩ lsh(2, 8, chunk 128)', intersect(causal(), CHUNKED), causal()],
] as const)
describe(`${name}: batch 2, 4 query heads on 2 key/value heads, a lengths input`, () => {
  const shape: Shape = { B: 2, H: 4, Hkv: 2 };
  const kvLength = [N, N - 70];
  const guarded = build(shape, params(shape, spec, BUDGET, baseline), { kvLength: true });
  const unguarded = build(shape, params(shape, spec), { kvLength: true });
  const forced = build(shape, params(shape, spec, 0, baseline), { kvLength: true });
  it.each([
    ['clustered', (): QKV => {
      const x = clustered(31, { ...shape, H: shape.Hkv });
      const q = new Float64Array(shape.B * shape.H * N * D);
      for (let b = 0; b < shape.B; b++) for (let h = 0; h < shape.H; h++) q.set(x.q.subarray((b * shape.Hkv + (h >> 1)) * N * D, (b * shape.Hkv + (h >> 1) + 1) * N * D), (b * shape.H + h) * N * D);
      return { q, k: x.k, v: x.v };
    }, false],
    ['diffuse', () => diffuse(32, shape), true],
  ] as const)('%s', async (_name, inputs, adversarial) => {
    const x = inputs();
    const ref = reference(shape, x, kvLength, baseline);
    expect(maxAbsDiff((await run(guarded, shape, x, kvLength)).y, ref)).toBeLessThanOrEqual(BUDGET + ROUNDING);
    if (adversarial) expect(maxAbsDiff((await run(unguarded, shape, x, kvLength)).y, ref)).toBeGreaterThan(BUDGET + ROUNDING);
    expect(maxAbsDiff((await run(forced, shape, x, kvLength)).y, ref)).toBeLessThanOrEqual(ROUNDING);
  }, 120_000);
});

describe('refusals', () => {
  const node = (p: AttentionParams, bias = false) => {
    const g = new Graph('refused');
    const [q, k, v] = ['q', 'k', 'v'].map((n) => g.addInput(new Value(n, tensorType('f32', [1, 2, 'seq', D]))));
    const b = bias ? g.addInput(new Value('bias', tensorType('f32', [1, 1, 1, 'seq']))) : undefined;
    return attentionNode(p, { q: q!, k: k!, v: v!, ...(b ? { bias: b } : {}) }, { y: new Value('y', tensorType('f32')) }, 'attn');
  };
  it('a bias input', () => {
    expect(cannotLower(node(params(ONE, LEAF, BUDGET), true), { opset: 21 })).toMatch(/guarded site: .*lsh with a bias input/);
  });
});
