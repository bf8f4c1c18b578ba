// The cost model's FLOPs and predicted time of a site over sequence length (batch 1, nq = nk = n), for
// dense attention, the site's own spec and the chosen one; summed over sites for the whole model.

import { attentionCost, type TargetProfile } from '@attnopt/cost';
import { type AttentionParams, type AttentionSpec, dense, printSpec, specEquals } from '@attnopt/ir';
import type { HeadGroupSpec } from './chosen-specs.js';
import type { ReportCostCurve, ReportCostSeries } from './report-data.js';

/** n = 256, 512, ..., 16384. */
export const DEFAULT_CURVE_LENGTHS: readonly number[] = [256, 512, 1024, 2048, 4096, 8192, 16384];

/** The cost of `groups` (each an Attention of its own heads) summed; one group of every head is the plain site. */
function series(label: string, params: AttentionParams, groups: readonly HeadGroupSpec[], lengths: readonly number[], profile: TargetProfile): ReportCostSeries {
  const flops: (number | null)[] = [];
  const ms: (number | null)[] = [];
  const perKv = params.numHeads / params.kvNumHeads;
  for (const n of lengths) {
    try {
      let f = 0;
      let t = 0;
      for (const g of groups) {
        const p = { ...params, numHeads: g.heads.length, kvNumHeads: Math.ceil(g.heads.length / perKv), spec: g.spec };
        const c = attentionCost(p, { batch: 1, nq: n, nk: n }, profile);
        f += c.flops;
        t += c.time;
      }
      flops.push(Number.isFinite(f) ? f : null);
      ms.push(Number.isFinite(t) ? t * 1e3 : null);
    } catch {
      // a data-dependent leaf nested in a combination has no size without data: unknown here
      flops.push(null);
      ms.push(null);
    }
  }
  const spec = groups.length === 1 ? printSpec(groups[0]!.spec) : groups.map((g) => `heads ${g.heads[0]}-${g.heads[g.heads.length - 1]}: ${printSpec(g.spec)}`).join(' | ');
  return { label, spec, flops, ms };
}

/**
 * Dense, the site's own spec (when not dense) and the chosen form (when it differs from the site's; head groups
 * summed, their Slice / Concat copies not counted; left out when unknown).
 */
export function siteCostCurve(
  params: AttentionParams,
  original: AttentionSpec,
  chosen: readonly HeadGroupSpec[] | undefined,
  lengths: readonly number[],
  profile: TargetProfile,
): ReportCostCurve {
  const all = Array.from({ length: params.numHeads }, (_, h) => h);
  const out: ReportCostSeries[] = [series('dense', params, [{ heads: all, spec: dense }], lengths, profile)];
  if (!specEquals(original, dense)) out.push(series('original', params, [{ heads: all, spec: original }], lengths, profile));
  const same = chosen !== undefined && chosen.length === 1 && specEquals(chosen[0]!.spec, original);
  if (chosen !== undefined && !same) out.push(series('chosen', params, chosen, lengths, profile));
  return { n: [...lengths], series: out };
}

/** The sum over sites of each labelled series (a site without a series adds its own spec's: it is unchanged). */
export function modelCostCurve(curves: readonly ReportCostCurve[], lengths: readonly number[]): ReportCostCurve {
  const labels = ['dense', 'original', 'chosen'] as const;
  const pick = (c: ReportCostCurve, label: (typeof labels)[number]): ReportCostSeries => {
    const find = (l: string) => c.series.find((s) => s.label === l);
    if (label === 'dense') return find('dense')!;
    if (label === 'original') return find('original') ?? find('dense')!;
    return find('chosen') ?? find('original') ?? find('dense')!;
  };
  const sum = (xs: readonly (readonly (number | null)[])[], k: number): number | null =>
    xs.some((x) => x[k] === null) ? null : xs.reduce((a, x) => a + x[k]!, 0);
  const present = labels.filter((l) => l === 'dense' || curves.some((c) => c.series.some((s) => s.label === l)));
  return {
    n: [...lengths],
    series: present.map((label) => {
      const parts = curves.map((c) => pick(c, label));
      return {
        label,
        spec: curves.length === 1 ? parts[0]!.spec : `sum over ${curves.length} sites`,
        flops: lengths.map((_, k) => sum(parts.map((p) => p.flops), k)),
        ms: lengths.map((_, k) => sum(parts.map((p) => p.ms), k)),
      };
    }),
  };
}
