// The prune pass: nodes the rewrites leave unread (the scale Constant a lift no longer reads, lengths a lowering
// computed for a form it did not take) leave the optimized model; a node the model itself held unread stays.

import { parseGraph } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { describe, expect, it } from 'vitest';
import { loadModel, optimize } from '../src/index.js';

const text = `graph g {
  input %q: f32[1, 2, seq, 8]
  input %k: f32[1, 2, seq, 8]
  input %v: f32[1, 2, seq, 8]
  %left_over = Neg(%q)
  %scale = Constant() {value = tensor<f32[]> [0.35355339]}
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %s = MatMul(%q, %kt)
  %ss = Mul(%s, %scale)
  %p = Softmax(%ss) {axis = -1}
  %y = MatMul(%p, %v)
  output %y
}`;

describe('prune', () => {
  it('removes what the rewrites left unread and keeps what the model held unread', async () => {
    const model = loadModel(exportOnnx(newOnnxModel(parseGraph(text), { opset: 17 })));
    const { model: out, notes } = await optimize(model, { seqLen: 64, maxError: 0, restoreUnchanged: false });
    const g = out.graph;
    const unread = g.nodes.filter((n) => n.outputs.every((v) => v.uses().length === 0 && !g.outputs.includes(v)));
    expect(unread.map((n) => n.outputs[0]!.name)).toEqual(['left_over']);
    expect(notes.some((n) => n.pass === 'prune' && /nodes the rewrites left unread removed/.test(n.message))).toBe(true);
  });
});
