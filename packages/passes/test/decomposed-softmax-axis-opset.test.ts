// Softmax without an axis attribute: axis -1 from opset 13 on, axis 1 before (the input flattened to 2D from axis
// 1 on, so over heads, queries and keys together for 4D scores: no attention). The rule reads the opset the
// importer recorded on the graph. The default's meaning is checked in onnxruntime itself: at opset 11 the rows of
// the probabilities do not each sum to 1, at opset 13 they do.

import { isAttention, parseGraph } from '@attnopt/ir';
import { exportOnnx, importOnnx, newOnnxModel } from '@attnopt/onnx';
import { rewritePass } from '@attnopt/rewrite';
import { describe, expect, test } from 'vitest';
import { RECOGNITION_RULES } from '../src/recognize/index.js';
import { ortValues, randomInputs, runModel } from './helpers/ort.js';

const site = (softmaxAttrs: string) => `graph g {
  input %q: f32[2, 4, 6, 8]
  input %k: f32[2, 4, 6, 8]
  input %v: f32[2, 4, 6, 8]
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Mul(%qk, %s)
  %p = Softmax(%sc)${softmaxAttrs}
  %y = MatMul(%p, %v)
  output %y, %p
}`;

function recognized(text: string, opset: number) {
  const model = importOnnx(exportOnnx(newOnnxModel(parseGraph(text), { opset })));
  const notes = rewritePass('recognize', RECOGNITION_RULES).run(model.graph).notes.map((n) => n.message);
  return { sites: model.graph.nodes.filter(isAttention).length, notes: notes.join('\n') };
}

/** Whether every row of the probabilities onnxruntime computes sums to 1 (the softmax over the last axis). */
async function rowsSumToOne(text: string, opset: number): Promise<boolean> {
  const bytes = exportOnnx(newOnnxModel(parseGraph(text), { opset }));
  const p = ortValues((await runModel(bytes, randomInputs(parseGraph(text), 2)))['p']!);
  for (let r = 0; r < p.length / 6; r++) if (Math.abs(p.subarray(r * 6, r * 6 + 6).reduce((a, b) => a + b, 0) - 1) > 1e-5) return false;
  return true;
}

describe('Softmax with no axis attribute', () => {
  test('opset 11: axis 1, flattened: not attention, refused with the reason', async () => {
    expect(await rowsSumToOne(site(''), 11)).toBe(false);
    const r = recognized(site(''), 11);
    expect(r.sites).toBe(0);
    expect(r.notes).toContain('Softmax has no axis attribute, so at opset 11 it normalizes over axes 1 and on');
  });
  test('opset 13: axis -1, lifted', async () => {
    expect(await rowsSumToOne(site(''), 13)).toBe(true);
    expect(recognized(site(''), 13).sites).toBe(1);
  });
  test('opset 11 with axis = 3 written: lifted', async () => {
    expect(await rowsSumToOne(site(' {axis = 3}'), 11)).toBe(true);
    expect(recognized(site(' {axis = 3}'), 11).sites).toBe(1);
  });
});
