// The library surface another compiler builds on: analyze, compile, decide and explain, on real models.

import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { nystrom, specAttr } from '@attnopt/ir';
import { analyze, attentionSites, compile, decide, explain, loadModel, optimize } from '../src/index.js';

const fixtures = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../../shared/fixtures/onnx');
const gpt2 = resolve(fixtures, 'torch-exports/gpt2_causal_attn_where_op17_dyn.onnx');
const tinyBert = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../examples/tiny-bert/model.onnx');

describe('analyze', () => {
  test('proves the tril mask of GPT-2 causal, exactly, and counts the kept pairs', () => {
    const { sites } = analyze(loadModel(gpt2).graph, { seqLen: 10 });
    expect(sites).toHaveLength(1);
    expect(sites[0]).toMatchObject({ id: 'site0', recognized: 'dense', spec: 'causal', proven: true, residualBias: null, heads: 4, headDim: 16 });
    expect(sites[0]!.keptFraction).toBe(55 / 100); // causal keeps 1 + 2 + ... + 10 of 10 x 10
  });

  test('a model without attention has no sites; a bad seqLen is refused', () => {
    const graph = loadModel(resolve(fixtures, 'onnx-node-tests/test_softmax_large_number/model.onnx')).graph;
    expect(analyze(graph).sites).toEqual([]);
    expect(() => analyze(graph, { seqLen: 0 })).toThrow('seqLen must be an integer >= 1');
  });
});

describe('compile', () => {
  test('WGSL: the program and a manifest entry of what it computes', () => {
    const model = loadModel(gpt2);
    analyze(model.graph);
    const k = compile(attentionSites(model.graph)[0]!, { target: 'wgsl' });
    expect(k.files.map((f) => f.name)).toEqual(['site0.wgsl']);
    expect(String(k.files[0]!.contents)).toContain('fn main(');
    expect(k.manifest).toMatchObject({ site: 'site0', target: 'wgsl', spec: 'causal', heads: 4, kvHeads: 4, headDim: 16, layout: 'bhsd', dtype: 'f32', entryPoint: 'main' });
    expect(k.manifest.shapes.q).toBe('[batch, 4, seq, 16]'); // the model's own dim names, carried by the shape engine
  });

  test('a low-rank form has no kernel yet: the error names the site, the node and the problem', () => {
    const model = loadModel(gpt2);
    analyze(model.graph);
    const site = attentionSites(model.graph)[0]!;
    site.node.attrs.set('spec', specAttr(nystrom(8)));
    expect(() => compile(site, { target: 'cpu' })).toThrow(/^site0 \(node .*\): no CPU kernel: the low-rank form nystrom\(landmarks=8\) has no generated kernel yet$/);
  });

  test('a node that is not Attention is refused', () => {
    const model = loadModel(gpt2);
    expect(() => compile(model.graph.nodes[0]!, { target: 'wgsl' })).toThrow('not an attnopt::Attention node');
  });
});

describe('decide and explain', () => {
  test.each([
    ['GPT-2 on attnopt-cpu', gpt2, 'attnopt-cpu'],
    ['tiny-bert on onnxruntime-cpu', tinyBert, 'onnxruntime-cpu'],
  ] as const)('%s: decide chooses exactly what optimize chooses', async (_, path, target) => {
    const options = { maxError: 0.05, seqLen: 64, target };
    const decided = await decide(loadModel(path), options);
    const optimized = await optimize(loadModel(path), options);
    expect(decided.sites.map((s) => [s.id, s.chosen, s.flopsBefore, s.flopsAfter])).toEqual(
      optimized.sites.map((s) => [s.id, s.chosen, s.flopsBefore, s.flopsAfter]),
    );
  });

  test('a budget of 0 tries nothing and says so in words', async () => {
    const e = await explain(loadModel(gpt2), { maxError: 0 });
    expect(e.sites[0]).toMatchObject({ rewritten: true, exact: true, recognized: 'dense', proven: 'causal', chosen: 'causal', tried: [] });
    expect(e.sites[0]!.why[e.sites[0]!.why.length - 1]).toBe('kept causal: the budget is 0: only exact rewrites are allowed, so no approximate form was tried');
  });
});
