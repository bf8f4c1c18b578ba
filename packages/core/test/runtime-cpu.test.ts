// Calibration and verification on attnopt's CPU executor (runtime 'attnopt-cpu') against the same on
// onnxruntime-node, and the lowered sparse forms run by the executor against onnxruntime.
//   calibration: on examples/tiny-bert and a generated long-attention model (one ONNX Attention, local Q/K),
//     every site tensor collected with 'attnopt-cpu' equals onnxruntime's within atol 1e-4 + rtol 1e-4 (same
//     shapes and dtypes); the executor's site outputs also match the float64 reference attention on the Q, K, V
//     (and bias) it collected, within 1e-4.
//   verification: both models optimized (maxError 1e-2) and written; verifyModels on (original, optimized)
//     gives per output the same max-abs error, cosine and top-1 agreement on both runtimes within 1e-4 + 1e-4 x.
//   lowered forms (banded window + sinks, banded global ∪ window, top-k blocks, block-sparse, Linformer,
//     Performer, Nystrom, LSH): one
//     model each, lowered by lowerAttentionPass and exported; the executor's outputs match onnxruntime's within
//     atol 1e-4 + rtol 1e-4 and the float64 reference within the passes' own tolerance (atol 1e-5 + rtol 1e-4 in
//     float32; Nystrom runs in float64: 1e-9 max|ref|).
//   a site whose scores output is read (refused by the kernels): calibration runs the lowered copy in the
//     executor, with the same results.
//   unsupported ops: refused before any sample is read, with the model file and the node named.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, test } from 'vitest';
import { type ExecTensor, execTensor, planGraph, runGraph, toNumbers } from '@attnopt/runtime-cpu';
import {
  type AttentionParams,
  type AttentionSpec,
  attentionNode,
  causal,
  globalTokens,
  Graph,
  intAttr,
  intersect,
  linformer,
  lshBuckets,
  nystrom,
  performer,
  blockSparse,
  sinks,
  slidingWindow,
  SplitMix64,
  tensorType,
  topkBlocks,
  union,
  Value,
} from '@attnopt/ir';
import { exportOnnx as encodeOnnx, newOnnxModel } from '@attnopt/onnx';
import { lowerAttentionPass } from '@attnopt/passes';
import { referenceAttention, type Tensor64 } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import {
  type AttnoptModel,
  type CalibrationSample,
  collectSiteTensors,
  generateInputs,
  loadModel,
  optimize,
  recognize,
  type SiteSamples,
  type SiteTensor,
  verifyModels,
  type VerifyReport,
  writeModel,
} from '../src/index.js';
import { longAttentionBytes, longAttentionSample } from './helpers/long-attention.js';
import { referenceOfSample } from './helpers/site-reference.js';

process.env.ORT_DISABLE_TELEMETRY = '1';
const here = fileURLToPath(new URL('.', import.meta.url));
const TINY_BERT = resolve(here, '../../../examples/tiny-bert/model.onnx');
/** An ONNX Attention whose qk_matmul_output is a graph output (the executor's kernels do not produce scores). */
const SCORES_MODEL = resolve(here, '../../../../shared/fixtures/onnx/onnx-node-tests/test_attention_4d_with_qk_matmul_bias/model.onnx');
const ATOL = 1e-4;
const RTOL = 1e-4;
const dir = mkdtempSync(join(tmpdir(), 'attnopt-runtime-cpu-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Elements where |got - want| > atol + rtol |want| (non-finite values must be identical), as messages. */
function mismatches(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number, what: string): string[] {
  if (got.length !== want.length) return [`${what}: ${got.length} elements vs ${want.length}`];
  let bad = 0;
  let first = '';
  for (let k = 0; k < want.length; k++) {
    const x = want[k]!;
    const y = got[k]!;
    const ok = Number.isFinite(x) && Number.isFinite(y) ? Math.abs(x - y) <= atol + rtol * Math.abs(x) : Object.is(x, y);
    if (!ok && bad++ === 0) first = ` (first at ${k}: ${y} vs ${x})`;
  }
  return bad === 0 ? [] : [`${what}: ${bad} of ${want.length} elements differ${first}`];
}

const LONG_N = 384;

interface Case {
  readonly name: string;
  readonly source: string | Uint8Array;
  readonly samples: CalibrationSample[];
  readonly verifySamples: CalibrationSample[];
  readonly seqLen: number;
  /** Ops the optimized model must hold (the lowered sparse form the executor has to run). */
  readonly loweredOps: readonly string[];
  /** The samples are the user's data and forms held on them alone may be chosen (the statistical tier). */
  readonly allowStatistical?: boolean;
}

const tinySamples = generateInputs(loadModel(TINY_BERT), { seqLen: 48, batch: 2, seed: 3, count: 3 });
const CASES: Case[] = [
  { name: 'tiny-bert', source: TINY_BERT, samples: tinySamples.slice(0, 2), verifySamples: tinySamples.slice(2), seqLen: 48, loweredOps: [] },
  {
    name: 'long-attention',
    source: longAttentionBytes(),
    samples: [longAttentionSample(1, LONG_N), longAttentionSample(2, LONG_N)],
    verifySamples: [longAttentionSample(3, LONG_N)],
    seqLen: LONG_N,
    loweredOps: ['Pad', 'ScatterND', 'Slice'],
    // the block certificate is loose on this smoothly decaying attention: its window is a statistical choice
    allowStatistical: true,
  },
];


/**
 * Site tensors collected from `model` (recognized) with both runtimes: the same sites, values and dims, every
 * tensor of one shape and dtype and within atol + rtol; the executor's y within 1e-4 of the float64 reference
 * attention on the Q, K, V and bias it collected. Returns how many tensors were compared.
 */
async function expectSameSiteTensors(model: AttnoptModel, samples: CalibrationSample[]): Promise<number> {
  const want = await collectSiteTensors(model, samples, { runtime: 'onnxruntime' });
  const got = await collectSiteTensors(model, samples, { runtime: 'attnopt-cpu' });
  expect(want.length).toBeGreaterThan(0);
  expect(got.map((s) => [s.id, s.values, s.params])).toEqual(want.map((s) => [s.id, s.values, s.params]));
  const bad: string[] = [];
  let compared = 0;
  got.forEach((site: SiteSamples, i) => {
    expect(site.samples).toHaveLength(samples.length);
    site.samples.forEach((s, j) => {
      const w = want[i]!.samples[j]!;
      expect(s.dims).toEqual(w.dims);
      for (const role of ['q', 'k', 'v', 'bias', 'pastKey', 'pastValue', 'y'] as const) {
        const a = s[role];
        const b = w[role];
        expect(a === undefined, `${site.id} sample ${j} ${role}`).toBe(b === undefined);
        if (a === undefined || b === undefined) continue;
        expect([a.dtype, a.shape], `${site.id} sample ${j} ${role}`).toEqual([b.dtype, b.shape]);
        bad.push(...mismatches(a.data, b.data, ATOL, RTOL, `${site.id} sample ${j} ${role}`));
        compared++;
      }
      const ref = referenceOfSample(site.params, s);
      bad.push(...mismatches(s.y!.data, ref.data, ATOL, RTOL, `${site.id} sample ${j} y vs reference`));
    });
  });
  expect(bad).toEqual([]);
  return compared;
}

describe.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
  test('calibration: the site tensors from attnopt-cpu equal onnxruntime’s', async () => {
    const model = loadModel(c.source);
    recognize(model.graph);
    expect(await expectSameSiteTensors(model, c.samples)).toBeGreaterThanOrEqual(4 * c.samples.length);
  }, 120_000);

  test('verification: the per-output errors on attnopt-cpu equal onnxruntime’s', async () => {
    const result = await optimize(loadModel(c.source), { maxError: 1e-2, seqLen: c.seqLen, samples: c.samples, allowStatistical: c.allowStatistical === true });
    const ops = new Set(result.model.graph.nodes.map((n) => n.op));
    for (const op of c.loweredOps) expect(ops, `the optimized ${c.name} holds ${op}`).toContain(op);
    const file = join(dir, `${c.name}.optimized.onnx`);
    writeModel(file, result.model);
    const run = (runtime: 'onnxruntime' | 'attnopt-cpu') => verifyModels(c.source, file, result.model, c.verifySamples, { runtime });
    const want: VerifyReport = await run('onnxruntime');
    const got: VerifyReport = await run('attnopt-cpu');
    expect(got.outputs.map((o) => [o.name, o.shape])).toEqual(want.outputs.map((o) => [o.name, o.shape]));
    const summary = (r: VerifyReport) => r.outputs.map((o) => `${o.name} ${o.maxAbsError.toExponential(3)}`).join(', ');
    console.log(`${c.name} verify (sites: ${result.sites.map((s) => s.chosen).join('; ')}): onnxruntime ${summary(want)} in ${want.msOptimized.toFixed(1)} ms; attnopt-cpu ${summary(got)} in ${got.msOptimized.toFixed(1)} ms`);
    const close = (a: number | undefined, b: number | undefined) => (a === undefined ? b === undefined : b !== undefined && Math.abs(a - b) <= ATOL + RTOL * Math.abs(b));
    got.outputs.forEach((o, k) => {
      const w = want.outputs[k]!;
      const what = `${c.name} output ${o.name}: attnopt-cpu ${JSON.stringify(o)} vs onnxruntime ${JSON.stringify(w)}`;
      expect(close(o.maxAbsError, w.maxAbsError), what).toBe(true);
      expect(close(o.meanCosine, w.meanCosine), what).toBe(true);
      expect(close(o.top1Agreement, w.top1Agreement), what).toBe(true);
      expect(close(o.meanKL, w.meanKL), what).toBe(true);
    });
    expect(got.certified).toBe(want.certified);
    expect(got.withinCertified).toBe(want.withinCertified);
    expect(got.msOriginal).toBeGreaterThan(0);
    expect(got.msOptimized).toBeGreaterThan(0);
    if (c.name === 'long-attention') expect(want.outputs[0]!.maxAbsError).toBeGreaterThan(0); // an approximate form was chosen
  }, 300_000);
});

test('calibration of a site whose scores output is read (the kernels refuse it) runs the lowered copy', async () => {
  const model = loadModel(SCORES_MODEL);
  recognize(model.graph);
  expect(() => planGraph(model.graph, { opset: 23 })).toThrow(/scores output is not produced/);
  expect(await expectSameSiteTensors(model, generateInputs(model, { seed: 5, count: 2 }))).toBeGreaterThanOrEqual(8);
}, 60_000);

describe('unsupported ops are refused before anything runs', () => {
  // Attention followed by Hardmax, an op the executor does not implement
  const g = new Graph('hardmax-after-attention');
  const x = g.addInput(new Value('x', tensorType('f32', [1, 'seq', 16])));
  const y = new Value('y', tensorType('f32', [1, 'seq', 16]));
  g.add({ op: 'Attention', name: 'attention', inputs: [x, x, x], outputs: [y], attrs: { q_num_heads: intAttr(2), kv_num_heads: intAttr(2) } });
  const z = new Value('z', tensorType('f32', [1, 'seq', 16]));
  g.add({ op: 'Hardmax', name: 'the_hardmax', inputs: [y], outputs: [z], attrs: {} });
  g.outputs.push(z);
  const file = join(dir, 'hardmax.onnx');
  writeModel(file, newOnnxModel(g, { opset: 23 }));
  /** Samples that record whether they were read. */
  const watched = () => {
    const seen = { read: false };
    const samples: Iterable<CalibrationSample> = {
      *[Symbol.iterator]() {
        seen.read = true;
        yield { x: { dtype: 'f32', shape: [1, 4, 16], data: new Float32Array(64) } };
      },
    };
    return { seen, samples };
  };

  test('collectSiteTensors names the file and the node', async () => {
    const model = loadModel(file);
    recognize(model.graph);
    const { seen, samples } = watched();
    await expect(collectSiteTensors(model, samples, { runtime: 'attnopt-cpu' })).rejects.toThrow(new RegExp(`${file.replace(/[.]/g, '\\.')}: graph .*cannot run 1 node\\(s\\):\\n\\s+"the_hardmax": Hardmax \\(no CPU implementation\\)`));
    expect(seen.read).toBe(false);
  });

  test('verifyModels names the file and the node; an unknown runtime names the choices', async () => {
    const { seen, samples } = watched();
    await expect(verifyModels(file, file, loadModel(file), samples, { runtime: 'attnopt-cpu' })).rejects.toThrow(new RegExp(`${file.replace(/[.]/g, '\\.')}: graph .*cannot run 1 node\\(s\\):\\n\\s+"the_hardmax": Hardmax`));
    expect(seen.read).toBe(false);
    await expect(verifyModels(file, file, loadModel(file), samples, { runtime: 'tvm' as never })).rejects.toThrow(/unknown runtime "tvm": one of onnxruntime, attnopt-cpu/);
  });
});

// ---- lowered sparse forms: executor vs onnxruntime vs the float64 reference -----------------------------------

interface Form {
  readonly name: string;
  readonly spec: AttentionSpec;
  readonly layout: AttentionParams['layout'];
  /** Ops the lowered model must hold (that it is the form meant). */
  readonly ops: readonly string[];
  readonly strategy?: 'banded';
  readonly staticSeq?: number;
  readonly dtype?: 'f32' | 'f64';
}

const FORMS: Form[] = [
  { name: 'banded causal ∩ (window ∪ sinks)', spec: intersect(causal(), union(slidingWindow(12, 0), sinks(3))), layout: 'bsd', ops: ['Pad', 'ScatterND', 'Slice'], strategy: 'banded' },
  { name: 'banded global ∪ window', spec: union(globalTokens([0, 5, 30]), slidingWindow(4, 4)), layout: 'bshd', ops: ['Pad', 'ArgMax', 'IsNaN'], strategy: 'banded' },
  { name: 'top-k blocks (quest)', spec: topkBlocks(8, 3, 'quest'), layout: 'bhsd', ops: ['TopK', 'GatherND', 'Pad', 'ReduceMax', 'ReduceMin'] },
  { name: 'block-sparse', spec: blockSparse(8, 8, [[0], [0, 1], [1, 2], [0, 3], [2, 4]]), layout: 'bshd', ops: ['GatherND', 'Pad'] },
  { name: 'Linformer', spec: linformer(8, 3), layout: 'bsd', ops: ['MatMul'], staticSeq: 37 },
  { name: 'Performer', spec: performer(16, 5, true), layout: 'bhsd', ops: ['Exp', 'ReduceSum'] },
  { name: 'Nystrom (float64)', spec: nystrom(8), layout: 'bsd', ops: ['MatMul'], dtype: 'f64' },
  { name: 'LSH (chunked)', spec: lshBuckets(2, 8, 3, 8), layout: 'bsd', ops: ['ArgMax', 'TopK', 'ScatterElements', 'GatherND', 'Pad'] },
];

function lowered(f: Form): { graph: Graph; params: AttentionParams; bytes: Uint8Array } {
  const params: AttentionParams = { numHeads: 4, kvNumHeads: 2, headDim: 16, vHeadDim: 16, scale: 0.25, softcap: 0, layout: f.layout, spec: f.spec };
  const dtype = f.dtype ?? 'f32';
  const seq = f.staticSeq ?? 'seq';
  const by = (h: number) => (f.layout === 'bsd' ? ['batch', seq, h * 16] : f.layout === 'bshd' ? ['batch', seq, h, 16] : ['batch', h, seq, 16]);
  const g = new Graph('lowered');
  const [q, k, v] = (['q', 'k', 'v'] as const).map((name, i) => g.addInput(new Value(name, tensorType(dtype, by(i === 0 ? 4 : 2)))));
  const y = new Value('y', tensorType(dtype));
  g.addNode(attentionNode(params, { q: q!, k: k!, v: v! }, { y }, 'attn'));
  g.outputs.push(y);
  runPipeline(g, [lowerAttentionPass({ opset: 21, ...(f.strategy ? { strategy: f.strategy } : {}) })]);
  return { graph: g, params, bytes: encodeOnnx(newOnnxModel(g, { opset: 21 })) };
}

describe('lowered forms run in the executor as in onnxruntime', () => {
  test.each(FORMS.map((f) => [f.name, f] as const))('%s', async (_name, f) => {
    const { graph, params, bytes } = lowered(f);
    const ops = new Set(graph.nodes.map((n) => n.op));
    for (const op of f.ops) expect(ops, `lowered ${f.name} holds ${op}`).toContain(op);
    const dtype = f.dtype ?? 'f32';
    const B = 2;
    const n = f.staticSeq ?? 45;
    const rng = new SplitMix64(17);
    const shapeOf = (h: number) => (f.layout === 'bsd' ? [B, n, h * 16] : f.layout === 'bshd' ? [B, n, h, 16] : [B, h, n, 16]);
    const feeds: Record<string, ExecTensor> = {};
    const ref: Record<string, Tensor64> = {};
    (['q', 'k', 'v'] as const).forEach((name, i) => {
      const shape = shapeOf(i === 0 ? 4 : 2);
      const count = shape.reduce((a, b) => a * b, 1);
      const values = Array.from({ length: count }, () => rng.nextFloat() * 2 - 1);
      const data = dtype === 'f64' ? Float64Array.from(values) : Float32Array.from(values);
      feeds[name] = execTensor(dtype, shape, data);
      ref[name] = { shape, data: Float64Array.from(data) }; // the reference sees the values as rounded to the model's type
    });
    const got = toNumbers((await runGraph(graph, feeds, { opset: 21 })).y!);
    const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 });
    const out = await session.run(Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor(dtype === 'f64' ? 'float64' : 'float32', t.data as Float32Array, [...t.shape])])));
    await session.release();
    const want = Float64Array.from(out.y!.data as Float32Array);
    expect(mismatches(got, want, ATOL, RTOL, `${f.name} vs onnxruntime`)).toEqual([]);
    const exact = referenceAttention(params, { q: ref.q!, k: ref.k!, v: ref.v! }).y.data;
    const max = exact.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    const [atol, rtol] = dtype === 'f64' ? [1e-9 * max, 0] : [1e-5, 1e-4];
    expect(mismatches(got, exact, atol, rtol, `${f.name} vs reference`)).toEqual([]);
  }, 60_000);
});
