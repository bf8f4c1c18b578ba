// The ONNX backend node tests of the corpus (onnx-node-tests/): every model the executor plans (the
// `_expanded` attention tests spelled in plain ops at opsets 23/24, the softmax and matmul tests) run on
// the stored inputs and compared with the stored outputs (computed by ONNX's reference implementation).
// Tolerance: |executor - expected| <= 1e-4 + 1e-4 |expected| (float16 models: 1e-2 + 1e-2 |expected|),
// NaN/Inf identical. The models the executor refuses are listed and must be refused at plan time.
// The fused `test_attention_*` models run after recognition (ONNX Attention -> attnopt::Attention, run by the
// generated kernels); those that read the qk_matmul_output (scores) must be refused at plan time.

import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { type Graph, type Tensor } from '@attnopt/ir';
import { decodeMessage, importOnnx, type TensorProto, tensorFromProto } from '@attnopt/onnx';
import { recognizePass } from '@attnopt/passes';
import { isAttention } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { type ExecTensor, fromIrTensor, planGraph, runGraph, UnsupportedOpsError } from '../src/index.js';
import { compareOutputs } from './executor-ort.js';

const DIR = fileURLToPath(new URL('../../../../shared/fixtures/onnx/onnx-node-tests', import.meta.url));
/** Ops the executor does not run: their models are expected to be refused by planGraph. */
const REFUSED_OPS = /^(Attention|Scan|RotaryEmbedding|LinearAttention|FlexAttention)$/;

function readPb(file: string): Tensor {
  const proto = decodeMessage<TensorProto>(fs.readFileSync(file), 'TensorProto');
  return tensorFromProto(proto, {
    fail: (problem) => {
      throw new Error(`${file}: ${problem}`);
    },
  });
}

function dataSet(dir: string, prefix: string): ExecTensor[] {
  const data = path.join(dir, 'test_data_set_0');
  return fs
    .readdirSync(data)
    .filter((f) => f.startsWith(prefix))
    .sort((a, b) => Number(a.slice(prefix.length, -3)) - Number(b.slice(prefix.length, -3)))
    .map((f) => fromIrTensor(readPb(path.join(data, f)), f));
}

/** Runs `graph` on the folder's stored inputs; its outputs must match the stored ones. Returns the max abs error. */
async function expectStoredOutputs(dir: string, graph: Graph, opset: number): Promise<number> {
  const inputs = graph.inputs.filter((v) => !v.initializer);
  const given = dataSet(dir, 'input_');
  const feeds = Object.fromEntries(inputs.slice(0, given.length).map((v, k) => [v.name, given[k]!]));
  const outputs = await runGraph(graph, feeds, { opset });
  const expected = dataSet(dir, 'output_');
  const want: Record<string, ExecTensor> = Object.fromEntries(graph.outputs.map((v, k) => [v.name, expected[k]!]));
  const tol = Object.values(want).some((t) => t.dtype === 'f16') ? 1e-2 : 1e-4;
  const cmp = compareOutputs(outputs, want, tol, tol);
  expect(cmp.mismatches, path.basename(dir)).toEqual([]);
  return cmp.maxAbsError;
}

const dirs = fs.readdirSync(DIR).filter((d) => fs.existsSync(path.join(DIR, d, 'model.onnx'))).sort();

describe('executor on the ONNX node tests', () => {
  const ran: string[] = [];
  const refused: string[] = [];
  let worst = 0;

  it.each(dirs)('%s', async (name) => {
    const dir = path.join(DIR, name);
    const model = importOnnx(path.join(dir, 'model.onnx'));
    const opset = Number(model.proto.opsetImport?.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version);
    const graph = model.graph;
    const ops = new Set([...graph.allNodes()].map((n) => n.op));
    if ([...ops].some((op) => REFUSED_OPS.test(op))) {
      expect(() => planGraph(graph, { opset })).toThrow(UnsupportedOpsError);
      refused.push(name);
      return;
    }
    worst = Math.max(worst, await expectStoredOutputs(dir, graph, opset));
    ran.push(name);
  });

  it('runs every model whose ops it supports', () => {
    console.log(`onnx-node-tests: ${ran.length} models match the stored outputs (max abs error ${worst.toExponential(2)}); ${refused.length} refused at plan time (${[...new Set(refused.map((r) => r.replace(/_expanded$/, '')))].length} distinct)`);
    expect(ran.length + refused.length).toBe(dirs.length);
    expect(ran.length).toBeGreaterThanOrEqual(100);
  });
});

describe('fused ONNX Attention node tests after recognition', () => {
  const fused = dirs.filter((d) => d.startsWith('test_attention_') && !d.endsWith('_expanded'));
  const ran: string[] = [];
  const refused: string[] = [];
  let worst = 0;

  it.each(fused)('%s', async (name) => {
    const dir = path.join(DIR, name);
    const model = importOnnx(path.join(dir, 'model.onnx'));
    const opset = Number(model.proto.opsetImport?.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version);
    const graph = model.graph;
    recognizePass({ explain: false }).run(graph);
    expect(graph.nodes.filter(isAttention).length).toBe(1);
    if (graph.outputs.some((v) => v.name === 'qk_matmul_output')) {
      expect(() => planGraph(graph, { opset })).toThrow(/scores output is not produced/);
      refused.push(name);
      return;
    }
    worst = Math.max(worst, await expectStoredOutputs(dir, graph, opset));
    ran.push(name);
  });

  it('runs every fused model without a scores output', () => {
    console.log(`fused Attention node tests: ${ran.length} match the stored outputs (max abs error ${worst.toExponential(2)}); ${refused.length} refused (scores output)`);
    expect(ran.length + refused.length).toBe(fused.length);
  });
});
