// ONNX backend node tests of Attention (opset 23/24) lowered to standard ops and run in onnxruntime: import ->
// FUSED_RULES -> one attnopt::Attention -> lowerAttentionPass at the model's opset -> export -> onnxruntime, on the
// stored inputs, which must reproduce every stored output (ONNX's own reference, not ours). Among them the
// nonpad_kv_seqlen cases (a KV cache with padding: kvLength), whose padding the lowering keeps out of reach and
// slices off. fp32: |got - want| <= 1e-4 + 1e-4 |want|; fp16: 4e-3 + 4e-3 |want| (the stored outputs were
// computed in fp16 by numpy, the lowering computes in the inputs' type). NaN and +-Inf must match exactly.
// The lowering refuses none of them (a refusal is recorded with its reason and fails the last test).

import fs from 'node:fs';
import path from 'node:path';
import { isAttention } from '@attnopt/ir';
import { exportOnnx, importOnnx } from '@attnopt/onnx';
import { rewritePass } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { cannotLower, lowerAttentionPass } from '../src/lower/index.js';
import { FUSED_RULES } from '../src/recognize/fused/index.js';
import { NODE_TESTS, readDataSet } from './helpers/node-tests.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

const cases = fs
  .readdirSync(NODE_TESTS)
  .filter((n) => n.startsWith('test_attention_') && !n.endsWith('_expanded'))
  .sort();

describe('ONNX Attention node tests, lowered and run in onnxruntime', () => {
  const refused: string[] = [];
  it.each(cases)('%s', async (name) => {
    const dir = path.join(NODE_TESTS, name);
    const model = importOnnx(path.join(dir, 'model.onnx'));
    const g = model.graph;
    expect(rewritePass('recognize-fused', FUSED_RULES).run(g).changed).toBe(true);
    const node = g.nodes.find(isAttention)!;
    const opset = Number(model.proto.opsetImport?.find((o) => (o.domain ?? '') === '')?.version);
    const why = cannotLower(node, { opset });
    if (why !== undefined) {
      refused.push(`${name}: ${why}`);
      return;
    }
    lowerAttentionPass({ opset }).run(g);
    expect(g.nodes.some(isAttention)).toBe(false);
    const data = readDataSet(dir);
    const feeds = Object.fromEntries(g.inputs.map((v, k) => [v.name, ortTensor(data.inputs[k]!.dtype, data.inputs[k]!.shape, data.inputs[k]!.toFloat64())]));
    const got = await runModel(exportOnnx(model), feeds);
    const tol = data.inputs[0]!.dtype === 'f16' ? 4e-3 : 1e-4;
    g.outputs.forEach((out, k) => {
      const want = data.outputs[k]!.toFloat64();
      const actual = ortValues(got[out.name]!);
      expect([...got[out.name]!.dims], `${name} ${out.name} shape`).toEqual([...data.outputs[k]!.shape]);
      const bad: string[] = [];
      want.forEach((w, t) => {
        const a = actual[t]!;
        const ok = Number.isNaN(w) ? Number.isNaN(a) : !Number.isFinite(w) ? a === w : Math.abs(a - w) <= tol + tol * Math.abs(w);
        if (!ok && bad.length < 3) bad.push(`[${t}] ${a}, stored ${w}`);
      });
      expect(bad, `${name} output ${out.name}`).toEqual([]);
    });
  }, 60_000);

  it('no case is refused', () => {
    expect(refused).toEqual([]);
  });
});
