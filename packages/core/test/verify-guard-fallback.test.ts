// verify reports the guarded tier's fallback measured at run time: a causal ONNX Attention (opset 23, 2 heads of
// 32) optimized on local calibration data gets a guarded window; verifyModels on an input with repeated spans
// (each query matches a key far outside the window) reports, for site0, the (batch, head, row) triples the
// optimized model recomputed densely. The certificate is never below the true dropped mass m, so every triple
// whose true m times V's range exceeds the budget (computed in float64 from the inputs and the chosen
// window) must be among them: that count is a lower bound the measured one must reach, and it is not 0. The
// report's trade-off point carries the same rates.

import { describe, expect, it } from 'vitest';
import { loadModel, optimize, saveModel, verifyModels } from '../src/index.js';
import { tradeoffPoint } from '../src/report/tradeoff.js';
import { keptOf, mustFallBack } from './helpers/guard-lower-bound.js';
import { causalAttention, H, localTensors, repeatSpans, sample } from './helpers/guarded-site.js';

process.env.ORT_DISABLE_TELEMETRY = '1';

const N = 1024;
const BUDGET = 1e-3;

describe('verify measures the guarded fallback at run time', () => {
  it('per guarded site, at least every (head, row) whose true dropped mass breaks the budget', async () => {
    const original = causalAttention();
    const result = await optimize(loadModel(original), { maxError: BUDGET, seqLen: N, samples: [sample(localTensors(N, 1), N)] });
    const site = result.sites[0]!;
    expect(site).toMatchObject({ id: 'site0', guarantee: 'guarded' });
    const t = repeatSpans(localTensors(N, 2), N);
    const lowerBound = mustFallBack(t, N, keptOf(site.chosen, t, N), BUDGET);
    expect(lowerBound).toBeGreaterThan(0);
    const report = await verifyModels(original, saveModel(result.model), result.model, [sample(t, N)]);
    expect(report.guardFallback).toHaveLength(1);
    const [rate] = report.guardFallback!;
    console.log(`site0 on repeated spans (chosen ${site.chosen}): ${rate!.fellBack} of ${rate!.checked} (head, row) fell back; at least ${lowerBound} must (true dropped mass x V range > ${BUDGET})`);
    expect(rate).toMatchObject({ site: 'site0', checked: H * N });
    expect(rate!.fellBack).toBeGreaterThanOrEqual(lowerBound);
    expect(rate!.fellBack).toBeLessThanOrEqual(rate!.checked);
    expect(rate!.rate).toBeCloseTo(rate!.fellBack / rate!.checked, 12);
    // the rows the lowering recomputes (in every head): those where some head fell back, between the fallen-back
    // triples spread over all heads and one row per triple
    expect(rate!.rows).toBe(N);
    expect(rate!.rowsRecomputed!).toBeGreaterThanOrEqual(Math.ceil(rate!.fellBack / H));
    expect(rate!.rowsRecomputed!).toBeLessThanOrEqual(Math.min(rate!.fellBack, N));
    // the report's trade-off point carries the same measurement per site
    const point = await tradeoffPoint(BUDGET, original, result, [sample(t, N)]);
    expect(point.guardFallback).toEqual({ site0: rate!.rate });
  }, 300_000);

  it('no guarded site: nothing to report', async () => {
    const original = causalAttention();
    const result = await optimize(loadModel(original), { maxError: 0, seqLen: 256 });
    const s = sample(localTensors(256, 3), 256);
    const report = await verifyModels(original, saveModel(result.model), result.model, [s]);
    expect(report.guardFallback).toEqual([]);
  }, 300_000);
});
