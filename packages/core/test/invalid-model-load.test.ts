// A model file onnxruntime refuses as the exporter wrote it (here a Where whose branches are float and double, as
// torch 1.13 exports torch.where(cond, python_float, tensor)): optimize names the file and onnxruntime's reason on the
// file as written, not the calibration copy attnopt built from it.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseGraph } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { expect, test } from 'vitest';
import { loadModel, optimize } from '../src/index.js';

const text = (fillType: 'f32' | 'f64') => `graph g {
  input %q: f32[1, 2, seq, 8]
  input %k: f32[1, 2, seq, 8]
  input %v: f32[1, 2, seq, 8]
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]
  init %zero: f32[] = tensor<f32[]> [0.0]
  init %fill: ${fillType}[] = tensor<${fillType}[]> [-10000.0]
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Mul(%qk, %s)
  %neg = Less(%sc, %zero)
  %clamped = Where(%neg, %fill, %sc)
  %p = Softmax(%sc) {axis = -1}
  %y = MatMul(%p, %v)
  output %y, %clamped
}`;

test('a file onnxruntime cannot load as written: its reason, the file named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'attnopt-invalid-'));
  const file = join(dir, 'where-types.onnx');
  writeFileSync(file, exportOnnx(newOnnxModel(parseGraph(text('f64')), { opset: 17 })));
  await expect(optimize(loadModel(file), { seqLen: 16 })).rejects.toThrow(/where-types\.onnx: onnxruntime cannot load the model as written, before any rewrite: .*Where/);
  // the same graph with matching types calibrates
  const valid = join(dir, 'where-valid.onnx');
  writeFileSync(valid, exportOnnx(newOnnxModel(parseGraph(text('f32')), { opset: 17 })));
  await expect(optimize(loadModel(valid), { seqLen: 16 })).resolves.toBeDefined();
});
