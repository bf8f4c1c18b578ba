// The trade-off curve: how much of full attention sparse attention recovers here. Per error budget the model
// is optimized, then run beside the original in onnxruntime (verify): output agreement (top-1, KL, cosine)
// against the speed-up measured and the one the cost model predicts.

import type { CalibrationSample, Runtime } from '../calibrate/index.js';
import type { AttnoptModel } from '../model.js';
import type { OptimizeResult } from '../optimize.js';
import { verifyModels } from '../verify.js';
import { selfContainedBytes } from './model-bytes.js';
import { finiteOrNull, type ReportTradeoffPoint } from './report-data.js';

export const DEFAULT_BUDGETS: readonly number[] = [0, 1e-3, 1e-2, 5e-2, 1e-1];

/** Sum of flopsBefore / sum of flopsAfter over the sites whose FLOPs are known. */
export function modeledSpeedup(result: OptimizeResult): number | null {
  const known = result.sites.filter((s) => Number.isFinite(s.flopsBefore) && Number.isFinite(s.flopsAfter));
  const after = known.reduce((a, s) => a + s.flopsAfter, 0);
  return known.length > 0 && after > 0 ? known.reduce((a, s) => a + s.flopsBefore, 0) / after : null;
}

/** Verifies one optimize result against the original and makes its point of the curve. */
export async function tradeoffPoint(
  budget: number,
  original: string | Uint8Array,
  result: OptimizeResult,
  samples: readonly CalibrationSample[],
  runtime: Runtime = 'onnxruntime',
): Promise<ReportTradeoffPoint> {
  const optimized: AttnoptModel = result.model;
  const report = await verifyModels(original, selfContainedBytes(optimized), optimized, samples, { runtime });
  const speedup = report.msOptimized > 0 ? report.msOriginal / report.msOptimized : null;
  return {
    budget,
    sitesChanged: result.sites.filter((s) => !s.exact).length,
    modeledSpeedup: modeledSpeedup(result),
    measuredSpeedup: finiteOrNull(speedup),
    msOriginal: finiteOrNull(report.msOriginal),
    msOptimized: finiteOrNull(report.msOptimized),
    certified: finiteOrNull(report.certified),
    withinCertified: report.withinCertified,
    outputs: report.outputs.map((o) => ({
      name: o.name,
      maxAbsError: finiteOrNull(o.maxAbsError),
      top1Agreement: finiteOrNull(o.top1Agreement),
      meanKL: finiteOrNull(o.meanKL),
      meanCosine: finiteOrNull(o.meanCosine),
    })),
    chosen: Object.fromEntries(result.sites.map((s) => [s.id, s.chosen])),
    ...(report.guardFallback && report.guardFallback.length > 0 ? { guardFallback: Object.fromEntries(report.guardFallback.map((r) => [r.site, r.rate])) } : {}),
  };
}
