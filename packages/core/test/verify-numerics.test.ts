// verifyModels reads what onnxruntime computes as numbers, and judges the certificate on the models as written.
//   float16 outputs: onnxruntime-node hands them over as bit patterns; a fp16 decoder model (tiny Qwen, two GQA
//     sites, fp16 K/V caches) optimized under a wide budget must report, per output, the same max abs error on
//     onnxruntime as on attnopt's CPU executor (which decodes fp16 itself) within 2 fp16 ulps of the output's
//     largest magnitude, and stay within its certificate.
//   graph optimizations: a GPT-2 attention model whose trailing Add + LayerNormalization onnxruntime fuses into
//     SkipLayerNormalization when optimizations are on (the fused kernel rounds differently). Its reported
//     `originalDrift` must equal the difference measured here between the original run with optimizations off
//     and on; `asWrittenMaxAbsError` the difference of both models run with optimizations off; and the
//     certificate holds there.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { halfToFloat } from '@attnopt/ir';
import { generateInputs, loadModel, optimize, verifyModels, writeModel } from '../src/index.js';
import { toOrt } from '../src/calibrate/ort-tensor.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const FIXTURES = path.resolve(here, '../../../../shared/fixtures/onnx');
const QWEN = path.join(FIXTURES, 'genai-models/test/models/hf-internal-testing/tiny-qwen35-cuda/1d392aee_decoder.onnx');
const GPT2 = path.join(FIXTURES, 'ort-models/onnxruntime/test/python/transformers/test_data/models/gpt2_attention_opt_no_skiplayernorm.onnx');
// an approximate site needs a length where a cheaper form pays on the measured profile (256 tokens: at 128 none does,
// its lowering's nodes included) and a budget its random weights' diffuse heads meet (tightest bounds on the
// calibration data near 2 for the Qwen, near 34 for GPT-2): what this file tests is verify's numerics, not a budget
const SEQ_OF = (_file: string) => 256;
const BUDGET_OF = (file: string) => (file === QWEN ? 5 : 50);

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'attnopt-verify-numerics-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

async function optimizedFile(original: string, name: string): Promise<{ file: string; model: Awaited<ReturnType<typeof optimize>>['model'] }> {
  const SEQ = SEQ_OF(original);
  const samples = generateInputs(loadModel(original), { seed: 0, seqLen: SEQ });
  // an approximate site on these samples needs the statistical tier (forms held on the samples alone): verify's
  // numerics are what this file tests, not the tier
  const r = await optimize(loadModel(original), { maxError: BUDGET_OF(original), seqLen: SEQ, samples, allowStatistical: true });
  expect(r.sites.some((s) => !s.exact), `${name}: an approximate site, so the outputs differ`).toBe(true);
  const file = path.join(scratch, `${name}.onnx`);
  writeModel(file, r.model);
  return { file, model: r.model };
}

/** One output of a run in onnxruntime, decoded to numbers here (fp16 bit patterns through halfToFloat). */
async function runOriginal(file: string, level: 'disabled' | 'all', output: string, SEQ: number): Promise<Float64Array> {
  const session = await ort.InferenceSession.create(file, { graphOptimizationLevel: level, logSeverityLevel: 3 });
  const sample = generateInputs(loadModel(file), { seed: 1, seqLen: SEQ })[0]!;
  const out = (await session.run(Object.fromEntries(Object.entries(sample).map(([k, t]) => [k, toOrt(t, k)]))))[output]!;
  await session.release();
  return out.type === 'float16' ? Float64Array.from(out.data as Uint16Array, halfToFloat) : Float64Array.from(out.data as Float32Array);
}

const maxAbsDiff = (x: Float64Array, y: Float64Array) => x.reduce((m, v, k) => Math.max(m, Math.abs(v - y[k]!)), 0);

describe('verifyModels numerics', () => {
  it('decodes float16 outputs: onnxruntime and the CPU executor report the same errors', async () => {
    const { file, model } = await optimizedFile(QWEN, 'qwen');
    const inputs = generateInputs(loadModel(QWEN), { seed: 1, seqLen: SEQ_OF(QWEN) });
    const onOrt = await verifyModels(QWEN, file, model, inputs);
    const onCpu = await verifyModels(QWEN, file, model, inputs, { runtime: 'attnopt-cpu' });
    const present = await runOriginal(QWEN, 'disabled', 'present.1.key', SEQ_OF(QWEN));
    const ulp = 2 ** -10 * Math.max(...present.map(Math.abs));
    for (const o of onOrt.outputs) {
      const c = onCpu.outputs.find((x) => x.name === o.name)!;
      expect(Math.abs(o.maxAbsError - c.maxAbsError), o.name).toBeLessThanOrEqual(2 * ulp);
    }
    const key = onOrt.outputs.find((o) => o.name === 'present.1.key')!;
    expect(key.rounding).toBe(4e-3); // a float16 output
    expect(key.maxAbsError).toBeGreaterThan(0); // downstream of the approximate site
    expect(onOrt.withinCertified).toBe(true);
  });

  it('checks the certificate on the models as written and reports the drift of onnxruntime optimizations', async () => {
    const { file, model } = await optimizedFile(GPT2, 'gpt2');
    const inputs = generateInputs(loadModel(GPT2), { seed: 1, seqLen: SEQ_OF(GPT2) });
    const report = await verifyModels(GPT2, file, model, inputs);
    const out = report.outputs.find((o) => o.name === 'output')!;
    const [writtenOriginal, deployedOriginal, writtenOptimized] = await Promise.all([
      runOriginal(GPT2, 'disabled', 'output', SEQ_OF(GPT2)),
      runOriginal(GPT2, 'all', 'output', SEQ_OF(GPT2)),
      runOriginal(file, 'disabled', 'output', SEQ_OF(GPT2)),
    ]);
    const drift = maxAbsDiff(writtenOriginal, deployedOriginal);
    expect(drift).toBeGreaterThan(1e-4); // the fused SkipLayerNormalization moves the original itself
    expect(out.originalDrift).toBe(drift);
    expect(out.asWrittenMaxAbsError).toBe(maxAbsDiff(writtenOriginal, writtenOptimized));
    expect(out.asWrittenMaxAbsError!).toBeLessThan(out.maxAbsError);
    expect(report.withinCertified).toBe(true);
    console.log(
      `gpt2 attention at maxError ${BUDGET_OF(GPT2)} (certified ${report.certified?.toExponential(2)}): deployed error ${out.maxAbsError.toExponential(2)}, ` +
        `as written ${out.asWrittenMaxAbsError!.toExponential(2)}, onnxruntime drift of the original ${drift.toExponential(2)}`,
    );
  });

  it('refuses a number of timed runs that is not a whole number >= 1, before running anything', async () => {
    const inputs = generateInputs(loadModel(GPT2), { seed: 1, seqLen: SEQ_OF(GPT2) });
    for (const runs of [0, 1.5, -1]) {
      await expect(verifyModels(GPT2, GPT2, loadModel(GPT2), inputs, { runs })).rejects.toThrow(`runs must be a whole number >= 1, got ${runs}`);
    }
  });
});
