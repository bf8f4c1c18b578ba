// ONNX backend node tests `test_flexattention_*` (ONNX's FlexAttention node, ai.onnx.preview, opset 26) through
// FUSED_RULES: the node is lifted through its own body (flex-body.ts) by the decomposed rule. Each case must
// lift to one attnopt::Attention with the node's head counts, head size and scale (default 1 / sqrt(head size)),
// and the lifted graph, lowered to standard ops at opset 26 and run in onnxruntime on the stored inputs, must
// reproduce the stored outputs (ONNX's reference, not ours): fp32 and fp64 |got - want| <= 1e-4 + 1e-4 |want|.
// Two stay as written, each for a stated reason: prob_mod changes the probabilities after the Softmax, and fp16
// multiplies the fp32 probabilities by V cast to fp32 (attnopt::Attention multiplies in Q's type). A site put
// back (unliftSite) is the FlexAttention node again: the model exports byte for byte as imported.

import fs from 'node:fs';
import path from 'node:path';
import { attentionParams, isAttention } from '@attnopt/ir';
import { exportOnnx, importOnnx } from '@attnopt/onnx';
import { compareArrays } from '@attnopt/reference';
import { attrFloat, rewritePass } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { lowerAttentionPass } from '../src/lower/index.js';
import { FUSED_RULES } from '../src/recognize/fused/index.js';
import { unliftSite } from '../src/recognize/unlift.js';
import { NODE_TESTS, readDataSet } from './helpers/node-tests.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

const cases = fs
  .readdirSync(NODE_TESTS)
  .filter((n) => n.startsWith('test_flexattention') && !n.endsWith('_expanded_ver26'))
  .sort();

/** Cases that stay FlexAttention nodes, with the reason the rule gives. */
const NOT_LIFTED: Readonly<Record<string, RegExp>> = {
  test_flexattention_prob_mod: /its body \(the modifier graphs written out\) is not lifted: the Softmax output does not reach a MatMul with V \(uses: Mul\)/,
  test_flexattention_fp16: /f16 inputs: FlexAttention multiplies its f32 probabilities by V cast to f32/,
};

describe('ONNX FlexAttention node tests through FUSED_RULES', () => {
  it('finds the cases', () => expect(cases.length).toBe(11));

  it.each(cases)('%s', async (name) => {
    const dir = path.join(NODE_TESTS, name);
    const file = path.join(dir, 'model.onnx');
    const model = importOnnx(file);
    const g = model.graph;
    const flex = g.nodes.find((n) => n.op === 'FlexAttention')!;
    const [q, k] = [g.inputs[0]!, g.inputs[1]!].map((v) => (v.type?.kind === 'tensor' ? v.type.shape : []));
    const result = rewritePass('recognize-fused', FUSED_RULES).run(g);
    const notes = result.notes.map((n) => n.message).join('; ');
    const sites = g.nodes.filter(isAttention);
    const why = NOT_LIFTED[name];
    if (why !== undefined) {
      expect(sites).toHaveLength(0);
      expect(notes).toMatch(why);
      return;
    }
    expect(sites, notes).toHaveLength(1);
    const params = attentionParams(sites[0]!);
    expect(params.numHeads).toBe(q![1]);
    expect(params.kvNumHeads).toBe(k![1]);
    expect(params.headDim).toBe(q![3]);
    expect(params.scale).toBeCloseTo(attrFloat(flex, 'scale') ?? 1 / Math.sqrt(Number(q![3])), 6);

    lowerAttentionPass({ opset: 26 }).run(g);
    expect(g.nodes.some(isAttention)).toBe(false);
    const data = readDataSet(dir);
    const feeds = Object.fromEntries(g.inputs.filter((v) => !v.initializer).map((v, i) => [v.name, ortTensor(data.inputs[i]!.dtype, [...data.inputs[i]!.shape], data.inputs[i]!.toFloat64())]));
    const outs = await runModel(exportOnnx(model), feeds);
    g.outputs.forEach((out, i) => {
      const got = outs[out.name]!;
      expect([...got.dims]).toEqual([...data.outputs[i]!.shape]);
      const cmp = compareArrays(ortValues(got), data.outputs[i]!.toFloat64(), { atol: 1e-4, rtol: 1e-4 });
      expect(cmp.mismatches, `${name} ${out.name}`).toEqual([]);
    });
  });

  it.each(cases.filter((n) => NOT_LIFTED[n] === undefined))('%s: the site put back is the FlexAttention node, byte for byte', (name) => {
    const file = path.join(NODE_TESTS, name, 'model.onnx');
    const model = importOnnx(file);
    rewritePass('recognize-fused', FUSED_RULES).run(model.graph);
    const site = model.graph.nodes.find(isAttention)!;
    expect(unliftSite(site)).toBe(true);
    expect(Buffer.from(exportOnnx(model)).equals(Buffer.from(exportOnnx(importOnnx(file))))).toBe(true);
  });
});
