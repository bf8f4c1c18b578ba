// ONNX backend node tests `test_flexattention_*_expanded_ver26` (ONNX's FlexAttention function spelled in plain
// ops, opset 26) through DECOMPOSED_RULES. The function's spelling differs from the Attention function's: it
// repeats K and V over the query heads (Unsqueeze, Expand, Reshape) even for as many heads, scales K by
// sqrt(scale) after that repeat and under the Transpose, and in fp16 casts the repeated V to the softmax's
// fp32. Each case must lift to one attnopt::Attention with the fused twin's head counts and scale, and the lifted
// graph, lowered back to standard ops at opset 26 and run in onnxruntime on the stored inputs, must reproduce the
// stored outputs (ONNX's reference, not ours): fp32 |got - want| <= 1e-4 + 1e-4 |want|; fp16 4e-3 + 4e-3 |want|.
// Two must stay as written, each for a stated reason: prob_mod changes the probabilities after the Softmax, and
// fp16 multiplies the fp32 probabilities by V cast to fp32 (attnopt::Attention multiplies in Q's type).

import fs from 'node:fs';
import path from 'node:path';
import { attentionParams, isAttention } from '@attnopt/ir';
import { exportOnnx, importOnnx } from '@attnopt/onnx';
import { compareArrays } from '@attnopt/reference';
import { attrFloat, rewritePass } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { lowerAttentionPass } from '../src/lower/index.js';
import { DECOMPOSED_RULES } from '../src/recognize/decomposed/index.js';
import { NODE_TESTS, readDataSet } from './helpers/node-tests.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

const cases = fs
  .readdirSync(NODE_TESTS)
  .filter((n) => n.startsWith('test_flexattention_') && n.endsWith('_expanded_ver26'))
  .sort();

/** Cases that are not one attention site as attnopt::Attention computes it, with the rule's reason ('' for none). */
const NOT_ATTENTION: Readonly<Record<string, string>> = {
  test_flexattention_prob_mod_expanded_ver26: '',
  test_flexattention_fp16_expanded_ver26: "V is cast by node Cast -> %FlexAttention_test_flexattention_fp16_expanded_function_VSp after its heads are repeated",
};

describe('ONNX FlexAttention _expanded node tests through DECOMPOSED_RULES', () => {
  it('finds the cases', () => expect(cases.length).toBe(11));

  it.each(cases)('%s', async (name) => {
    const dir = path.join(NODE_TESTS, name);
    const model = importOnnx(path.join(dir, 'model.onnx'));
    const g = model.graph;
    const result = rewritePass('recognize-decomposed', DECOMPOSED_RULES).run(g);
    const sites = g.nodes.filter(isAttention);
    const why = NOT_ATTENTION[name];
    if (why !== undefined) {
      expect(sites).toHaveLength(0);
      if (why !== '') expect(result.notes.map((n) => n.message).join('; ')).toContain(why);
      return;
    }
    expect(sites, result.notes.map((n) => n.message).join('; ')).toHaveLength(1);
    const params = attentionParams(sites[0]!);

    // the fused twin's node says the heads and the scale (default 1 / sqrt(head size))
    const twin = importOnnx(path.join(NODE_TESTS, name.replace(/_expanded_ver26$/, ''), 'model.onnx')).graph;
    const flex = twin.nodes.find((n) => n.op === 'FlexAttention')!;
    const [q, k] = [twin.inputs[0]!, twin.inputs[1]!].map((v) => (v.type?.kind === 'tensor' ? v.type.shape : []));
    expect(params.numHeads).toBe(q![1]);
    expect(params.kvNumHeads).toBe(k![1]);
    expect(params.headDim).toBe(q![3]);
    const scale = attrFloat(flex, 'scale') ?? 1 / Math.sqrt(Number(q![3]));
    expect(params.scale).toBeCloseTo(scale, 6);

    lowerAttentionPass({ opset: 26 }).run(g);
    expect(g.nodes.some(isAttention)).toBe(false);
    const data = readDataSet(dir);
    const feeds = Object.fromEntries(g.inputs.filter((v) => !v.initializer).map((v, i) => [v.name, ortTensor(data.inputs[i]!.dtype, [...data.inputs[i]!.shape], data.inputs[i]!.toFloat64())]));
    const outs = await runModel(exportOnnx(model), feeds);
    const tol = data.inputs[0]!.dtype === 'f16' ? 4e-3 : 1e-4;
    g.outputs.forEach((out, i) => {
      const got = outs[out.name]!;
      expect([...got.dims]).toEqual([...data.outputs[i]!.shape]);
      const cmp = compareArrays(ortValues(got), data.outputs[i]!.toFloat64(), { atol: tol, rtol: tol });
      expect(cmp.mismatches, `${name} ${out.name}`).toEqual([]);
    });
  });
});
