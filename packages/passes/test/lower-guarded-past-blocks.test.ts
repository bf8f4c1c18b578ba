// The guarded block-gathered lowering on a site with past keys: causal(past) ∩ topkBlocks(64, 4) and causal(past) ∩
// a fixed block layout, guarded over causal(past), in onnxruntime against the float64 reference of causal(past) with
// the same cache: P in {37, 300} cached keys, nq in {1, 64, 700} new queries. Within the budget plus float32 rounding
// (|y - ref| <= budget + 1e-4) on local inputs and with an outlier key far back in the cache (position 10, logits up
// to 80); budget 0 gives the causal reference within rounding. A causal cut at i (top-left) over a baseline at P + i
// is refused.

import { type AttentionParams, type AttentionSpec, attentionNode, blockSparse, causal, Graph, intersect, tensorType, topkBlocks, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { cannotLower, lowerAttentionPass } from '../src/lower/index.js';
import { guardedInputsBlocker } from '../src/lower/guarded.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

const H = 2;
const D = 16;
const BUDGET = 1e-3;
const ROUNDING = 1e-4;
/** Query block r keeps key blocks 0, r - 1 and r (indices of this call's queries and of all keys). */
const LAYOUT = blockSparse(64, 64, Array.from({ length: 16 }, (_, r) => [...new Set([0, Math.max(0, r - 1), r])]));

const params = (spec: AttentionSpec, budget?: number, baseline: AttentionSpec = causal('past')): AttentionParams => ({
  numHeads: H,
  kvNumHeads: H,
  headDim: D,
  vHeadDim: D,
  scale: 1 / Math.sqrt(D),
  softcap: 0,
  layout: 'bhsd',
  spec,
  ...(budget !== undefined ? { guard: { budget, blockSize: 64, baseline } } : {}),
});

function site(p: AttentionParams) {
  const g = new Graph('guarded_past_blocks');
  const [q, k, v] = ['q', 'k', 'v'].map((name) => g.addInput(new Value(name, tensorType('f32', [1, H, 'seq', D]))));
  const [pastKey, pastValue] = ['past_key', 'past_value'].map((name) => g.addInput(new Value(name, tensorType('f32', [1, H, 'past', D]))));
  const y = new Value('y', tensorType('f32'));
  const node = attentionNode(p, { q: q!, k: k!, v: v!, pastKey: pastKey!, pastValue: pastValue! }, { y }, 'attn');
  g.addNode(node);
  g.outputs.push(y);
  return { g, node };
}

function build(p: AttentionParams): Uint8Array {
  const { g, node } = site(p);
  expect(cannotLower(node, { opset: 21 })).toBeUndefined();
  runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
  return exportOnnx(newOnnxModel(g, { opset: 21 }));
}

/** Local inputs (rotary-like, peaked at the query's position P + i), float32-rounded; `outlier`: key 10 aligned with every query. */
function inputs(P: number, nq: number, seed: number, outlier: boolean) {
  const T = P + nq;
  let state = seed >>> 0;
  const rand = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const w = Array.from({ length: D / 2 }, (_, f) => 0.0015 * 1.6 ** f);
  const feat = (t: number, c: number) => 6 * (c % 2 === 0 ? Math.cos(w[c >> 1]! * t) : Math.sin(w[c >> 1]! * t));
  const q = new Float64Array(H * nq * D);
  const kAll = new Float64Array(H * T * D);
  for (let h = 0; h < H; h++) for (let i = 0; i < nq; i++) for (let c = 0; c < D; c++) q[(h * nq + i) * D + c] = outlier ? Math.abs(feat(P + i, c)) : feat(P + i, c);
  for (let h = 0; h < H; h++) for (let t = 0; t < T; t++) for (let c = 0; c < D; c++) kAll[(h * T + t) * D + c] = outlier && t === 10 ? 5.3 : feat(t, c) + 0.05 * (rand() - 0.5);
  const vAll = Float64Array.from({ length: H * T * D }, () => rand() * 2 - 1);
  const part = (t: Float64Array, from: number, to: number) => {
    const out = new Float64Array(H * (to - from) * D);
    for (let h = 0; h < H; h++) out.set(t.subarray((h * T + from) * D, (h * T + to) * D), h * (to - from) * D);
    return Float64Array.from(Float32Array.from(out));
  };
  return { q: Float64Array.from(Float32Array.from(q)), k: part(kAll, P, T), v: part(vAll, P, T), pastKey: part(kAll, 0, P), pastValue: part(vAll, 0, P) };
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let t = 0; t < a.length; t++) m = Math.max(m, Math.abs(a[t]! - b[t]!));
  return m;
};

const CASES: [string, AttentionSpec][] = [
  ['causal(past) ∩ top-k blocks (64, k = 4)', intersect(causal('past'), topkBlocks(64, 4, 'quest'))],
  ['causal(past) ∩ a fixed block layout', intersect(causal('past'), LAYOUT)],
];
const SHAPES: [number, number][] = [37, 300].flatMap((P) => [1, 64, 700].map((nq) => [P, nq] as [number, number]));

describe.each(CASES)('guarded %s with past keys in onnxruntime, within the budget of the float64 causal(past) reference', (_name, spec) => {
  const guarded = build(params(spec, BUDGET));
  const forced = build(params(spec, 0));
  it.each(SHAPES.flatMap(([P, nq]) => [false, true].map((outlier) => [P, nq, outlier] as const)))('P = %i, nq = %i, outlier in the cache: %s', async (P, nq, outlier) => {
    const x = inputs(P, nq, 5 + P + nq, outlier);
    const t = (data: Float64Array, n: number) => ({ shape: [1, H, n, D], data });
    const ref = referenceAttention(params(causal('past')), { q: t(x.q, nq), k: t(x.k, nq), v: t(x.v, nq), pastKey: t(x.pastKey, P), pastValue: t(x.pastValue, P) }).y.data;
    const o = (data: Float64Array, n: number) => ortTensor('f32', [1, H, n, D], data);
    const run = async (m: Uint8Array) => ortValues((await runModel(m, { q: o(x.q, nq), k: o(x.k, nq), v: o(x.v, nq), past_key: o(x.pastKey, P), past_value: o(x.pastValue, P) })).y!);
    expect(maxAbsDiff(await run(guarded), ref)).toBeLessThanOrEqual(BUDGET + ROUNDING);
    expect(maxAbsDiff(await run(forced), ref)).toBeLessThanOrEqual(ROUNDING);
  }, 120_000);
});

describe('guarded block-gathered forms with past keys: what is refused', () => {
  it('a causal cut at i over a baseline at P + i', () => {
    expect(guardedInputsBlocker(site(params(intersect(causal('top-left'), topkBlocks(64, 4, 'quest')), BUDGET)).node)).toMatch(/different positions/);
  });
});
