// optimize end to end on the guarded tier: a causal ONNX Attention (opset 23, 2 heads of 32), calibrated on the
// user's samples where attention is local, gets a guarded window; its metadata says so (tier, budget, block
// summaries, calibration provenance); and in onnxruntime the optimized model stays within the budget of the
// original on an input unlike its calibration (repeated spans: each query matches a key far outside the window),
// float32 rounding aside (1e-4).

import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { explain, loadModel, optimize, saveModel } from '../src/index.js';
import { causalAttention, localTensors, repeatSpans, sample, type Tensors, W } from './helpers/guarded-site.js';

process.env.ORT_DISABLE_TELEMETRY = '1';

const N = 1024;
const BUDGET = 1e-3;

async function run(bytes: Uint8Array, t: Tensors, n: number): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled' });
  const x = (d: Float32Array) => new ort.Tensor('float32', d, [1, n, W]);
  return (await s.run({ q: x(t.q), k: x(t.k), v: x(t.v) })).y!.data as Float32Array;
}

describe('optimize, guarded tier, end to end in onnxruntime', () => {
  it('a guarded window on local calibration data, within the budget on repeated spans it never saw', async () => {
    const original = causalAttention();
    const result = await optimize(loadModel(original), { maxError: BUDGET, seqLen: N, samples: [sample(localTensors(N, 1), N)] });
    expect(result.sites).toHaveLength(1);
    const site = result.sites[0]!;
    expect(site).toMatchObject({ guarantee: 'guarded', bound: BUDGET, exact: false });
    expect(site.chosen).toMatch(/window/);
    expect(result.calibration).toEqual({ source: 'user', count: 1, seqLen: N });
    const meta = result.model.proto.metadataProps?.find((e) => e.key === 'attnopt.guarantees');
    const guarantees = JSON.parse(meta!.value!) as { budget: number; calibration: unknown; sites: Record<string, { guarantee: string; guard?: { blockSize: number; summaries: string; logZ: string } }> };
    expect(guarantees.budget).toBe(BUDGET);
    expect(guarantees.calibration).toEqual({ source: 'user', count: 1, seqLen: N });
    expect(guarantees.sites.site0).toMatchObject({ guarantee: 'guarded', guard: { blockSize: 64 } });
    expect(guarantees.sites.site0!.guard!.summaries).toMatch(/Quest/);
    // the metadata says which summaries the lowering computes: the ball only where the decision keeps it
    const withBall = [...result.model.graph.allNodes()].some((n) => n.outputs.some((o) => o?.name.endsWith('/guard_radius')));
    expect(guarantees.sites.site0!.guard!.summaries.includes('the ball left out')).toBe(!withBall);
    // and how it takes log Z_S: the probabilities' pass only for the log-sum-exp
    const withProbabilities = [...result.model.graph.allNodes()].some((n) => n.outputs.some((o) => o?.name.endsWith('/guard_max_prob_blocks')));
    expect(guarantees.sites.site0!.guard!.logZ).toMatch(withProbabilities ? /log-sum-exp \(/ : /largest kept logit, a lower bound/);
    // explain says the same, in its sentence on the rewrite
    const e = await explain(loadModel(original), { maxError: BUDGET, seqLen: N, samples: [sample(localTensors(N, 1), N)] });
    const sentence = e.sites[0]!.why.find((w) => w.startsWith('rewritten'))!;
    expect(sentence).toMatch(withBall ? /the key box and ball per block/ : /the key box per block alone/);
    expect(sentence).toMatch(withProbabilities ? /log Z_S the kept scores' log-sum-exp/ : /log Z_S from the largest kept logit/);

    // lowered in the guarded form: the fallback rows gathered by NonZero and scattered back (ScatterND of whole rows)
    const ops = new Set([...result.model.graph.allNodes()].map((n) => n.op));
    expect(ops.has('NonZero') && ops.has('ScatterND')).toBe(true);
    const optimized = saveModel(result.model);
    const t = repeatSpans(localTensors(N, 2), N);
    const want = await run(original, t, N);
    const got = await run(optimized, t, N);
    let err = 0;
    for (let x = 0; x < want.length; x++) err = Math.max(err, Math.abs(got[x]! - want[x]!));
    expect(err).toBeLessThanOrEqual(BUDGET + 1e-4);
  }, 300_000);
});
