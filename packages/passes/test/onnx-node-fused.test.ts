// ONNX backend node tests of Attention (opset 23/24), through import -> FUSED_RULES -> one attnopt::Attention
// -> referenceAttention on the stored inputs, which must reproduce every stored output.
// fp32: |got - want| <= 1e-4 + 1e-4 |want|. fp16 (the stored outputs were computed in fp16 by numpy):
// |got - want| <= 4e-3 + 4e-3 |want|, about 8 fp16 ulps. NaN and +-Inf must match exactly.

import fs from 'node:fs';
import path from 'node:path';
import { AttentionInput, attentionParams, isAttention, type Tensor } from '@attnopt/ir';
import { importOnnx } from '@attnopt/onnx';
import { compareArrays, referenceAttention, type ReferenceInputs, type Tensor64 } from '@attnopt/reference';
import { rewritePass } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { FUSED_RULES } from '../src/recognize/fused/index.js';
import { NODE_TESTS, readDataSet } from './helpers/node-tests.js';

const cases = fs
  .readdirSync(NODE_TESTS)
  .filter((n) => n.startsWith('test_attention_') && !n.endsWith('_expanded'))
  .sort();

const t64 = (t: Tensor): Tensor64 => ({ shape: [...t.shape], data: t.toFloat64() });

describe('ONNX Attention node tests through FUSED_RULES', () => {
  const errors: { name: string; err: number }[] = [];
  it('finds the cases', () => expect(cases.length).toBe(76));

  it.each(cases)('%s', (name) => {
    const dir = path.join(NODE_TESTS, name);
    const model = importOnnx(path.join(dir, 'model.onnx'));
    const g = model.graph;
    const result = rewritePass('recognize-fused', FUSED_RULES).run(g);
    expect(result.changed).toBe(true);
    const attention = g.nodes.filter(isAttention);
    expect(attention).toHaveLength(1);
    expect(g.nodes).toHaveLength(1);
    const node = attention[0]!;
    const params = attentionParams(node);
    const data = readDataSet(dir);
    const byValue = new Map(g.inputs.map((v, k) => [v, data.inputs[k]!]));
    const input = (slot: number) => (node.inputs[slot] ? byValue.get(node.inputs[slot]!) : undefined);
    const bias = input(AttentionInput.bias);
    const inputs: ReferenceInputs = {
      q: t64(input(0)!),
      k: t64(input(1)!),
      v: t64(input(2)!),
      ...(bias ? { bias: bias.dtype === 'bool' ? { shape: [...bias.shape], data: Uint8Array.from(bias.toFloat64()) } : t64(bias) } : {}),
      ...(input(4) ? { pastKey: t64(input(4)!), pastValue: t64(input(5)!) } : {}),
      ...(input(6) ? { kvLength: input(6)!.toFloat64() } : {}),
    };
    const got = referenceAttention(params, inputs);
    const slots = [got.y, got.presentKey, got.presentValue, got.scores];
    const fp16 = input(0)!.dtype === 'f16';
    const tol = fp16 ? 4e-3 : 1e-4;
    g.outputs.forEach((out, k) => {
      const slot = node.outputs.indexOf(out);
      expect(slot, `${name}: output ${out.name} comes from the Attention node`).toBeGreaterThanOrEqual(0);
      const want = data.outputs[k]!;
      const actual = slots[slot]!;
      expect(actual.shape).toEqual([...want.shape]);
      const cmp = compareArrays(actual.data, want.toFloat64(), { atol: tol, rtol: tol });
      expect(cmp.mismatches, `${name} output ${out.name}`).toEqual([]);
      errors.push({ name: `${name}:${out.name}${fp16 ? ' (fp16)' : ''}`, err: cmp.maxAbsError });
    });
  });

  it('reports the largest errors', () => {
    const fp32 = errors.filter((e) => !e.name.endsWith('(fp16)'));
    const top = [...errors].sort((a, b) => b.err - a.err).slice(0, 3);
    console.log(
      `node tests: ${errors.length} outputs; max fp32 error ${Math.max(...fp32.map((e) => e.err)).toExponential(2)}; largest: ${top.map((t) => `${t.name} ${t.err.toExponential(2)}`).join(', ')}`,
    );
  });
});
