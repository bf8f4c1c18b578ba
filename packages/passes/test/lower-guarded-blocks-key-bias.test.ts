// The block-gathered forms with a key bias (a bias constant along the query axis, key-bias.ts: a key-padding mask,
// a boolean keep-mask, a rank-1 bias; ALiBi is n x n in the IR only as slope · (j - i), so not this) in onnxruntime
// against the float64 reference of the site with the same bias, n = 1024, batch 2:
// - unguarded: the gathered scores add the bias of the gathered keys: |y - ref| <= 1e-4 + 2^-22 max|bias| against
//   the reference of the spec itself (the top-k ranks blocks without the bias, as the IR does). The second term is
//   float32 rounding of logits near the bias: each rounds by 2^-24 |logit|, a difference of two by 2^-23 |bias|,
//   the softmax weights by that relative and the output (|v| <= 1) by twice it; it matters only where a row keeps
//   nothing but -1e4 keys (batch 1's rows past its padding), 2.4e-3 there, under 5e-7 for the other biases;
// - guarded (budget 1e-3): within the budget of the baseline's reference plus float32 rounding (1e-4: values of
//   size <= 1, scores of size <= 20), for top-k blocks over a dense baseline and causal ∩ top-k / causal ∩ a fixed
//   layout over the causal baseline, on local, diffuse and repeated-span inputs; budget 0 gives the reference;
// - a bias spike (+100 on one key far back, which the top-k does not see; local scores reach 72): the unguarded form breaks the budget, the
//   guard adds the dropped block's largest bias to its bound and recomputes those rows; the fallback flags agree
//   with the float64 certificate of @attnopt/bounds (the largest bias over each dropped block's visible keys), and
//   disagree with one that leaves the bias out (so the check can fail).
// A bias that varies along the query axis keeps its site from the block forms, with the reason.

import { guardedDroppedMass, guardFallsBack, keyBlockSummaries, valueRange } from '@attnopt/bounds';
import {
  type AttentionParams,
  type AttentionSpec,
  attentionNode,
  blockSparse,
  causal,
  dense,
  Graph,
  intersect,
  SplitMix64,
  tensorType,
  topkBlockIndices,
  topkBlocks,
  Value,
} from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { cannotLower, GUARD_FALLBACK_VALUE, lowerAttentionPass, loweringPlan } from '../src/lower/index.js';
import { guardedSiteParams } from './helpers/guarded-params.js';
import { localInputs, type QKV, repeatSpans } from './helpers/guarded-inputs.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

const B = 2;
const H = 2;
const D = 16;
const N = 1024;
const BLOCK = 64;
const BUDGET = 1e-3;
const ROUNDING = 1e-4;
const SCALE = 1 / Math.sqrt(D);
const SPIKE_AT = 100;

const TOPK = topkBlocks(BLOCK, 4, 'quest');
const LAYOUT_ROWS = Array.from({ length: N / BLOCK }, (_, r) => [...new Set([0, Math.max(0, r - 1), r, Math.min(N / BLOCK - 1, r + 1)])]);
const LAYOUT = blockSparse(BLOCK, BLOCK, LAYOUT_ROWS);

interface KeyBias {
  readonly name: string;
  readonly dtype: 'f32' | 'bool';
  readonly shape: (number | string)[];
  readonly values: { shape: number[]; data: Float64Array };
}

/** The float32 rounding of the unguarded form against the float64 reference (see the comment at the top). */
const plainRounding = (bias: KeyBias) => ROUNDING + 2 ** -22 * Math.max(0, ...Array.from(bias.values.data).filter(Number.isFinite).map(Math.abs));

const rank1 = (): Float64Array => {
  const rng = new SplitMix64(7);
  return Float64Array.from({ length: N }, () => 4 * rng.nextFloat() - 2);
};

const BIASES: KeyBias[] = [
  { name: 'key padding -1e4 [B, 1, 1, T]', dtype: 'f32', shape: [B, 1, 1, 'seq'], values: { shape: [B, 1, 1, N], data: Float64Array.from({ length: B * N }, (_, t) => (t >= N && t % N >= 700 ? -1e4 : 0)) } },
  // left padding: batch 1's first 300 keys are -inf, so its rows below 300 keep only -inf keys under the causal cut
  { name: 'left key padding -inf [B, 1, 1, T]', dtype: 'f32', shape: [B, 1, 1, 'seq'], values: { shape: [B, 1, 1, N], data: Float64Array.from({ length: B * N }, (_, t) => (t >= N && t % N < 300 ? -Infinity : 0)) } },
  { name: 'boolean keep-mask [B, 1, 1, T]', dtype: 'bool', shape: [B, 1, 1, 'seq'], values: { shape: [B, 1, 1, N], data: Float64Array.from({ length: B * N }, (_, t) => (t >= N && t % N >= 640 ? 0 : 1)) } },
  { name: 'rank 1 [T] in [-2, 2]', dtype: 'f32', shape: ['seq'], values: { shape: [N], data: rank1() } },
];

/** The rank-1 bias with +100 on one key far back (a key the top-k's bias-free scores do not rank). */
const SPIKE: KeyBias = { name: `rank 1 with a spike of +100 at key ${SPIKE_AT}`, dtype: 'f32', shape: ['seq'], values: { shape: [N], data: rank1().map((b, j) => (j === SPIKE_AT ? 100 : b)) } };

function build(p: AttentionParams, bias: KeyBias, flags = false): Uint8Array {
  const g = new Graph('blocks_key_bias');
  const q = g.addInput(new Value('q', tensorType('f32', [B, H, 'seq', D])));
  const k = g.addInput(new Value('k', tensorType('f32', [B, H, 'seq', D])));
  const v = g.addInput(new Value('v', tensorType('f32', [B, H, 'seq', D])));
  const b = g.addInput(new Value('bias', tensorType(bias.dtype, bias.shape)));
  const y = new Value('y', tensorType('f32'));
  const node = attentionNode(p, { q, k, v, bias: b }, { y }, 'attn');
  g.addNode(node);
  g.outputs.push(y);
  expect(cannotLower(node, { opset: 21 })).toBeUndefined();
  expect(loweringPlan(node, { opset: 21 }).strategy).toBe('blocks');
  runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
  if (flags) g.outputs.push(g.nodes.flatMap((n) => n.outputs).find((o) => o.name.endsWith(`/${GUARD_FALLBACK_VALUE}`))!);
  return exportOnnx(newOnnxModel(g, { opset: 21 }));
}

const f32 = (t: Float64Array) => Float64Array.from(Float32Array.from(t));
const SHAPE = [B, H, N, D];

async function run(model: Uint8Array, x: QKV, bias: KeyBias): Promise<{ y: Float64Array; flags?: Float64Array }> {
  const out = await runModel(model, { q: ortTensor('f32', SHAPE, x.q), k: ortTensor('f32', SHAPE, x.k), v: ortTensor('f32', SHAPE, x.v), bias: ortTensor(bias.dtype, bias.values.shape, bias.values.data) });
  const flags = Object.keys(out).find((k) => k !== 'y');
  return { y: ortValues(out.y!), ...(flags ? { flags: ortValues(out[flags]!) } : {}) };
}

function reference(spec: AttentionSpec, x: QKV, bias: KeyBias): Float64Array {
  const b = bias.dtype === 'bool' ? { shape: bias.values.shape, data: Uint8Array.from(bias.values.data) } : { shape: bias.values.shape, data: f32(bias.values.data) };
  return referenceAttention(guardedSiteParams(H, D, spec), { q: { shape: SHAPE, data: f32(x.q) }, k: { shape: SHAPE, data: f32(x.k) }, v: { shape: SHAPE, data: f32(x.v) }, bias: b }).y.data;
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let t = 0; t < a.length; t++) m = Math.max(m, Math.abs(a[t]! - b[t]!));
  return m;
};

const local = (seed: number) => localInputs(seed, B, H, N, D);
function diffuse(seed: number): QKV {
  const rng = new SplitMix64(seed);
  const u = () => Float64Array.from({ length: B * H * N * D }, () => rng.nextFloat() * 2 - 1);
  return { q: u(), k: u(), v: u() };
}
const FAMILIES: Record<string, (seed: number) => QKV> = { local, diffuse, spans: (s) => repeatSpans(local(s), 600, B, H, N, D) };

/** The spec, its guard's baseline. */
const FORMS: [name: string, spec: AttentionSpec, baseline: AttentionSpec][] = [
  ['top-k blocks over dense', TOPK, dense],
  ['causal ∩ top-k blocks', intersect(causal('bottom-right'), TOPK), causal('bottom-right')],
  ['causal ∩ a fixed layout', intersect(causal('bottom-right'), LAYOUT), causal('bottom-right')],
];

for (const [form, spec, baseline] of FORMS)
  for (const bias of BIASES)
    describe(`${form}, key bias ${bias.name}`, () => {
      const plain = build(guardedSiteParams(H, D, spec), bias);
      const guarded = build(guardedSiteParams(H, D, spec, BUDGET, baseline), bias);
      const forced = build(guardedSiteParams(H, D, spec, 0, baseline), bias);
      it.each(Object.keys(FAMILIES))('%s', async (family) => {
        const x = FAMILIES[family]!(11);
        const ref = reference(baseline, x, bias);
        expect(maxAbsDiff((await run(plain, x, bias)).y, reference(spec, x, bias))).toBeLessThanOrEqual(plainRounding(bias));
        expect(maxAbsDiff((await run(guarded, x, bias)).y, ref)).toBeLessThanOrEqual(BUDGET + ROUNDING);
        expect(maxAbsDiff((await run(forced, x, bias)).y, ref)).toBeLessThanOrEqual(ROUNDING);
      }, 120_000);
    });

/**
 * The rows whose flag disagrees with the float64 certificate (causal bottom-right with nq = nk: query i sees keys
 * [0, i]): dropped counts = the visible keys of the unchosen blocks, the largest bias over those keys (omitted
 * when `withBias` is false: the wrong certificate), U from the whole blocks' summaries. Over the budget in float64:
 * flagged; flagged: over the budget up to the float32 widening (5%).
 */
function flagDisagreements(x: QKV, flags: Float64Array, chosenOf: (q: Float64Array, k: Float64Array, r: number) => number[], withBias: boolean): number {
  const [q, k, v] = [f32(x.q), f32(x.k), f32(x.v)];
  const bias = f32(SPIKE.values.data);
  let wrong = 0;
  for (let bh = 0; bh < B * H; bh++) {
    const qh = q.subarray(bh * N * D, (bh + 1) * N * D);
    const kh = k.subarray(bh * N * D, (bh + 1) * N * D);
    const summaries = keyBlockSummaries(kh, N, D, BLOCK);
    const range = valueRange(v.subarray(bh * N * D, (bh + 1) * N * D), D);
    for (let i = 0; i < N; i++) {
      const qi = qh.subarray(i * D, (i + 1) * D);
      const chosen = chosenOf(qh, kh, Math.floor(i / BLOCK));
      const visible = (c: number) => Array.from({ length: Math.max(0, Math.min((c + 1) * BLOCK, i + 1) - c * BLOCK) }, (_, t) => c * BLOCK + t);
      const counts = Float64Array.from({ length: N / BLOCK }, (_, c) => (chosen.includes(c) ? 0 : visible(c).length));
      const maxBias = Float64Array.from({ length: N / BLOCK }, (_, c) => (withBias ? Math.max(...visible(c).map((j) => bias[j]!)) : 0));
      const scores = chosen.flatMap(visible).map((j) => SCALE * qi.reduce((a, qc, d) => a + qc * kh[j * D + d]!, 0) + bias[j]!);
      const top = Math.max(...scores);
      const logZKept = top + Math.log(scores.reduce((a, s) => a + Math.exp(s - top), 0));
      const dropsSome = counts.some((c) => c > 0);
      const mHat = dropsSome ? guardedDroppedMass(qi, summaries, SCALE, 0, logZKept, counts, maxBias) : 0;
      const over = dropsSome && guardFallsBack(mHat, range, BUDGET);
      const flag = flags[bh * N + i]!;
      if (over && flag !== 1) wrong++;
      else if (flag === 1 && !(mHat * range > BUDGET / 1.05)) wrong++;
    }
  }
  return wrong;
}

describe(`a bias spike at key ${SPIKE_AT}, which the top-k's scores do not see`, () => {
  const causalLayout = intersect(causal('bottom-right'), LAYOUT);
  const causalTopk = intersect(causal('bottom-right'), TOPK);
  it.each([
    ['causal ∩ a fixed layout', causalLayout, (_q: Float64Array, _k: Float64Array, r: number) => LAYOUT_ROWS[r]!],
    ['causal ∩ top-k blocks', causalTopk, (q: Float64Array, k: Float64Array, r: number) => topkBlockIndices(TOPK, { q, k, nq: N, nk: N, d: D, scale: SCALE }, r)],
  ] as const)('%s: the unguarded form breaks the budget, the guarded one holds it; the flags are the float64 certificate’s', async (_name, spec, chosenOf) => {
    const x = local(13);
    const ref = reference(causal('bottom-right'), x, SPIKE);
    const plain = await run(build(guardedSiteParams(H, D, spec), SPIKE), x, SPIKE);
    const guarded = await run(build(guardedSiteParams(H, D, spec, BUDGET), SPIKE, true), x, SPIKE);
    expect(maxAbsDiff(plain.y, ref)).toBeGreaterThan(BUDGET + ROUNDING);
    expect(maxAbsDiff(guarded.y, ref)).toBeLessThanOrEqual(BUDGET + ROUNDING);
    expect(guarded.flags!.reduce((a, f) => a + f, 0)).toBeGreaterThan(0);
    expect(flagDisagreements(x, guarded.flags!, chosenOf, true)).toBe(0);
    // a certificate without the bias misses the spike's rows: the check above would catch such a lowering
    expect(flagDisagreements(x, guarded.flags!, chosenOf, false)).toBeGreaterThan(0);
  }, 120_000);
});

describe('a bias that varies along the query axis', () => {
  it('keeps a block form from lowering, and says why', () => {
    const g = new Graph('pair_bias');
    const [q, k, v] = ['q', 'k', 'v'].map((n) => g.addInput(new Value(n, tensorType('f32', [1, H, 'seq', D]))));
    const b = g.addInput(new Value('bias', tensorType('f32', [1, H, 'seq', 'seq'])));
    const node = attentionNode(guardedSiteParams(H, D, intersect(causal('bottom-right'), TOPK), BUDGET), { q: q!, k: k!, v: v!, bias: b }, { y: new Value('y', tensorType('f32')) }, 'attn');
    g.addNode(node);
    expect(cannotLower(node, { opset: 21 })).toMatch(/causal ∩ topkBlocks with a bias input that is no key bias .*varies along the query axis .*n x n bias/);
  });
});
