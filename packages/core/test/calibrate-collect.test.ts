// collectSiteTensors: the reference attention on each site's collected Q, K, V (+ bias) gives the site's
// collected output within 1e-4, and the lowered calibration model computes the original model's outputs.

import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import { loadModel, inspectModel, recognize } from '../src/index.js';
import { calibrationModel, collectSiteTensors, generateInputs } from '../src/calibrate/index.js';
import { referenceOfSample } from './helpers/site-reference.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const fixtures = resolve(here, '../../../../shared/fixtures/onnx');
const tinyBert = resolve(here, '../../../examples/tiny-bert/model.onnx');


async function checkModel(file: string, expectedSites: number) {
  const model = loadModel(file);
  recognize(model.graph);
  const report = inspectModel(loadModel(file));
  expect(report.sites).toHaveLength(expectedSites);
  const samples = generateInputs(model, { batch: 2, seqLen: 5, count: 2, seed: 7 });
  const sites = await collectSiteTensors(model, samples);
  expect(sites.map((s) => s.id)).toEqual(report.sites.map((s) => s.id));
  for (const site of sites) {
    expect(site.samples).toHaveLength(2);
    for (const s of site.samples) {
      const want = referenceOfSample(site.params, s);
      expect(want.shape).toEqual(s.y!.shape);
      let err = 0;
      want.data.forEach((x, k) => (err = Math.max(err, Math.abs(x - s.y!.data[k]!))));
      expect(err, `${file} ${site.id}`).toBeLessThan(1e-4);
      expect(s.dims.batch).toBe(2);
    }
  }
  // The lowered calibration model computes what the original model computes.
  const feeds = (i: number) => Object.fromEntries(Object.entries(samples[i]!).map(([n, t]) => [n, new ort.Tensor(t.dtype === 'f32' ? 'float32' : t.dtype === 'i64' ? 'int64' : t.dtype === 'bool' ? 'bool' : 'int32', t.data as never, [...t.shape])]));
  const opts = { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 } as const;
  const a = await ort.InferenceSession.create(file, opts) // the original model, as ONNX runtimes run it;
  const b = await ort.InferenceSession.create(calibrationModel(model).bytes, opts);
  const ya = await a.run(feeds(0));
  const yb = await b.run(feeds(0), a.outputNames);
  for (const name of a.outputNames) {
    const x = ya[name]!.data as Float32Array;
    const y = yb[name]!.data as Float32Array;
    let err = 0;
    x.forEach((v, k) => (err = Math.max(err, Math.abs(v - y[k]!))));
    expect(err, `${file} output ${name}`).toBeLessThan(1e-4);
  }
  await a.release();
  await b.release();
  return sites;
}

describe('collectSiteTensors', () => {
  test('torch export: GPT-2 causal attention', async () => {
    await checkModel(resolve(fixtures, 'torch-exports/gpt2_causal_attn_where_op17_dyn.onnx'), 1);
  });

  test('torch export: BERT self-attention with an additive mask', async () => {
    const sites = await checkModel(resolve(fixtures, 'torch-exports/bert_self_attn_additive_mask_op17_dyn.onnx'), 1);
    expect(sites[0]!.samples[0]!.bias).toBeDefined();
  });

  // models onnxruntime cannot run for calibration: nothing is run, each site says why it has no samples
  test.each([
    ['every site in a subgraph (a Sampling decoder)', 'transformers/tiny_gpt2_sampling.onnx', 5, 'inside a subgraph'],
    ['a model at opset 9 (no Range for the lowering)', 'transform/fusion/attention_int32_mask.onnx', 1, "the model's opset 9 is below 11"],
  ])('%s', async (_what, name, count, why) => {
    const model = loadModel(resolve(fixtures, 'ort-models/onnxruntime/test/testdata', name));
    recognize(model.graph);
    const sites = await collectSiteTensors(model, generateInputs(model, { seqLen: 4, count: 1 }));
    expect(sites).toHaveLength(count);
    for (const s of sites) {
      expect(s.samples).toEqual([]);
      expect(s.skipped).toContain(why);
    }
  });

  test('examples/tiny-bert (external data)', async () => {
    await checkModel(tinyBert, 2);
  });

  test('maxSamples stops reading, maxBytes fails with a clear message, bad samples name the input', async () => {
    const model = loadModel(resolve(fixtures, 'torch-exports/mha_self_op17_dyn.onnx'));
    recognize(model.graph);
    const samples = generateInputs(model, { count: 3 });
    const sites = await collectSiteTensors(model, samples, { maxSamples: 1 });
    expect(sites[0]!.samples).toHaveLength(1);
    await expect(collectSiteTensors(model, samples, { maxBytes: 100 })).rejects.toThrow(/sample 0: the collected site tensors take over 100 bytes \(maxBytes\)/);
    const name = Object.keys(samples[0]!)[0]!;
    const { [name]: _, ...missing } = samples[0]!;
    await expect(collectSiteTensors(model, [missing])).rejects.toThrow(new RegExp(`sample 0: input "${name}": missing`));
  });
});
