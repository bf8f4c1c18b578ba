// Per-head forms: when heads of one site want different forms (a local head, a spread-out one), the site can be
// split into head groups, each an Attention of its own with its own spec. A group takes whole key/value heads
// with all their query heads (GQA), and groups are contiguous runs of heads, so Concat puts the outputs back in
// head order. Each key/value head's unit (its query heads) gets the cheapest form that qualifies on all of its
// heads; neighbouring units with the same form merge. The plan pays only when its cost, the Slice / Concat copies
// included, is below the one spec for every head (the caller compares).

import { type AttentionCost, type CallDims, type OpCost, type TargetProfile, timeOp } from '@attnopt/cost';
import { type AttentionGuard, type AttentionParams, type AttentionSpec, groupSize, isLowRank, printSpec } from '@attnopt/ir';
import { type CandidateStats, fallbackRowRate, mergedStats } from './evaluate.js';

/** One head group of a split site. */
export interface HeadGroup {
  /** The query heads of the group, ascending and contiguous. */
  readonly heads: readonly number[];
  /** The key/value heads the group reads (whole: every query head of each is in the group). */
  readonly kvHeads: readonly number[];
  readonly spec: AttentionSpec;
  /** printSpec(spec). */
  readonly chosen: string;
  /** True when the group keeps the site's own spec (error 0). */
  readonly exact: boolean;
  /** False when the group's form holds on the calibration data only (statistical tier, allowUncertified). */
  readonly certified: boolean;
  /** exact (the site's own spec), guarded (run-time certificate, `guard`), statistical (calibration data only). */
  readonly guarantee: 'exact' | 'guarded' | 'statistical';
  /** The run-time guard of a guarded group. */
  readonly guard?: AttentionGuard;
  /** A guarded group: the share of its heads' calibration rows whose certificate exceeds the budget (recomputed). */
  readonly fallbackRate?: number;
  /** Certified max-abs error of the group's heads on the calibration data (0 exact, Infinity uncertified). */
  readonly bound: number;
  readonly measuredError: number;
  /** The group's cost as an Attention of its own heads on the target. */
  readonly flops: number;
  readonly time: number;
}

export interface HeadGroupPlan {
  readonly groups: readonly HeadGroup[];
  /** Σ over groups + the Slice / Concat copies (time counts the per-run overhead once). */
  readonly flops: number;
  readonly time: number;
  /** The Slice / Concat copies alone. */
  readonly copyTime: number;
}

export interface HeadGroupContext {
  readonly params: AttentionParams;
  readonly baseline: AttentionSpec;
  /** The evaluated forms, by index k. */
  readonly forms: readonly AttentionSpec[];
  /** Per query head, per form k: the form's stats on that head's calibration data. */
  readonly headStats: readonly (readonly CandidateStats[])[];
  /** Whether form k qualifies with these stats (guarded, or on calibration data with allowUncertified). */
  readonly qualifies: (k: number, stats: CandidateStats) => boolean;
  /** The guard form k takes with these stats when it qualifies as guarded, else undefined. */
  readonly guardOf?: (k: number, stats: CandidateStats) => AttentionGuard | undefined;
  /** The cost of an Attention of `heads` query heads over `kvHeads` key/value heads with `spec`. */
  readonly cost: (heads: number, kvHeads: number, spec: AttentionSpec) => AttentionCost;
  /**
   * What form k costs beyond its sparse form at that size with these stats: a guarded form's run-time certificate
   * and its predicted fallback rows, dense (0 when it is not guarded).
   */
  readonly guardTime?: (heads: number, kvHeads: number, k: number, stats: CandidateStats) => number;
  readonly target: TargetProfile;
  readonly dims: CallDims;
}

const range = (lo: number, hi: number) => Array.from({ length: hi - lo }, (_, k) => lo + k);

/** The Slice of Q, K, V per group and the Concat of Y, as copies (fp32) on the target, at a call of `dims`. */
function copyOps(ctx: Pick<HeadGroupContext, 'params' | 'dims' | 'target'>, groups: number): OpCost[] {
  const { params: p, dims, target } = ctx;
  const bytes = 4;
  const q = dims.batch * dims.nq * p.numHeads * p.headDim * bytes;
  const k = dims.batch * dims.nk * p.kvNumHeads * p.headDim * bytes;
  const v = dims.batch * dims.nk * p.kvNumHeads * p.vHeadDim * bytes;
  const y = dims.batch * dims.nq * p.numHeads * p.vHeadDim * bytes;
  const copy = (op: string, what: string, size: number) =>
    timeOp(target, { op, what, flops: 0, softmaxFlops: 0, softmaxElements: 0, bytes: 2 * size, otherOps: 0 });
  // each group's slices read and write its share: over all groups, every byte once (plus one op each)
  const ops: OpCost[] = [];
  for (let g = 0; g < groups; g++) {
    ops.push(copy('Slice', `Q heads of group ${g}`, q / groups), copy('Slice', `K heads of group ${g}`, k / groups), copy('Slice', `V heads of group ${g}`, v / groups));
  }
  ops.push(copy('Concat', 'Y of the groups in head order', y));
  return ops;
}

/** The seconds of a split's Slice / Concat copies (copyOps) at a call of `dims`: what a split adds to each call. */
export function splitCopySeconds(params: AttentionParams, dims: CallDims, target: TargetProfile, groups: number): number {
  return copyOps({ params, dims, target }, groups).reduce((a, o) => a + o.seconds, 0);
}

/**
 * The head groups of a site (see the comment at the top), or undefined when every key/value head wants the
 * same form (nothing to split). The caller compares plan.time with the one-spec-for-every-head cost.
 */
export function planHeadGroups(ctx: HeadGroupContext): HeadGroupPlan | undefined {
  const { params, baseline, forms, headStats } = ctx;
  const g = groupSize(params);
  const units = params.kvNumHeads;
  if (units < 2) return undefined;
  const rank = (a: AttentionCost, b: AttentionCost) => a.time - b.time || a.flops - b.flops;
  const unitCost = forms.map((f) => ctx.cost(g, 1, f));
  const extra = (nh: number, nkv: number, k: number, s: CandidateStats) => ctx.guardTime?.(nh, nkv, k, s) ?? 0;
  // per key/value head: the cheapest form qualifying on every query head it serves (-1: the site's own spec),
  // a guarded form with its certificate and fallback rows
  const choice = range(0, units).map((u) => {
    const heads = range(u * g, (u + 1) * g);
    const stats = forms.map((_, k) => mergedStats(heads.map((h) => headStats[h]![k]!)));
    const ok = forms.map((_, k) => k).filter((k) => ctx.qualifies(k, stats[k]!));
    // each qualifying form's cost with its guard, priced once (not in every comparison of the sort)
    const priced = new Map(ok.map((k) => [k, { ...unitCost[k]!, time: unitCost[k]!.time + extra(g, 1, k, stats[k]!) }]));
    ok.sort((a, b) => rank(priced.get(a)!, priced.get(b)!) || a - b);
    return ok[0] ?? -1;
  });
  const runs: { first: number; end: number; k: number }[] = [];
  choice.forEach((k, u) => {
    const last = runs[runs.length - 1];
    if (last && last.k === k) last.end = u + 1;
    else runs.push({ first: u, end: u + 1, k });
  });
  if (runs.length < 2) return undefined;
  const groups: HeadGroup[] = runs.map(({ first, end, k }) => {
    const heads = range(first * g, end * g);
    const kvHeads = range(first, end);
    const spec = k < 0 ? baseline : forms[k]!;
    const cost = ctx.cost(heads.length, kvHeads.length, spec);
    if (k < 0) {
      return { heads, kvHeads, spec, chosen: printSpec(spec), exact: true, certified: true, guarantee: 'exact', bound: 0, measuredError: 0, flops: cost.flops, time: cost.time };
    }
    const s = mergedStats(heads.map((h) => headStats[h]![k]!));
    const guard = ctx.guardOf?.(k, s);
    const certified = guard !== undefined;
    return {
      heads,
      kvHeads,
      spec,
      chosen: printSpec(spec),
      exact: false,
      certified,
      guarantee: guard ? 'guarded' : 'statistical',
      ...(guard ? { guard, fallbackRate: fallbackRowRate(s) } : {}),
      bound: guard ? guard.budget : isLowRank(spec) ? Infinity : s.bound,
      measuredError: s.measuredError,
      flops: cost.flops,
      time: cost.time + extra(heads.length, kvHeads.length, k, s),
    };
  });
  const copies = copyOps(ctx, groups.length);
  const copyTime = copies.reduce((a, o) => a + o.seconds, 0);
  const run = ctx.target.runOverheadSeconds;
  return {
    groups,
    flops: groups.reduce((a, x) => a + x.flops, 0),
    time: groups.reduce((a, x) => a + x.time - run, 0) + run + copyTime,
    copyTime,
  };
}

/** "heads 0-3" / "head 2": the query heads of a group in words. */
export function headsText(heads: readonly number[]): string {
  return heads.length === 1 ? `head ${heads[0]}` : `heads ${heads[0]}-${heads[heads.length - 1]}`;
}

/** One line per site for a split: "heads 0-1: <spec> | heads 2-3: <spec>". */
export function groupsText(groups: readonly HeadGroup[]): string {
  return groups.map((x) => `${headsText(x.heads)}: ${x.chosen}`).join(' | ');
}
