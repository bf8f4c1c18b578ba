// Every PyTorch 1.13 export of the corpus (torch-exports/, 44 models: nn.MultiheadAttention, Transformer
// encoder/decoder layers, GPT-2, nanoGPT, BERT self-attention; opsets 14 and 17, static and dynamic shapes)
// run by the CPU executor and by onnxruntime on the same seeded inputs, on the graph as imported and on the
// graph after recognition (attention sites run by the generated kernels, wasm and js).
// Tolerance: |executor - onnxruntime| <= 1e-4 + 1e-4 |onnxruntime| element-wise, NaN/Inf identical.

import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { isAttention } from '@attnopt/ir';
import { importOnnx } from '@attnopt/onnx';
import { recognizePass } from '@attnopt/passes';
import { afterAll, describe, expect, it } from 'vitest';
import { runGraph } from '../src/index.js';
import { compareOutputs, type FeedSizes, runOrt, seededFeeds } from './executor-ort.js';

const DIR = fileURLToPath(new URL('../../../../shared/fixtures/onnx/torch-exports', import.meta.url));
const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.onnx')).sort();
const ATOL = 1e-4;
const RTOL = 1e-4;

const summary: { file: string; original: number; recognized: number; sites: number }[] = [];
afterAll(() => {
  const worst = Math.max(...summary.flatMap((s) => [s.original, s.recognized]));
  console.log(`torch-exports: ${summary.length}/${files.length} models match onnxruntime; max abs error ${worst.toExponential(2)}`);
  for (const s of summary) console.log(`  ${s.file}: original ${s.original.toExponential(2)}, recognized (${s.sites} sites) ${s.recognized.toExponential(2)}`);
});

describe('executor vs onnxruntime on every torch-export', () => {
  it.each(files)('%s', async (file) => {
    const full = path.join(DIR, file);
    const bytes = fs.readFileSync(full);
    const model = importOnnx(full);
    const opset = Number(model.proto.opsetImport?.find((o) => (o.domain ?? '') === '')?.version);
    const graph = model.graph;
    // odd sequence length for dynamic exports; some `_dyn` exports keep a static 128 x 128 causal mask
    let sizes: FeedSizes = { batch: 2, seq: 37 };
    let feeds = seededFeeds(graph, 7, sizes);
    let want;
    try {
      want = await runOrt(bytes, feeds);
    } catch {
      sizes = { batch: 2, seq: 128 };
      feeds = seededFeeds(graph, 7, sizes);
      want = await runOrt(bytes, feeds);
    }

    const original = compareOutputs(await runGraph(graph, feeds, { opset }), want, ATOL, RTOL);
    expect(original.mismatches, `${file} as imported`).toEqual([]);

    recognizePass({ explain: false }).run(graph);
    const sites = graph.nodes.filter(isAttention).length;
    expect(sites, 'attention sites recognized').toBeGreaterThan(0);
    let recognized = 0;
    for (const backend of ['wasm', 'js'] as const) {
      const cmp = compareOutputs(await runGraph(graph, feeds, { opset, attention: { backend } }), want, ATOL, RTOL);
      expect(cmp.mismatches, `${file} recognized, ${backend} kernels`).toEqual([]);
      recognized = Math.max(recognized, cmp.maxAbsError);
    }
    summary.push({ file, original: original.maxAbsError, recognized, sites });
  });
});
