// Decomposed attention of the corpus outside torch-exports and onnx-node-tests (which have their own tests:
// decomposed-torch, onnx-node-expanded): every model of ort-models, ort-generated and genai-models in which
// DECOMPOSED_RULES lift a site goes import -> DECOMPOSED_RULES -> lowerAttentionPass (at the model's opset)
// -> export, and the result must compute what the original computes: both run in onnxruntime (optimizations
// off) on the same seeded inputs. fp32 outputs: |lowered - original| <= 1e-5 (atol only); fp16 outputs: 4e-3
// abs + 4e-3 rel (about 8 fp16 ulps: both sides round every op to fp16, in a different order).
// Originals onnxruntime cannot run (ORT_CANNOT_RUN) and models whose sites lowering refuses (CANNOT_LOWER) are
// listed with a substring of the error, checked exactly.

import fs from 'node:fs';
import path from 'node:path';
import { isAttention } from '@attnopt/ir';
import { exportOnnx, importOnnx } from '@attnopt/onnx';
import { rewritePass } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { cannotLower, lowerAttentionPass } from '../src/lower/index.js';
import { DECOMPOSED_RULES } from '../src/recognize/decomposed/index.js';
import { FIXTURES } from './helpers/node-tests.js';
import { compareLowered, DEFAULT_SIZES, type InputSizes, randomInputs, runModel } from './helpers/ort.js';

const FOLDERS = ['ort-models', 'ort-generated', 'genai-models'];

/** Originals onnxruntime (CPU) cannot run on the seeded inputs: model -> a substring of its error. */
const ORT_CANNOT_RUN: Record<string, string> = {
  // an invalid model: Unsqueeze without axes at opset 13
  'ort-generated/models/attention_mask_no_cast.onnx': 'schema(::Unsqueeze:13)',
  // quantized projections whose B zero point onnxruntime's CPU MatMulInteger refuses
  'ort-models/onnxruntime/test/testdata/attention_past_state.u8s8.onnx': 'B zero point is not valid',
  'ort-models/onnxruntime/test/testdata/attention_past_state.u8u8.onnx': 'B zero point is not valid',
  // training graphs whose weights are graph inputs (a 250880-row embedding among them): no inputs are generated
  // (mlm_bert_e2e's loss op, SoftmaxCrossEntropyLossInternal, is not registered for inference either)
  'ort-models/onnxruntime/test/testdata/transform/computation_reduction/reshape/mlm_bert_e2e.onnx': 'weights are graph inputs',
  'ort-models/onnxruntime/test/testdata/transform/recompute/3layer_bloom_optimized_training.onnx': 'weights are graph inputs',
  'ort-models/onnxruntime/test/testdata/transform/computation_reduction/gather/gather_roberta_e2e.onnx': 'weights are graph inputs',
};

/** Generated inputs above this many elements are not made (graphs that take their weights as inputs). */
const MAX_INPUT_ELEMENTS = 1e7;

/** Models whose position table (8 rows) is shorter than the default past + seq: file -> input sizes. */
const FUSION = 'ort-models/onnxruntime/test/testdata/transform/fusion';
const SIZES: Record<string, InputSizes> = Object.fromEntries(
  ['attention_past_no_unidir', 'attention_past_unidir', 'gpt2_past_mask_one_layer', 'gpt2_past_one_layer'].map((m) => [
    `${FUSION}/${m}.onnx`,
    { ...DEFAULT_SIZES, seq: 3, past: 2 },
  ]),
);

/** Models whose lifted sites lowering refuses: model -> a substring of the reason. Checked exactly. */
const CANNOT_LOWER: Record<string, string> = {
  // opset 9 has no Range, which every lowering uses (optimize keeps such sites as the model wrote them)
  'ort-models/onnxruntime/test/testdata/transform/fusion/attention_int32_mask.onnx': 'opset 9 is below 11',
  'ort-models/onnxruntime/test/testdata/transform/fusion/attention_symbolic_batch.onnx': 'opset 9 is below 11',
};

function modelsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(FIXTURES, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...modelsUnder(rel));
    else if (e.name.endsWith('.onnx')) out.push(rel);
  }
  return out;
}

const files = FOLDERS.flatMap(modelsUnder).sort();

describe('decomposed attention of the corpus, lowered, against the original in onnxruntime', () => {
  const roundTrips: { file: string; sites: number; err: number; fp16: boolean }[] = [];
  const cannotRun = new Map<string, string>();
  const notLowered = new Map<string, string>();

  it.each(files)('%s', async (file) => {
    const full = path.join(FIXTURES, file);
    let model;
    try {
      model = importOnnx(full);
    } catch {
      return; // import failures are the coverage table's business (docs/recognition-coverage.md)
    }
    const g = model.graph;
    rewritePass('recognize-decomposed', DECOMPOSED_RULES).run(g);
    const sites = [...g.allNodes()].filter(isAttention).length;
    if (sites === 0) return;
    const elements = g.inputs.reduce((a, v) => a + (v.initializer || v.type?.kind !== 'tensor' ? 0 : (v.type.shape ?? []).reduce<number>((p, d) => p * (typeof d === 'number' ? d : 8), 1)), 0);
    if (elements > MAX_INPUT_ELEMENTS) {
      cannotRun.set(file, `weights are graph inputs: ${elements} input elements to generate`);
      return;
    }
    const feeds = randomInputs(importOnnx(full).graph, 3, SIZES[file] ?? DEFAULT_SIZES);
    let want;
    try {
      want = await runModel(full, feeds);
    } catch (e) {
      cannotRun.set(file, (e as Error).message.split('\n')[0]!);
      return;
    }
    const opsets = model.proto.opsetImport ?? [];
    const opset = Number(opsets.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version ?? 21);
    const refused = [...g.allNodes()].filter(isAttention).map((n) => cannotLower(n, { opset })).find((why) => why !== undefined);
    if (refused !== undefined) {
      notLowered.set(file, refused);
      return;
    }
    lowerAttentionPass({ opset }).run(g);
    const got = await runModel(exportOnnx(model), feeds);
    const cmp = compareLowered(got, want);
    const fp16 = cmp.fp16;
    roundTrips.push({ file, sites, err: cmp.maxAbsError, fp16 });
    expect(cmp.mismatches, `${file} (max abs error ${cmp.maxAbsError.toExponential(2)})`).toEqual([]);
  });

  it('runs and lowers every model with a lifted site but the documented ones', () => {
    expect([...cannotRun.keys()].sort()).toEqual(Object.keys(ORT_CANNOT_RUN).sort());
    for (const [k, why] of Object.entries(ORT_CANNOT_RUN)) expect(cannotRun.get(k), k).toContain(why);
    expect([...notLowered.keys()].sort()).toEqual(Object.keys(CANNOT_LOWER).sort());
    for (const [k, why] of Object.entries(CANNOT_LOWER)) expect(notLowered.get(k), k).toContain(why);
    expect(roundTrips.length).toBeGreaterThan(0);
    const max = (xs: typeof roundTrips) => Math.max(0, ...xs.map((r) => r.err)).toExponential(2);
    console.log(
      [
        `decomposed round trips vs original: ${roundTrips.length} models, ${roundTrips.reduce((a, r) => a + r.sites, 0)} sites; max abs error fp32 ${max(roundTrips.filter((r) => !r.fp16))}, fp16 ${max(roundTrips.filter((r) => r.fp16))}`,
        ...roundTrips.map((r) => `  ${r.file}: ${r.sites} sites, ${r.err.toExponential(2)}`),
        ...[...cannotRun].map(([f, why]) => `  original does not run: ${f}: ${why.slice(0, 100)}`),
        ...[...notLowered].map(([f, why]) => `  not lowered: ${f}: ${why}`),
      ].join('\n'),
    );
  });
});
