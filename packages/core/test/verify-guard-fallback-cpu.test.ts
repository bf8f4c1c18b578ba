// verify in attnopt's CPU executor (runtime 'attnopt-cpu', no onnxruntime anywhere: optimize calibrates with it
// too) reports each guarded site's fallback, as it does in onnxruntime: a causal ONNX Attention (2 heads of 32)
// optimized at a budget of 1e-3 on local inputs gets a guarded window or top-k blocks; on repeated spans (each query
// matches a key about 500 positions back) the guard must recompute at least every (head, row) whose true dropped
// mass (float64, helpers/guard-lower-bound.ts) times V's range breaks the budget, and that count is not 0.
//   - the optimized model as optimize writes it (the guard lowered to standard ops): its fallback flags are
//     fetched from the executor's run;
//   - the decided model (the site still a guarded attnopt::Attention): the executor runs the guarded kernel,
//     which reports its fallback (and the rows it recomputed with their strips of 4); its output is within the
//     budget of the original's, plus float32 rounding.

import { describe, expect, it } from 'vitest';
import { decide, loadModel, optimize, saveModel, verifyModels } from '../src/index.js';
import { keptOf, mustFallBack } from './helpers/guard-lower-bound.js';
import { causalAttention, H, localTensors, repeatSpans, sample } from './helpers/guarded-site.js';

const N = 640;
const BUDGET = 1e-3;
const options = { maxError: BUDGET, seqLen: N, runtime: 'attnopt-cpu' as const };

describe('verify --runtime attnopt-cpu measures the guarded fallback', () => {
  it('lowered guarded site: the flags fetched from the executor count at least every row that must fall back', async () => {
    const original = causalAttention();
    const result = await optimize(loadModel(original), { ...options, samples: [sample(localTensors(N, 1), N)] });
    const site = result.sites[0]!;
    expect(site).toMatchObject({ id: 'site0', guarantee: 'guarded' });
    const t = repeatSpans(localTensors(N, 2), N);
    const lowerBound = mustFallBack(t, N, keptOf(site.chosen, t, N), BUDGET);
    expect(lowerBound).toBeGreaterThan(0);
    const report = await verifyModels(original, saveModel(result.model), result.model, [sample(t, N)], { runtime: 'attnopt-cpu', runs: 1 });
    expect(report.guardFallback).toHaveLength(1);
    const [rate] = report.guardFallback!;
    console.log(`lowered site0 (${site.chosen}) in the CPU executor: ${rate!.fellBack} of ${rate!.checked} (head, row) fell back; at least ${lowerBound} must`);
    expect(rate).toMatchObject({ site: 'site0', checked: H * N });
    expect(rate!.fellBack).toBeGreaterThanOrEqual(lowerBound);
    expect(rate!.fellBack).toBeLessThanOrEqual(rate!.checked);
    expect(rate!.rate).toBeCloseTo(rate!.fellBack / rate!.checked, 12);
    expect(rate!.recomputed).toBeUndefined(); // the lowering recomputes exactly the flagged rows
    expect(report.withinCertified).toBe(true);
  }, 300_000);

  it('decided model: the guarded attnopt::Attention runs the guarded kernel, which reports its fallback', async () => {
    const original = causalAttention();
    const decided = loadModel(original);
    const plans = await decide(decided, { ...options, samples: [sample(localTensors(N, 1), N)] });
    const site = plans.sites[0]!;
    expect(site).toMatchObject({ id: 'site0', guarantee: 'guarded' });
    const t = repeatSpans(localTensors(N, 2), N);
    const lowerBound = mustFallBack(t, N, keptOf(site.chosen, t, N), BUDGET);
    const report = await verifyModels(original, saveModel(decided), decided, [sample(t, N)], { runtime: 'attnopt-cpu', runs: 1 });
    const [rate] = report.guardFallback!;
    console.log(`decided site0 (${site.chosen}), guarded kernel: ${rate!.fellBack} of ${rate!.checked} (head, row) fell back; at least ${lowerBound} must`);
    expect(report.guardFallback).toHaveLength(1);
    expect(rate).toMatchObject({ site: 'site0', checked: H * N });
    expect(rate!.fellBack).toBeGreaterThanOrEqual(lowerBound);
    expect(rate!.recomputed).toBeGreaterThanOrEqual(rate!.fellBack);
    expect(rate!.recomputed).toBeLessThanOrEqual(rate!.checked);
    for (const o of report.outputs) expect(o.maxAbsError).toBeLessThanOrEqual(BUDGET + o.rounding + o.rounding * o.maxAbsError);
  }, 300_000);
});
