// A window proven from the model's own mask saves nothing on onnxruntime when the site also adds a bias that varies
// along the queries and is no function of j - i alone (here -slope · |i - j| · (1 + i / 1000)): that bias is n x n,
// so every form of the site lowers dense there, and the window would only be recomputed as a mask over all n x n
// scores. The plan prices the site with its bias, as the chooser does, so the site goes back to the model's own
// nodes (restored) instead of a slower copy.
// A symmetric ALiBi, -slope · |i - j|, is a function of j - i: the mask analysis reads it as a relative-position
// bias, the proven window lowers banded and reads the bias on its band (exact, fewer FLOPs), and in onnxruntime the
// output is the model's, float32 rounding aside.

import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { gaussian, Graph, intAttr, Tensor, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { loadModel, optimize, saveModel } from '../src/index.js';

const H = 2;
const D = 16;
const W = H * D;
const WINDOW = 8;

/**
 * One layer: x [1, seq, W] -> heads -> Softmax(Where(|i - j| < 8, QKᵀ/4 - slope_h |i - j|, -inf)) V; with
 * `queryTerm`, the ALiBi term times (1 + i / 1000).
 */
function windowedAlibi(queryTerm: boolean): Uint8Array {
  const g = new Graph('windowed_alibi');
  const x = g.addInput(new Value('x', tensorType('f32', [1, 'seq', W])));
  const weight = (name: string, shape: number[], seed: number, scale: number) =>
    g.addInitializer(new Value(name, tensorType('f32', shape), Tensor.fromValues('f32', shape, gaussian(seed, shape.reduce((a, b) => a * b, 1)).map((v) => v * scale))));
  const ints = (name: string, values: number[], scalar = false) =>
    g.addInitializer(new Value(name, tensorType('i64', scalar ? [] : [values.length]), Tensor.fromValues('i64', scalar ? [] : [values.length], values.map(BigInt))));
  const f32 = (name: string, shape: number[], values: number[]) => g.addInitializer(new Value(name, tensorType('f32', shape), Tensor.fromValues('f32', shape, values)));
  let k = 0;
  const op = (opName: string, inputs: Value[], attrs: Record<string, ReturnType<typeof intAttr>> = {}) => {
    const out = new Value(`${opName.toLowerCase()}_${k++}`);
    g.add({ op: opName, name: out.name, inputs, outputs: [out], attrs });
    return out;
  };
  const perm = (p: number[]) => ({ perm: { type: 'ints', value: p.map(BigInt) } as never });
  const heads = (seed: number, p: number[]) =>
    op('Transpose', [op('Reshape', [op('MatMul', [x, weight(`w${seed}`, [W, W], seed, 1 / Math.sqrt(W))]), ints(`heads_shape${seed}`, [0, 0, H, D])])], perm(p));
  const [q, kt, v] = [heads(1, [0, 2, 1, 3]), heads(2, [0, 2, 3, 1]), heads(3, [0, 2, 1, 3])];
  const seq = op('Gather', [op('Shape', [x]), ints('one', [1], true)], { axis: intAttr(0) });
  const pos = op('Cast', [op('Range', [ints('zero', [0], true), seq, ints('step', [1], true)])], { to: intAttr(1) });
  const dist = op('Abs', [op('Sub', [op('Unsqueeze', [pos, ints('axis1', [1])]), op('Unsqueeze', [pos, ints('axis0', [0])])])]);
  const keep = op('Less', [dist, f32('window', [], [WINDOW])]);
  const slopes = f32('slopes', [1, H, 1, 1], [0.5, 0.25]);
  const alibi = op('Mul', [slopes, dist]);
  const rowScale = () => op('Add', [f32('one_f', [], [1]), op('Div', [op('Unsqueeze', [pos, ints('axis1b', [1])]), f32('thousand', [], [1000])])]);
  const scores = op('Sub', [op('Div', [op('MatMul', [q, kt]), f32('sqrt_d', [], [Math.sqrt(D)])]), queryTerm ? op('Mul', [alibi, rowScale()]) : alibi]);
  const masked = op('Where', [keep, scores, f32('minus_inf', [], [-Infinity])]);
  const attended = op('MatMul', [op('Softmax', [masked], { axis: intAttr(-1) }), v]);
  const merged = op('Reshape', [op('Transpose', [attended], perm([0, 2, 1, 3])), ints('merged_shape', [0, 0, W])]);
  const y = new Value('y', tensorType('f32', [1, 'seq', W]));
  g.add({ op: 'MatMul', name: 'out_proj', inputs: [merged, weight('wo', [W, W], 4, 1 / Math.sqrt(W))], outputs: [y] });
  g.outputs.push(y);
  return exportOnnx(newOnnxModel(g, { opset: 17 }));
}

describe('a proven window under a query-varying bias', () => {
  it('is priced dense on onnxruntime and kept as the model wrote it', async () => {
    const bytes = windowedAlibi(true);
    const model = loadModel(bytes);
    const result = await optimize(model, { maxError: 0, seqLen: 1024 });
    expect(result.sites).toHaveLength(1);
    const [site] = result.sites;
    // the mask analysis proves the window and keeps the ALiBi term as the site's bias
    expect(site!.chosen).toBe('window(left=7, right=7)');
    expect(site!.exact).toBe(true);
    // every form of the site computes all n x n scores on onnxruntime: the proof saves no FLOPs there
    expect(site!.flopsAfter).toBeGreaterThanOrEqual(site!.flopsBefore);
    expect(site!.restored).toBe(true);
    // the output is the model's own graph: the same operators, none added
    const ops = (m: ReturnType<typeof loadModel>) => [...m.graph.allNodes()].map((n) => n.op).sort();
    expect(ops(loadModel(saveModel(model)))).toEqual(ops(loadModel(bytes)));
  });

  it('a symmetric ALiBi is a relative-position bias: the window lowers banded, exact, with fewer FLOPs', async () => {
    const bytes = windowedAlibi(false);
    const result = await optimize(loadModel(bytes), { maxError: 0, seqLen: 1024 });
    const [site] = result.sites;
    expect(site!.chosen).toBe('window(left=7, right=7)');
    expect(site!.exact).toBe(true);
    expect(site!.restored).toBeFalsy();
    expect(site!.flopsAfter).toBeLessThan(site!.flopsBefore / 10);
    const n = 1024;
    const x = new ort.Tensor('float32', Float32Array.from(gaussian(5, n * W)), [1, n, W]);
    const run = async (m: Uint8Array) => (await (await ort.InferenceSession.create(m, { graphOptimizationLevel: 'disabled' })).run({ x })).y!.data as Float32Array;
    const [want, got] = [await run(bytes), await run(saveModel(result.model))];
    let worst = 0;
    for (let t = 0; t < want.length; t++) worst = Math.max(worst, Math.abs(got[t]! - want[t]!) - 1e-4 * Math.abs(want[t]!));
    expect(worst).toBeLessThanOrEqual(1e-5);
  });
});
