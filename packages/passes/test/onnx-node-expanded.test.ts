// ONNX backend node tests `test_attention_*_expanded` (the fused Attention spelled in plain ops) through
// DECOMPOSED_RULES: each lifts to one attnopt::Attention whose params equal those FUSED_RULES maps from the
// fused twin, up to the documented differences (the expanded graph reshapes 3D inputs itself, so the lifted
// layout is bhsd; causal and nonpad masks are computed by ops and carried in the bias, so the spec is dense;
// a qk_matmul_output stays computed by the original nodes, so there is no scoresMode).
// Numerics: the lifted node's inputs are intermediate values of the expanded graph; they are made graph
// outputs, the graph is lowered and run in onnxruntime, and referenceAttention on those values must reproduce
// the stored Y: fp32 |got - want| <= 1e-4 + 1e-4 |want|; fp16 4e-3 + 4e-3 |want| (about 8 fp16 ulps).

import fs from 'node:fs';
import path from 'node:path';
import { AttentionInput, type AttentionParams, attentionParams, isAttention, Node, Tensor, tensorAttr, Value } from '@attnopt/ir';
import { exportOnnx, importOnnx } from '@attnopt/onnx';
import { compareArrays, referenceAttention, type ReferenceInputs, type Tensor64 } from '@attnopt/reference';
import { replaceMatch, rewritePass } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { lowerAttentionPass } from '../src/lower/index.js';
import { inferDtype } from '../src/shape-inference/shapes.js';
import { DECOMPOSED_RULES } from '../src/recognize/decomposed/index.js';
import { FUSED_RULES } from '../src/recognize/fused/index.js';
import { NODE_TESTS, readDataSet } from './helpers/node-tests.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

const cases = fs
  .readdirSync(NODE_TESTS)
  .filter((n) => n.startsWith('test_attention_') && n.endsWith('_expanded'))
  .sort();

/** Expanded cases that are not one exact Attention node, with the reason (checked exactly). */
const NOT_ONE_NODE: Readonly<Record<string, string>> = {};

/** Cases whose expanded model onnxruntime 1.30 cannot load (so the site inputs cannot be computed there). */
const ORT_CANNOT_RUN: Readonly<Record<string, string>> = {
  test_attention_24_qk_matmul_output_mode3_softmax_precision_expanded: 'onnxruntime rejects the original model (type error in its own inserted fp16/fp32 precision cast)',
};

/** The params an expanded twin can carry: what the ops spell, not how the fused node was configured. */
function comparable(p: AttentionParams) {
  return { numHeads: p.numHeads, kvNumHeads: p.kvNumHeads, headDim: p.headDim, vHeadDim: p.vHeadDim, softcap: p.softcap };
}

describe('ONNX Attention _expanded node tests through DECOMPOSED_RULES', () => {
  const errors: { name: string; err: number }[] = [];
  const misses: Record<string, string> = {};
  const unrunnable: string[] = [];
  it('finds the cases', () => expect(cases.length).toBe(76));

  it.each(cases)('%s', async (name) => {
    const dir = path.join(NODE_TESTS, name);
    const model = importOnnx(path.join(dir, 'model.onnx'));
    const g = model.graph;
    const result = rewritePass('recognize-decomposed', DECOMPOSED_RULES).run(g);
    const attention = g.nodes.filter(isAttention);
    if (attention.length !== 1) {
      misses[name] = result.notes.map((n) => n.message).join('; ') || `${attention.length} sites`;
      expect(NOT_ONE_NODE[name], `${name}: ${misses[name]}`).toBeDefined();
      return;
    }
    const node = attention[0]!;
    const params = attentionParams(node);

    const twin = importOnnx(path.join(NODE_TESTS, name.replace(/_expanded$/, ''), 'model.onnx')).graph;
    rewritePass('recognize-fused', FUSED_RULES).run(twin);
    const fused = attentionParams(twin.nodes.find(isAttention)!);
    expect(comparable(params)).toEqual(comparable(fused));
    expect(params.scale).toBeCloseTo(fused.scale, 6);
    expect(params.layout).toBe('bhsd');

    // the Attention node's inputs, computed by the expanded graph itself in onnxruntime
    const ins = [...node.inputs];
    const slots = ins.map((v, k) => (v ? { k, v } : undefined)).filter((x) => x !== undefined);
    const extra = slots.filter(({ v }) => !g.inputs.includes(v) && !g.outputs.includes(v)).map(({ v }) => v);
    g.outputs.push(...extra);
    const opset = Number(model.proto.opsetImport?.find((o) => (o.domain ?? '') === '')?.version ?? 23);
    lowerAttentionPass({ opset }).run(g);
    const data = readDataSet(dir);
    const feeds = Object.fromEntries(g.inputs.filter((v) => !v.initializer).map((v, k) => [v.name, ortTensor(data.inputs[k]!.dtype, [...data.inputs[k]!.shape], data.inputs[k]!.toFloat64())]));
    let outs;
    try {
      outs = await runModel(exportOnnx(model), feeds);
    } catch (e) {
      unrunnable.push(name);
      expect(ORT_CANNOT_RUN[name], `${name}: ${(e as Error).message}`).toBeDefined();
      return;
    }
    const value = (slot: number): { t: Tensor64; bool: boolean } | undefined => {
      const v = ins[slot];
      if (!v) return undefined;
      const t = outs[v.name] ?? feeds[v.name]!;
      return { t: { shape: [...t.dims], data: ortValues(t) }, bool: t.type === 'bool' };
    };
    const bias = value(AttentionInput.bias);
    const inputs: ReferenceInputs = {
      q: value(0)!.t,
      k: value(1)!.t,
      v: value(2)!.t,
      ...(bias ? { bias: bias.bool ? { shape: bias.t.shape, data: Uint8Array.from(bias.t.data) } : bias.t } : {}),
    };
    const got = referenceAttention(params, inputs);

    // the stored Y: the expanded graph with the Attention node replaced by a constant holding the reference's
    // Y (the nodes after the site, e.g. the reshape back to 3D, run in onnxruntime)
    const model2 = importOnnx(path.join(dir, 'model.onnx'));
    rewritePass('recognize-decomposed', DECOMPOSED_RULES).run(model2.graph);
    const att2 = model2.graph.nodes.find(isAttention)!;
    const yDtype = inferDtype(att2.outputs[0]) ?? data.inputs[0]!.dtype;
    const cval = new Value(`${att2.outputs[0]!.name}__reference`);
    const cnode = new Node({ op: 'Constant', outputs: [cval], attrs: { value: tensorAttr(Tensor.fromValues(yDtype, got.y.shape, got.y.data)) } });
    replaceMatch(model2.graph, [att2], [att2.outputs[0]!], [cval], [cnode]);
    const out2 = await runModel(exportOnnx(model2), feeds);
    const fp16 = data.inputs[0]!.dtype === 'f16';
    const tol = fp16 ? 4e-3 : 1e-4;
    const yName = model2.graph.outputs[0]!.name;
    const want = data.outputs[0]!;
    const actual = out2[yName]!;
    expect([...actual.dims]).toEqual([...want.shape]);
    const cmp = compareArrays(ortValues(actual), want.toFloat64(), { atol: tol, rtol: tol });
    expect(cmp.mismatches, name).toEqual([]);
    errors.push({ name: `${name}${fp16 ? ' (fp16)' : ''}`, err: cmp.maxAbsError });
  });

  it('lists exactly the cases that are not one Attention node', () => {
    expect(misses).toEqual(NOT_ONE_NODE);
    expect(unrunnable.sort()).toEqual(Object.keys(ORT_CANNOT_RUN).sort());
    const fp32 = errors.filter((e) => !e.name.endsWith('(fp16)'));
    console.log(`expanded node tests: ${cases.length - Object.keys(misses).length}/${cases.length} lift to one Attention with the twin's params; ${errors.length} reproduce the stored Y; max fp32 error ${Math.max(0, ...fp32.map((e) => e.err)).toExponential(2)}; max fp16 error ${Math.max(0, ...errors.filter((e) => e.name.endsWith('(fp16)')).map((e) => e.err)).toExponential(2)}`);
  });
});
