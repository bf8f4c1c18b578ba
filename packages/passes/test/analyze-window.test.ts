// A generated sliding-window model: decomposed attention whose mask is a band built at run time from
// Range/LessOrEqual/Greater/And over the sequence length, as a model would write it. recognize + analyze-mask
// must rewrite it to exactly that window (bias dropped) for every length, and the lowered rewrite must match
// the original in onnxruntime at several lengths (|got - want| <= 1e-5 + 1e-5 |want|).

import { type Attr, AttentionInput, attentionParams, Graph, intsAttr, isAttention, printSpec, Tensor, tensorType, type Value, Value as V, verifyGraph } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { describe, expect, it } from 'vitest';
import { analyzeMaskPass } from '../src/mask-analysis/index.js';
import { lowerAttentionPass } from '../src/lower/index.js';
import { recognizePass } from '../src/recognize/index.js';
import { compareOutputs, randomInputs, runModel } from './helpers/ort.js';

const HEADS = 2;
const HEAD_DIM = 8;

/**
 * Softmax(Q Kᵀ · d^-½ + Where(keep(i, j), 0, -inf)) V over Q, K, V [batch, H, seq, D], keep(i, j) =
 * i - width < j <= i (or j < sinks as well).
 */
function slidingWindowModel(width: number, sinks = 0): Graph {
  const g = new Graph();
  let k = 0;
  const op = (o: string, inputs: Value[], attrs: Record<string, Attr> = {}): Value => {
    const out = new V(`t${k++}`);
    g.add({ op: o, inputs, outputs: [out], attrs });
    return out;
  };
  const c = (dtype: 'i64' | 'f32', shape: number[], xs: number[]): Value =>
    g.addInitializer(new V(`c${k++}`, tensorType(dtype, shape), Tensor.fromValues(dtype, shape, xs)));
  const input = (name: string) => g.addInput(new V(name, tensorType('f32', ['batch', HEADS, 'seq', HEAD_DIM])));
  const [q, kk, v] = [input('q'), input('k'), input('v')];
  const seq = op('Gather', [op('Shape', [q]), c('i64', [], [2])], { axis: { type: 'int', value: 0n } });
  const positions = op('Range', [c('i64', [], [0]), seq, c('i64', [], [1])]);
  const i = op('Unsqueeze', [positions, c('i64', [1], [1])]); // [S, 1]
  const j = op('Unsqueeze', [positions, c('i64', [1], [0])]); // [1, S]
  let keep = op('And', [op('LessOrEqual', [j, i]), op('Greater', [j, op('Sub', [i, c('i64', [], [width])])])]);
  if (sinks > 0) keep = op('Or', [op('Less', [j, c('i64', [], [sinks])]), keep]);
  const bias = op('Where', [keep, c('f32', [], [0]), c('f32', [], [-Infinity])]);
  const scores = op('Mul', [op('MatMul', [q, op('Transpose', [kk], { perm: intsAttr([0, 1, 3, 2]) })]), c('f32', [], [1 / Math.sqrt(HEAD_DIM)])]);
  const probs = op('Softmax', [op('Add', [scores, bias])], { axis: { type: 'int', value: -1n } });
  const y = op('MatMul', [probs, v]);
  y.type = tensorType('f32', ['batch', HEADS, 'seq', HEAD_DIM]);
  g.outputs.push(y);
  return g;
}

describe('a generated sliding-window model', () => {
  it.each([
    { width: 16, sinks: 0, spec: 'window(left=15, right=0)', lengths: [40, 97] },
    { width: 128, sinks: 0, spec: 'window(left=127, right=0)', lengths: [40, 200] },
    { width: 16, sinks: 4, spec: 'union(sinks(4), window(left=15, right=0))', lengths: [40, 97] },
  ])('band of width $width with $sinks sinks -> $spec, equal to the original in onnxruntime', async ({ width, sinks, spec, lengths }) => {
    const original = exportOnnx(newOnnxModel(slidingWindowModel(width, sinks)));
    const model = newOnnxModel(slidingWindowModel(width, sinks));
    const g = model.graph;
    recognizePass().run(g);
    const result = analyzeMaskPass().run(g);
    const why = result.notes.map((n) => n.message).join('\n');
    expect(verifyGraph(g)).toEqual([]);
    const att = g.nodes.filter(isAttention);
    expect(att.length, why).toBe(1);
    expect(printSpec(attentionParams(att[0]!).spec), why).toBe(spec);
    expect(att[0]!.inputs[AttentionInput.bias], why).toBeUndefined();
    expect(g.nodes.some((n) => n.op === 'Range' || n.op === 'Where'), 'the mask computation is removed').toBe(false);
    lowerAttentionPass({ opset: 21 }).run(g);
    const rewritten = exportOnnx(model);
    for (const seq of lengths) {
      const feeds = randomInputs(slidingWindowModel(width, sinks), seq, { batch: 2, seq, past: 0 });
      const want = await runModel(original, feeds);
      const got = await runModel(rewritten, feeds);
      expect(compareOutputs(got, want, 1e-5, 1e-5).mismatches, `seq ${seq}`).toEqual([]);
    }
  });

  it('does not fire as a window when the band is one key wider on the right', () => {
    // j <= i + 1 instead of j <= i: window(left=15, right=1), never window(left=15, right=0) or causal
    const g = slidingWindowModel(16);
    const le = g.nodes.find((n) => n.op === 'LessOrEqual')!;
    const one = g.addInitializer(new V('one', tensorType('i64', []), Tensor.fromValues('i64', [], [1])));
    const shifted = new V('i_plus_1');
    g.add({ op: 'Add', inputs: [le.inputs[1]!, one], outputs: [shifted], attrs: {} });
    g.nodes.splice(g.nodes.indexOf(le), 0, g.nodes.pop()!);
    le.setInput(1, shifted);
    recognizePass().run(g);
    analyzeMaskPass().run(g);
    const att = g.nodes.filter(isAttention);
    expect(att.map((a) => printSpec(attentionParams(a).spec))).toEqual(['window(left=15, right=1)']);
  });
});
