// optimize on a site whose own mask is a sliding window (Mistral's: keys i - 511 .. i, built from Range
// comparisons, proven by the mask analysis): calibrated where attention is local, it takes a narrower guarded
// window inside the proven one, and in onnxruntime the optimized model stays within the budget of the original on
// an input unlike its calibration (repeated spans: each query matches a key 499 back, inside the model's window,
// outside the narrower one), float32 rounding aside (1e-4).

import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Graph, intAttr, Tensor, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { loadModel, optimize, saveModel } from '../src/index.js';
import { D, H, localTensors, repeatSpans, sample, type Tensors, W } from './helpers/guarded-site.js';

process.env.ORT_DISABLE_TELEMETRY = '1';

const N = 2048;
const WINDOW = 512;
const BUDGET = 1e-3;

/** Softmax(Where(0 <= i - j < 512, Q Kᵀ / sqrt(D), -inf)) V over q, k, v [1, seq, W] in H heads. */
function slidingWindowSite(): Uint8Array {
  const g = new Graph('sliding_window');
  const [q, k, v] = ['q', 'k', 'v'].map((x) => g.addInput(new Value(x, tensorType('f32', [1, 'seq', W]))));
  const ints = (name: string, values: number[], scalar = false) =>
    g.addInitializer(new Value(name, tensorType('i64', scalar ? [] : [values.length]), Tensor.fromValues('i64', scalar ? [] : [values.length], values.map(BigInt))));
  const f32 = (name: string, v: number) => g.addInitializer(new Value(name, tensorType('f32', []), Tensor.fromValues('f32', [], [v])));
  let n = 0;
  const op = (opName: string, inputs: Value[], attrs: Record<string, unknown> = {}) => {
    const out = new Value(`${opName.toLowerCase()}_${n++}`);
    g.add({ op: opName, name: out.name, inputs, outputs: [out], attrs: attrs as never });
    return out;
  };
  const perm = (p: number[]) => ({ perm: { type: 'ints', value: p.map(BigInt) } });
  const heads = (x: Value, p: number[]) => op('Transpose', [op('Reshape', [x, ints(`shape_${x.name}`, [0, 0, H, D])])], perm(p));
  const seq = op('Gather', [op('Shape', [q!]), ints('one', [1], true)], { axis: intAttr(0) });
  const pos = op('Range', [ints('zero', [0], true), seq, ints('step', [1], true)]);
  const dist = op('Sub', [op('Unsqueeze', [pos, ints('axis1', [1])]), op('Unsqueeze', [pos, ints('axis0', [0])])]);
  const keep = op('And', [op('GreaterOrEqual', [dist, ints('zero_i', [0], true)]), op('Less', [dist, ints('window', [WINDOW], true)])]);
  const scores = op('Div', [op('MatMul', [heads(q!, [0, 2, 1, 3]), heads(k!, [0, 2, 3, 1])]), f32('sqrt_d', Math.sqrt(D))]);
  const p = op('Softmax', [op('Where', [keep, scores, f32('minus_inf', -Infinity)])], { axis: intAttr(-1) });
  const y = new Value('y', tensorType('f32', [1, 'seq', W]));
  const merged = op('Transpose', [op('MatMul', [p, heads(v!, [0, 2, 1, 3])])], perm([0, 2, 1, 3]));
  g.add({ op: 'Reshape', name: 'merge', inputs: [merged, ints('merged_shape', [0, 0, W])], outputs: [y] });
  g.outputs.push(y);
  return exportOnnx(newOnnxModel(g, { opset: 17 }));
}

async function run(bytes: Uint8Array, t: Tensors): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled' });
  const x = (d: Float32Array) => new ort.Tensor('float32', d, [1, N, W]);
  return (await s.run({ q: x(t.q), k: x(t.k), v: x(t.v) })).y!.data as Float32Array;
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, t) => Math.max(m, Math.abs(x - b[t]!)), 0);

describe('optimize, a guarded window inside a proven sliding window', () => {
  it('takes a narrower guarded window and holds the budget on repeated spans it never saw', async () => {
    const original = slidingWindowSite();
    const result = await optimize(loadModel(original), { maxError: BUDGET, seqLen: N, samples: [sample(localTensors(N, 1), N)] });
    expect(result.sites).toHaveLength(1);
    const site = result.sites[0]!;
    expect(site).toMatchObject({ guarantee: 'guarded', bound: BUDGET, exact: false });
    // a backward window narrower than the model's 512 keys, aligned as it is
    const width = /^window\(left=(\d+), right=0\)/.exec(site.chosen);
    expect(width, site.chosen).not.toBeNull();
    expect(Number(width![1])).toBeLessThan(WINDOW - 1);
    expect(site.flopsAfter).toBeLessThan(site.flopsBefore);
    const optimized = saveModel(result.model);
    // local inputs like the calibration: no row falls back, so the output is the narrower window's
    const local = localTensors(N, 2);
    expect(maxAbsDiff(await run(optimized, local), await run(original, local))).toBeLessThanOrEqual(BUDGET + 1e-4);
    // repeated spans: the unguarded narrower window would miss the key each query matches (499 back)
    const spans = repeatSpans(localTensors(N, 3), N);
    const [yo, yg] = [await run(original, spans), await run(optimized, spans)];
    expect(maxAbsDiff(yg, yo)).toBeLessThanOrEqual(BUDGET + 1e-4);
  }, 300_000);
});
