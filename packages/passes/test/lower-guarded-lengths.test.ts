// The guarded banded lowering with a lengths input (kvLength: keys at or past kvLength[b] are padding, a
// key-padding mask) in onnxruntime against the float64 reference of the site's own spec with the same lengths:
// batch 2, lengths [n, 700], n = 1024. Every output within the budget plus float32 rounding (|y - ref| <= budget +
// 1e-4: inputs and values of size <= 4, f32 scores and sums); on the adversarial family the unguarded form breaks
// the budget (the guard did the work); budget 0 (every row with dropped keys falls back) gives dense attention
// over the non-padding keys.

import { type AttentionParams, type AttentionSpec, attentionNode, causal, Graph, intersect, sinks, slidingWindow, tensorType, union, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { cannotLower, lowerAttentionPass } from '../src/lower/index.js';
import { localInputs, repeatSpans } from './helpers/guarded-inputs.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';
import { guardedSiteParams } from './helpers/guarded-params.js';

const B = 2;
const H = 2;
const D = 16;
const N = 1024;
const LENGTHS = [N, 700];
const SPEC: AttentionSpec = intersect(causal('bottom-right'), union(slidingWindow(255, 0, 'bottom-right'), sinks(4)));
const BUDGET = 1e-3;
const ROUNDING = 1e-4;

const params = (spec: AttentionSpec, budget?: number): AttentionParams => guardedSiteParams(H, D, spec, budget);

function build(p: AttentionParams, opset: number): Uint8Array {
  const g = new Graph('guarded_lengths');
  const q = g.addInput(new Value('q', tensorType('f32', [B, H, 'seq', D])));
  const k = g.addInput(new Value('k', tensorType('f32', [B, H, 'seq', D])));
  const v = g.addInput(new Value('v', tensorType('f32', [B, H, 'seq', D])));
  const kvLength = g.addInput(new Value('kv_length', tensorType('i64', [B])));
  const y = new Value('y', tensorType('f32'));
  const node = attentionNode(p, { q, k, v, kvLength }, { y }, 'attn');
  g.addNode(node);
  g.outputs.push(y);
  expect(cannotLower(node, { opset, strategy: 'banded' })).toBeUndefined();
  runPipeline(g, [lowerAttentionPass({ opset, strategy: 'banded', blockSize: 64 })]);
  return exportOnnx(newOnnxModel(g, { opset }));
}

const local = (seed: number) => localInputs(seed, B, H, N, D);

const FAMILIES: [string, (seed: number) => ReturnType<typeof local>, boolean][] = [
  ['local (rotary-like, peaked at the query)', local, false],
  [
    'repeated spans: the keys of a span repeat 600 positions later, the queries look back at them',
    (seed) => repeatSpans(local(seed), 600, B, H, N, D),
    true,
  ],
  [
    'an outlier key aligned with every query, inside the padding of batch 1 and far outside the window',
    (seed) => {
      const x = local(seed);
      for (let bh = 0; bh < B * H; bh++) for (let c = 0; c < D; c++) x.k[(bh * N + 100) * D + c] = 12;
      for (let bh = 0; bh < B * H; bh++) for (let c = 0; c < D; c++) x.k[(bh * N + 800) * D + c] = 12;
      for (let t = 0; t < x.q.length; t++) x.q[t] = Math.abs(x.q[t]!);
      return x;
    },
    true,
  ],
];

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let t = 0; t < a.length; t++) m = Math.max(m, Math.abs(a[t]! - b[t]!));
  return m;
};

for (const opset of [21, 17])
describe(`opset ${opset}: guarded window 256 + sinks 4 with a lengths input, within the budget of the float64 reference`, () => {
  const guarded = build(params(SPEC, BUDGET), opset);
  const unguarded = build(params(SPEC), opset);
  const forced = build(params(SPEC, 0), opset);
  it.each(FAMILIES)('%s', async (_name, family, adversarial) => {
    const x = family(opset);
    const f = (t: Float64Array) => Float64Array.from(Float32Array.from(t));
    const shape = [B, H, N, D];
    const ref = referenceAttention(params(causal('bottom-right')), { q: { shape, data: f(x.q) }, k: { shape, data: f(x.k) }, v: { shape, data: f(x.v) }, kvLength: LENGTHS }).y.data;
    const run = async (model: Uint8Array) =>
      ortValues(
        (
          await runModel(model, {
            q: ortTensor('f32', shape, x.q),
            k: ortTensor('f32', shape, x.k),
            v: ortTensor('f32', shape, x.v),
            kv_length: ortTensor('i64', [B], LENGTHS),
          })
        ).y!,
      );
    expect(maxAbsDiff(await run(guarded), ref)).toBeLessThanOrEqual(BUDGET + ROUNDING);
    if (adversarial) expect(maxAbsDiff(await run(unguarded), ref)).toBeGreaterThan(BUDGET + ROUNDING);
    expect(maxAbsDiff(await run(forced), ref)).toBeLessThanOrEqual(ROUNDING);
  }, 120_000);
});
