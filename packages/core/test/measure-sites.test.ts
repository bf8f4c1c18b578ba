// Rewrites timed against the site as written before they stay (DecideOptions.measure, measure/measure-sites.ts).
// The guarded test site (a causal ONNX Attention, 2 heads of 32, n = 1024, local calibration data) gets a guarded
// window from the cost model. With a timer that reports the chosen form no faster than MEASURED_GAIN of the
// written time, the site is kept as written, the reason naming both times; with one that reports it faster, the
// rewrite stays with its measurement recorded. The pair the timer receives is checked as models: both run in
// onnxruntime on the site's calibration input, and the chosen form stays within the budget of the written one
// (float32 rounding aside, 1e-4). onnxruntime's own timer is run on that pair for what it returns (never for which
// model is faster: speed is measured in benchmarks, not in tests). A float16 site is timed on float16 inputs.
// Head groups turned down by the timer: one form for every head is chosen again, dense (kept as written) or a sparse
// form, which is timed on a pair of its own and stays when that pair measures faster.

import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { floatToHalf } from '@attnopt/ir';
import { type CalibrationSample, decide, loadModel, MEASURED_GAIN, onnxruntimeTimer, optimize, type SitePair, type SiteTiming } from '../src/index.js';
import { causalAttention, localTensors, sample, W } from './helpers/guarded-site.js';
import { longAttentionBytes, longAttentionSample } from './helpers/long-attention.js';

process.env.ORT_DISABLE_TELEMETRY = '1';

const N = 1024;
const BUDGET = 1e-3;
const options = { maxError: BUDGET, seqLen: N, samples: [sample(localTensors(N, 1), N)] } as const;

/** A timer reporting fixed times, keeping the pair it was given. */
function fixedTimer(writtenSeconds: number, chosenSeconds: number) {
  const pairs: SitePair[] = [];
  const timer = async (pair: SitePair): Promise<SiteTiming> => {
    pairs.push(pair);
    return { writtenSeconds, chosenSeconds, rounds: 5 };
  };
  return { timer, pairs };
}

async function runPair(bytes: Uint8Array, feeds: SitePair['feeds'][number]): Promise<ArrayLike<number>> {
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled' });
  const inputs = Object.fromEntries(Object.entries(feeds).map(([name, t]) => [name, new ort.Tensor(t.dtype === 'f16' ? 'float16' : 'float32', t.data as Float32Array, [...t.shape])]));
  const out = await s.run(inputs);
  await s.release();
  return out[s.outputNames[0]!]!.data as ArrayLike<number>;
}

function sampleF16(s: CalibrationSample): CalibrationSample {
  const half = (x: CalibrationSample[string]) => ({ dtype: 'f16' as const, shape: x!.shape, data: Uint16Array.from(x!.data as Float32Array, floatToHalf) });
  return { q: half(s.q), k: half(s.k), v: half(s.v) };
}

describe('rewrites measured against the site as written', () => {
  it('a rewrite measured no faster than MEASURED_GAIN of the written time is kept as written, saying why', async () => {
    const { timer, pairs } = fixedTimer(1e-3, MEASURED_GAIN * 1e-3 * 1.01);
    const result = await optimize(loadModel(causalAttention()), { ...options, measure: timer });
    expect(pairs).toHaveLength(1);
    const site = result.sites[0]!;
    expect(site).toMatchObject({ guarantee: 'exact', exact: true, bound: 0 });
    expect(site.reason).toMatch(/window.* was the cost model's choice .* but measured 0\.959 ms chosen against 1\.00 ms as written in onnxruntime-node/);
    const ops = new Set([...result.model.graph.allNodes()].map((n) => n.op));
    expect(ops.has('NonZero')).toBe(false);
  }, 300_000);

  it('a rewrite measured faster stays, its measurement recorded; the pair timed is the site as written and the chosen form', async () => {
    const { timer, pairs } = fixedTimer(2e-3, 1e-3);
    const decided = await decide(loadModel(causalAttention()), { ...options, measure: timer });
    const plan = decided.sites[0]!;
    expect(plan).toMatchObject({ guarantee: 'guarded', exact: false });
    expect(plan.chosen).toMatch(/window/);
    expect(plan.decision!.measuredTime).toEqual({ runtime: 'onnxruntime-node', writtenSeconds: 2e-3, chosenSeconds: 1e-3, rounds: 5 });
    expect(plan.decision!.notes.some((n) => /measured 1\.00 ms chosen against 2\.00 ms as written/.test(n))).toBe(true);

    // the pair: one input set (the one calibration sample), q, k, v; the chosen form within the budget of the written one
    const [pair] = pairs;
    expect(pair!.feeds).toHaveLength(1);
    expect(Object.keys(pair!.feeds[0]!).sort()).toEqual(['in0', 'in1', 'in2']);
    const written = await runPair(pair!.written, pair!.feeds[0]!);
    const chosen = await runPair(pair!.chosen, pair!.feeds[0]!);
    expect(chosen.length).toBe(N * 64);
    let err = 0;
    for (let x = 0; x < written.length; x++) err = Math.max(err, Math.abs(chosen[x]! - written[x]!));
    expect(err).toBeLessThanOrEqual(BUDGET + 1e-4);
    // and they differ as models: the chosen one carries the guard's fallback path
    expect(Buffer.from(pair!.chosen).includes(Buffer.from('ScatterND'))).toBe(true);
    expect(Buffer.from(pair!.written).includes(Buffer.from('ScatterND'))).toBe(false);

    // onnxruntime's timer on that pair: medians of the rounds asked for, positive and finite
    const timing = await onnxruntimeTimer({ minRounds: 2, maxRounds: 3, seconds: 0 })(pair!);
    expect(timing.rounds).toBe(2);
    for (const s of [timing.writtenSeconds, timing.chosenSeconds]) expect(s > 0 && Number.isFinite(s)).toBe(true);
  }, 300_000);

  it('measure: false leaves the cost model alone to decide; measure: true needs the onnxruntime target', async () => {
    const decided = await decide(loadModel(causalAttention()), { ...options, measure: false });
    expect(decided.sites[0]!.decision!.measuredTime).toBeUndefined();
    expect(decided.sites[0]!.guarantee).toBe('guarded');
    await expect(decide(loadModel(causalAttention()), { ...options, measure: true, target: 'webgpu' })).rejects.toThrow(/measure times the rewrites in onnxruntime-node/);
  }, 300_000);

  it('a float16 site is timed in float16: the pair reads the calibration tensors as half-precision bit patterns and runs', async () => {
    const { timer, pairs } = fixedTimer(2e-3, 1e-3);
    await decide(loadModel(causalAttention({ dtype: 'f16' })), { ...options, maxError: 1e-2, samples: [sampleF16(sample(localTensors(N, 1), N))], measure: timer });
    expect(pairs).toHaveLength(1);
    const feeds = pairs[0]!.feeds[0]!;
    expect(feeds.in0!.dtype).toBe('f16');
    expect(feeds.in0!.data).toBeInstanceOf(Uint16Array);
    for (const bytes of [pairs[0]!.written, pairs[0]!.chosen]) {
      const y = await runPair(bytes, feeds);
      expect(y.length).toBe(N * W);
    }
  }, 300_000);

  it('sites with the same models, input shapes and predicted fallback are timed once', async () => {
    const { timer, pairs } = fixedTimer(2e-3, 1e-3);
    const decided = await decide(loadModel(causalAttention({ outputs: ['y0', 'y1'] })), { ...options, measure: timer });
    expect(decided.sites.map((p) => p.guarantee)).toEqual(['guarded', 'guarded']);
    expect(pairs).toHaveLength(1);
    expect(decided.sites[1]!.decision!.measuredTime).toEqual(decided.sites[0]!.decision!.measuredTime);
    expect(decided.sites[1]!.decision!.notes.some((n) => /timed at site0: the same models, input shapes and predicted fallback/.test(n))).toBe(true);
  }, 300_000);

  it('head groups measured no faster: the site is not split; one form for every head is chosen again (dense here) and kept', async () => {
    // head 1 reaches 8 times further than head 0: head 0 takes a window, head 1 stays dense (head-groups.test.ts)
    const samples = [longAttentionSample(1, 512, [1, 8]), longAttentionSample(2, 512, [1, 8])];
    const base = { samples, seqLen: 512, maxError: 1e-2, allowStatistical: true };
    const split = await decide(loadModel(longAttentionBytes()), { ...base, measure: false });
    expect(split.sites[0]!.groups).toHaveLength(2);
    expect(split.sites[0]!.decision!.uniform!.chosen).toBe('dense');
    const { timer, pairs } = fixedTimer(1e-3, 1e-3);
    const kept = await decide(loadModel(longAttentionBytes()), { ...base, measure: timer });
    const site = kept.sites[0]!;
    expect(pairs).toHaveLength(1);
    expect(site.groups).toBeUndefined();
    expect(site).toMatchObject({ chosen: 'dense', exact: true, guarantee: 'exact' });
    expect(site.reason).toMatch(/head 0: window.* was the cost model's choice .* but measured 1\.00 ms chosen against 1\.00 ms as written/);
  }, 300_000);

  it('head groups measured no faster, one sparse form for every head measured faster: that form stays, timed on its own pair', async () => {
    // n = 2048, head 1 reaches 8 times further than head 0: head 0 takes a narrow window, head 1 top-k blocks, and
    // one window wide enough for both is the form for every head
    const samples = [longAttentionSample(1, 2048, [1, 8]), longAttentionSample(2, 2048, [1, 8])];
    const base = { samples, seqLen: 2048, maxError: 1e-2, allowStatistical: true };
    const split = await decide(loadModel(longAttentionBytes()), { ...base, measure: false });
    const groups = split.sites[0]!.groups!;
    expect(groups).toHaveLength(2);
    const uniform = split.sites[0]!.decision!.uniform!;
    expect(uniform.chosen).toMatch(/window/);
    expect(groups.map((g) => g.chosen)).not.toContain(uniform.chosen);
    // the first pair (the head groups) no faster, the second (one form for every head) twice as fast
    const pairs: SitePair[] = [];
    const timer = async (pair: SitePair): Promise<SiteTiming> => {
      pairs.push(pair);
      return pairs.length === 1 ? { writtenSeconds: 1e-3, chosenSeconds: 1e-3, rounds: 4 } : { writtenSeconds: 2e-3, chosenSeconds: 1e-3, rounds: 4 };
    };
    const kept = await decide(loadModel(longAttentionBytes()), { ...base, measure: timer });
    const site = kept.sites[0]!;
    expect(pairs).toHaveLength(2);
    expect(site.groups).toBeUndefined();
    expect(site.chosen).toBe(uniform.chosen);
    expect(site.exact).toBe(false);
    expect(site.decision!.measuredTime).toEqual({ runtime: 'onnxruntime-node', writtenSeconds: 2e-3, chosenSeconds: 1e-3, rounds: 4 });
    // the two pairs are different models: the split site's and the uniform form's; the written side is the same site
    expect(Buffer.from(pairs[0]!.chosen).equals(Buffer.from(pairs[1]!.chosen))).toBe(false);
    expect(Buffer.from(pairs[0]!.written).equals(Buffer.from(pairs[1]!.written))).toBe(true);
    // the uniform form's pair computes the written site within the budget on the calibration input
    const written = await runPair(pairs[1]!.written, pairs[1]!.feeds[0]!);
    const chosen = await runPair(pairs[1]!.chosen, pairs[1]!.feeds[0]!);
    let err = 0;
    for (let x = 0; x < written.length; x++) err = Math.max(err, Math.abs(chosen[x]! - written[x]!));
    expect(err).toBeLessThanOrEqual(1e-2 + 1e-4);
  }, 300_000);
});
