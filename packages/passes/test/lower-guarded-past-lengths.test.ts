// The guarded banded lowering with past keys and a lengths input together (GroupQueryAttention's shape: a KV
// cache, kvLength = seqlens_k + 1, grouped heads) in onnxruntime against the float64 reference of causal(past) with
// the same cache and lengths: batch 2, 4 query heads over 2 key/value heads, P = 300 cached keys, nq in {1, 64}
// new queries, kvLength [T, T - 10] (the second batch's last 10 keys are padding). Within the budget plus float32
// rounding (|y - ref| <= budget + 1e-4); budget 0 gives the reference within rounding; with an outlier key far
// back in the cache (position 10) the unguarded window breaks the budget.

import { type AttentionParams, type AttentionSpec, attentionNode, causal, Graph, intersect, sinks, slidingWindow, tensorType, union, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { cannotLower, lowerAttentionPass } from '../src/lower/index.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

const B = 2;
const H = 4;
const HKV = 2;
const D = 16;
const P = 300;
const BUDGET = 1e-3;
const ROUNDING = 1e-4;
const SPEC = intersect(causal('past'), union(slidingWindow(255, 0, 'past'), sinks(4)));

const params = (budget?: number, spec: AttentionSpec = SPEC): AttentionParams => ({
  numHeads: H,
  kvNumHeads: HKV,
  headDim: D,
  vHeadDim: D,
  scale: 1 / Math.sqrt(D),
  softcap: 0,
  layout: 'bhsd',
  spec,
  ...(budget !== undefined ? { guard: { budget, blockSize: 64, baseline: causal('past') } } : {}),
});

function build(p: AttentionParams): Uint8Array {
  const g = new Graph('guarded_past_lengths');
  const q = g.addInput(new Value('q', tensorType('f32', [B, H, 'seq', D])));
  const [k, v] = ['k', 'v'].map((name) => g.addInput(new Value(name, tensorType('f32', [B, HKV, 'seq', D]))));
  const [pastKey, pastValue] = ['past_key', 'past_value'].map((name) => g.addInput(new Value(name, tensorType('f32', [B, HKV, 'past', D]))));
  const kvLength = g.addInput(new Value('kv_length', tensorType('i64', [B])));
  const y = new Value('y', tensorType('f32'));
  const node = attentionNode(p, { q, k: k!, v: v!, pastKey: pastKey!, pastValue: pastValue!, kvLength }, { y }, 'attn');
  g.addNode(node);
  g.outputs.push(y);
  expect(cannotLower(node, { opset: 21, strategy: 'banded' })).toBeUndefined();
  runPipeline(g, [lowerAttentionPass({ opset: 21, strategy: 'banded', blockSize: 64 })]);
  return exportOnnx(newOnnxModel(g, { opset: 21 }));
}

/** Local inputs (rotary-like, peaked at the query's position P + i), float32-rounded; `outlier`: key 10 aligned with every query. */
function inputs(nq: number, seed: number, outlier: boolean) {
  const T = P + nq;
  let state = seed >>> 0;
  const rand = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const w = Array.from({ length: D / 2 }, (_, f) => 0.0015 * 1.6 ** f);
  const feat = (t: number, c: number) => 6 * (c % 2 === 0 ? Math.cos(w[c >> 1]! * t) : Math.sin(w[c >> 1]! * t));
  const q = new Float64Array(B * H * nq * D);
  const kAll = new Float64Array(B * HKV * T * D);
  for (let bh = 0; bh < B * H; bh++) for (let i = 0; i < nq; i++) for (let c = 0; c < D; c++) q[(bh * nq + i) * D + c] = outlier ? Math.abs(feat(P + i, c)) : feat(P + i, c);
  for (let bh = 0; bh < B * HKV; bh++) for (let t = 0; t < T; t++) for (let c = 0; c < D; c++) kAll[(bh * T + t) * D + c] = outlier && t === 10 ? 5.3 : feat(t, c) + 0.05 * (rand() - 0.5);
  const vAll = Float64Array.from({ length: B * HKV * T * D }, () => rand() * 2 - 1);
  const part = (t: Float64Array, from: number, to: number) => {
    const out = new Float64Array(B * HKV * (to - from) * D);
    for (let bh = 0; bh < B * HKV; bh++) out.set(t.subarray((bh * T + from) * D, (bh * T + to) * D), bh * (to - from) * D);
    return Float64Array.from(Float32Array.from(out));
  };
  return { T, q: Float64Array.from(Float32Array.from(q)), k: part(kAll, P, T), v: part(vAll, P, T), pastKey: part(kAll, 0, P), pastValue: part(vAll, 0, P) };
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let t = 0; t < a.length; t++) m = Math.max(m, Math.abs(a[t]! - b[t]!));
  return m;
};

describe('guarded window 256 + sinks 4 with past keys, a lengths input and grouped heads, in onnxruntime', () => {
  const guarded = build(params(BUDGET));
  const unguarded = build(params());
  const forced = build(params(0));
  it.each([
    [1, false],
    [1, true],
    [64, false],
    [64, true],
  ] as const)('nq = %i, outlier in the cache: %s', async (nq, outlier) => {
    const x = inputs(nq, 11 + nq, outlier);
    const lengths = [x.T, x.T - 10];
    const t = (data: Float64Array, heads: number, n: number) => ({ shape: [B, heads, n, D], data });
    const ref = referenceAttention(params(undefined, causal('past')), { q: t(x.q, H, nq), k: t(x.k, HKV, nq), v: t(x.v, HKV, nq), pastKey: t(x.pastKey, HKV, P), pastValue: t(x.pastValue, HKV, P), kvLength: lengths }).y.data;
    const o = (data: Float64Array, heads: number, n: number) => ortTensor('f32', [B, heads, n, D], data);
    const run = async (m: Uint8Array) =>
      ortValues((await runModel(m, { q: o(x.q, H, nq), k: o(x.k, HKV, nq), v: o(x.v, HKV, nq), past_key: o(x.pastKey, HKV, P), past_value: o(x.pastValue, HKV, P), kv_length: ortTensor('i64', [B], lengths) })).y!);
    expect(maxAbsDiff(await run(guarded), ref)).toBeLessThanOrEqual(BUDGET + ROUNDING);
    expect(maxAbsDiff(await run(forced), ref)).toBeLessThanOrEqual(ROUNDING);
    if (outlier) expect(maxAbsDiff(await run(unguarded), ref)).toBeGreaterThan(BUDGET + ROUNDING);
  }, 120_000);
});
