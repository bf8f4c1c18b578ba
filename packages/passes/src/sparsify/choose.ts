// chooseSiteSpec: per site, the cheapest candidate form (by the cost model on the target) whose certified
// error on the calibration data stays within the budget; the site's own spec when nothing qualifies or
// nothing is cheaper. Low-rank forms (Nystrom, Linformer, Performer) have no certificate: their error is measured
// on the calibration data and recorded; they qualify on that measured error only with allowUncertified. When heads
// want different forms and head groups are cheaper by the cost model than one spec for every head, the decision
// lists the groups (head-groups.ts) and the pass splits the site. Pure: plain data in, a SiteDecision out;
// deterministic for the same inputs and seed.

import { attentionCost, attnoptCpuProfile, type AttentionCost, type CallDims, type TargetProfile } from '@attnopt/cost';
import {
  type AttentionParams,
  type AttentionSpec,
  isDataDependent,
  isLowRank,
  type LeafResolver,
  type MaskSpec,
  printSpec,
  specEquals,
} from '@attnopt/ir';
import { type HeadData, headData, sampleBatch, type SiteCalibration } from './calibration.js';
import { defaultCandidates, restrictToBaseline } from './candidates.js';
import { type CandidateStats, emptyStats, evaluateHead } from './evaluate.js';
import { groupsText, type HeadGroup, headsText, planHeadGroups } from './head-groups.js';
import { baselineOutput, emptyLowRankStats, type EvaluableLowRank, evaluateLowRankHead } from './lowrank.js';
import { headResolver } from './resolve.js';

export interface SparsifyOptions {
  /** Max absolute error of the site's output allowed, certified on the calibration data (default 1e-2). */
  readonly budget?: number;
  /**
   * The target whose cost model ranks the forms (default attnopt-cpu, fused, empty tiles skipped). On
   * onnxruntime-cpu the model costs the form the lowering emits (the IR's loweringChoice): windows and
   * sinks ∪ window banded (n · (block + w) scores), top-level block layouts block-gathered, the rest dense.
   */
  readonly target?: TargetProfile;
  /** Seed of the data-dependent and random forms (LSH rotations, Linformer / Performer draws). Default 0. */
  readonly seed?: number;
  /** The candidate forms (unrestricted; each is intersected with the site's spec). Default: defaultCandidates. */
  readonly candidates?: readonly AttentionSpec[];
  /** Evaluate and record every head apart (default true); needed for head groups. */
  readonly perHead?: boolean;
  /**
   * Split the site into head groups, each with its own spec, when that is cheaper by the cost model than one
   * spec for every head (default true; needs perHead). Off: one spec that satisfies every head.
   */
  readonly headGroups?: boolean;
  /**
   * Accept forms without a certificate (low-rank: Nystrom, Linformer, Performer) on their max-abs error measured
   * on the calibration data alone (BOUNDS.md (c), (d)). Default false: they are measured and recorded, never accepted.
   */
  readonly allowUncertified?: boolean;
  /** Use at most this many calibration samples (default all). */
  readonly maxSamples?: number;
}

/** One form tried at a site. Bounds and errors are max-abs over the output, over every head and sample. */
export interface TriedForm {
  /** The form as printSpec writes it (restricted to the site's spec). */
  readonly spec: string;
  /** Whether the bound is a certificate (mask-shaped forms) or nothing is certified (low-rank). */
  readonly certified: boolean;
  /** Certified max-abs error on the calibration data (BOUNDS.md (a) with the dropped mass measured); null: not evaluated or uncertified. */
  readonly bound: number | null;
  /** Max |o - o_S| measured on the calibration data; null: not evaluated. */
  readonly measuredError: number | null;
  /** Rows the error was measured on (rows of over-budget forms are sampled) out of `rows`. */
  readonly measuredRows: number;
  readonly rows: number;
  /** Largest dropped mass of a row. */
  readonly maxDroppedMass: number | null;
  readonly flops: number;
  readonly time: number;
  readonly accepted: boolean;
  readonly reason: string;
}

export interface HeadDetail {
  readonly head: number;
  /** The cheapest qualifying form for this head alone (printSpec), or the site's spec. */
  readonly best: string;
  readonly bound: number;
}

/** What one spec for every head would have given, recorded when head groups were chosen instead. */
export interface UniformChoice {
  readonly chosen: string;
  readonly bound: number;
  readonly flops: number;
  readonly time: number;
}

export type { HeadGroup } from './head-groups.js';

export interface SiteDecision {
  readonly id: string;
  readonly target: string;
  readonly budget: number;
  /** The site's spec before sparsify (the baseline every form is restricted to). */
  readonly before: string;
  /** The one spec of the site; with `groups`, the site's own spec (each group's spec is in `groups`). */
  readonly chosenSpec: AttentionSpec;
  /** printSpec(chosenSpec); with `groups`, every group's heads and spec ("heads 0-1: ... | heads 2-3: ..."). */
  readonly chosen: string;
  /** True when the chosen spec is the site's own (error 0). */
  readonly exact: boolean;
  /** False when the chosen form is low-rank (accepted on measured error alone, allowUncertified). */
  readonly certified: boolean;
  /**
   * Certified max-abs error; Infinity when the chosen form has no certificate (see measuredError). With groups,
   * the largest group bound (the groups write disjoint heads of the output).
   */
  readonly bound: number;
  readonly measuredError: number;
  readonly flopsBefore: number;
  readonly flopsAfter: number;
  readonly timeBefore: number;
  readonly timeAfter: number;
  readonly tried: readonly TriedForm[];
  readonly perHead?: readonly HeadDetail[];
  /** Present when the site is split into head groups (in head order), each its own Attention with its own spec. */
  readonly groups?: readonly HeadGroup[];
  /** With groups: the one spec for every head they beat. */
  readonly uniform?: UniformChoice;
  /** Why the site stayed with its own spec. */
  readonly reasonDense?: string;
  readonly notes: readonly string[];
}

const fmt = (x: number) => x.toPrecision(3);

function costOf(params: AttentionParams, spec: AttentionSpec, dims: CallDims, target: TargetProfile, resolve: LeafResolver): AttentionCost & { selectionTime: number } {
  const p = { ...params, spec };
  const cost = attentionCost(p, dims, target, isDataDependent(spec) ? { resolve } : {});
  // the cost model counts the selection work (block scores, hashing) of a top-level leaf only: add a nested one's
  let selectionTime = 0;
  let selectionFlops = 0;
  if (!isLowRank(spec) && isDataDependent(spec) && spec.kind !== 'topkBlocks' && spec.kind !== 'lsh') {
    const leaf = findLeaf(spec);
    if (leaf) {
      const ops = attentionCost({ ...params, spec: leaf }, dims, target, { resolve }).ops.slice(0, 3);
      selectionTime = ops.reduce((a, o) => a + o.seconds, 0);
      selectionFlops = ops.reduce((a, o) => a + o.flops, 0);
    }
  }
  return { ...cost, flops: cost.flops + selectionFlops, time: cost.time + selectionTime, selectionTime };
}

function findLeaf(spec: MaskSpec): MaskSpec | undefined {
  if (spec.kind === 'topkBlocks' || spec.kind === 'lsh') return spec;
  if (spec.kind === 'union' || spec.kind === 'intersect') for (const p of spec.parts) { const l = findLeaf(p); if (l) return l; }
  if (spec.kind === 'diff') return findLeaf(spec.base) ?? findLeaf(spec.minus);
  return undefined;
}

/** Chooses the spec of one site from its calibration data (see SparsifyOptions). */
export function chooseSiteSpec(params: AttentionParams, calibration: SiteCalibration, options: SparsifyOptions = {}): SiteDecision {
  const budget = options.budget ?? 1e-2;
  const target = options.target ?? attnoptCpuProfile;
  const seed = options.seed ?? 0;
  const perHead = options.perHead ?? true;
  const splitHeads = perHead && (options.headGroups ?? true);
  if (!(budget >= 0)) throw new Error(`sparsify: budget must be >= 0, got ${budget}`);
  const baseline = params.spec;
  const notes: string[] = [];
  const samples = calibration.samples.slice(0, options.maxSamples ?? calibration.samples.length);
  const stay = (reasonDense: string, tried: TriedForm[] = [], before?: AttentionCost, perHeadDetails?: HeadDetail[]): SiteDecision => ({
    id: calibration.id,
    target: target.name,
    budget,
    before: printSpec(baseline),
    chosenSpec: baseline,
    chosen: printSpec(baseline),
    exact: true,
    certified: true,
    bound: 0,
    measuredError: 0,
    flopsBefore: before?.flops ?? NaN,
    flopsAfter: before?.flops ?? NaN,
    timeBefore: before?.time ?? NaN,
    timeAfter: before?.time ?? NaN,
    tried,
    ...(perHeadDetails ? { perHead: perHeadDetails } : {}),
    reasonDense,
    notes,
  });
  if (isLowRank(baseline)) return stay(`the site is already a low-rank form (${printSpec(baseline)})`);
  if (isDataDependent(baseline)) return stay(`the site's spec is already data-dependent (${printSpec(baseline)})`);
  if (samples.length === 0) return stay('no calibration samples for this site');

  const first = headData(params, samples[0]!, 0, 0);
  const dims: CallDims = { batch: sampleBatch(samples[0]!), nq: first.nq, nk: first.nk };
  const resolve0 = headResolver(first);
  const before = costOf(params, baseline, dims, target, resolve0);
  const forms = (options.candidates ?? defaultCandidates(baseline, first.nk, seed)).map((c) => restrictToBaseline(baseline, c));
  const unique = forms.filter((f, k) => !specEquals(f, baseline) && forms.findIndex((g) => specEquals(f, g)) === k);
  const costs = unique.map((f) => costOf(params, f, dims, target, resolve0));

  // which forms are worth evaluating: cheaper than the baseline, and certifiable (or uncertified allowed)
  const pending: { form: AttentionSpec; cost: AttentionCost; reason?: string }[] = unique.map((form, k) => {
    const cost = costs[k]!;
    if (budget === 0) return { form, cost, reason: 'budget 0 allows exact rewrites only: a form certified on the calibration data alone is not exact' };
    if (!(cost.time < before.time)) return { form, cost, reason: `not cheaper on ${target.target}: ${fmt(cost.time * 1e3)} ms vs ${fmt(before.time * 1e3)} ms` };
    if (form.kind === 'performer' && !(params.scale >= 0)) return { form, cost, reason: `performer needs scale >= 0, got ${params.scale}` };
    return { form, cost };
  });
  const evaluated = pending.filter((p) => p.reason === undefined);
  const masks = evaluated.map((p) => p.form);
  const lowK = masks.map((_, k) => k).filter((k) => isLowRank(masks[k]!));
  const maskK = masks.map((_, k) => k).filter((k) => !isLowRank(masks[k]!));
  const maskForms = maskK.map((k) => masks[k] as MaskSpec);
  const lowForms = lowK.map((k) => masks[k] as EvaluableLowRank);
  const heads = params.numHeads;
  const headStats: CandidateStats[][] = Array.from({ length: perHead ? heads : 1 }, () =>
    masks.map((f) => (isLowRank(f) ? emptyLowRankStats() : emptyStats())),
  );
  if (masks.length > 0) {
    for (const sample of samples) {
      const batch = sampleBatch(sample);
      for (let b = 0; b < batch; b++) {
        for (let h = 0; h < heads; h++) {
          const head: HeadData = b === 0 && h === 0 && sample === samples[0] ? first : headData(params, sample, b, h);
          const stride = Math.max(1, Math.floor(head.nq / 256));
          const all = headStats[perHead ? h : 0]!;
          const resolve = headResolver(head);
          if (maskForms.length > 0) {
            const st = maskK.map((k) => all[k]!);
            evaluateHead(head, baseline, maskForms, st, resolve, { fullMeasureUpTo: budget, stride });
          }
          if (lowForms.length > 0) {
            const st = lowK.map((k) => all[k]!);
            evaluateLowRankHead(head, baseline, lowForms, st, resolve, baselineOutput(head, baseline, resolve));
          }
        }
      }
    }
  }
  // a mask-shaped form qualifies on its certified bound; a low-rank one on its measured error, with allowUncertified
  const within = (k: number, s: { bound: number; measuredError: number }) =>
    isLowRank(masks[k]!) ? options.allowUncertified === true && s.measuredError <= budget : s.bound <= budget;
  const site = masks.map((_, k) => {
    const all = headStats.map((s) => s[k]!);
    return {
      bound: Math.max(...all.map((s) => s.bound)),
      measuredError: Math.max(...all.map((s) => s.measuredError)),
      measuredRows: all.reduce((a, s) => a + s.measuredRows, 0),
      rows: all.reduce((a, s) => a + s.rows, 0),
      maxDroppedMass: Math.max(...all.map((s) => s.maxDroppedMass)),
    };
  });
  const rank = (a: AttentionCost, b: AttentionCost) => a.time - b.time || a.flops - b.flops;
  const qualifying = masks.map((_, k) => k).filter((k) => within(k, site[k]!));
  const order = [...qualifying].sort((a, b) => rank(evaluated[a]!.cost, evaluated[b]!.cost) || a - b);
  const best = order[0];

  // head groups: each key/value head's cheapest qualifying form, when that beats one spec for every head
  const uniformCost = best === undefined ? before : evaluated[best]!.cost;
  const plan =
    splitHeads && masks.length > 0
      ? planHeadGroups({
          params,
          baseline,
          forms: masks,
          headStats,
          qualifies: within,
          cost: (nh, nkv, spec) => costOf({ ...params, numHeads: nh, kvNumHeads: nkv }, spec, dims, target, resolve0),
          target,
          dims,
        })
      : undefined;
  const split = plan !== undefined && plan.time < uniformCost.time ? plan : undefined;
  const groupOf = (k: number) => split?.groups.filter((g) => specEquals(g.spec, masks[k]!)) ?? [];

  const cheaper = () => printSpec(evaluated[best!]!.form);
  const maskReason = (k: number, s: (typeof site)[number]) =>
    k === best
      ? `chosen: cheapest form with certified bound ${fmt(s.bound)} <= budget ${budget}`
      : s.bound <= budget
        ? `qualifies (bound ${fmt(s.bound)} <= ${budget}) but ${cheaper()} is cheaper`
        : `certified bound ${fmt(s.bound)} > budget ${budget} (max dropped mass ${fmt(s.maxDroppedMass)})`;
  const lowRankReason = (k: number, s: (typeof site)[number]) =>
    !options.allowUncertified
      ? `measured error ${fmt(s.measuredError)}: no certificate (BOUNDS.md (c)): enable uncertified forms to accept measured error`
      : k === best
        ? `chosen: measured, not certified: cheapest form with measured error ${fmt(s.measuredError)} <= budget ${budget} on the calibration data`
        : s.measuredError <= budget
          ? `qualifies on measured error ${fmt(s.measuredError)} <= ${budget} (not certified) but ${cheaper()} is cheaper`
          : `measured error ${fmt(s.measuredError)} > budget ${budget} (not certified)`;
  const splitReason = (k: number) => {
    const gs = groupOf(k);
    const heads = gs.map((g) => headsText(g.heads)).join(', ');
    if (gs.length > 0) {
      const worst = Math.max(...gs.map((g) => (g.certified ? g.bound : g.measuredError)));
      return `chosen for ${heads} (head groups): ${gs[0]!.certified ? `certified bound ${fmt(worst)}` : `measured, not certified: measured error ${fmt(worst)}`} <= budget ${budget} on those heads`;
    }
    return undefined;
  };
  const tried: TriedForm[] = pending.map((p) => {
    const k = evaluated.indexOf(p);
    const s = k >= 0 ? site[k]! : undefined;
    const certified = !isLowRank(p.form);
    const own = p.reason ?? (certified ? maskReason(k, s!) : lowRankReason(k, s!));
    const reason = split && k >= 0 ? (splitReason(k) ?? (k === best ? `qualifies for every head, but head groups are cheaper` : own)) : own;
    return {
      spec: printSpec(p.form),
      certified,
      bound: s && certified ? s.bound : null,
      measuredError: s ? s.measuredError : null,
      measuredRows: s?.measuredRows ?? 0,
      rows: s?.rows ?? 0,
      maxDroppedMass: s && certified ? s.maxDroppedMass : null,
      flops: p.cost.flops,
      time: p.cost.time,
      accepted: k >= 0 && (split ? groupOf(k).length > 0 : k === best),
      reason,
    };
  });
  let perHeadDetails: HeadDetail[] | undefined;
  if (perHead) {
    perHeadDetails = headStats.map((stats, h) => {
      const ok = masks.map((_, k) => k).filter((k) => within(k, stats[k]!)).sort((a, b) => rank(evaluated[a]!.cost, evaluated[b]!.cost) || a - b);
      return ok.length > 0
        ? { head: h, best: printSpec(masks[ok[0]!]!), bound: stats[ok[0]!]!.bound }
        : { head: h, best: printSpec(baseline), bound: 0 };
    });
    if (split) {
      notes.push(
        `heads differ in their cheapest qualifying form: split into ${split.groups.length} head groups (${groupsText(split.groups)}), ` +
          `${fmt(split.time * 1e3)} ms (copies ${fmt(split.copyTime * 1e3)} ms included) vs ${fmt(uniformCost.time * 1e3)} ms for one spec for every head on ${target.name}`,
      );
    } else if (new Set(perHeadDetails.map((d) => d.best)).size > 1) {
      notes.push(
        !splitHeads
          ? 'heads differ in their cheapest qualifying form; head groups are off, so the chosen form is the cheapest that satisfies every head (per-head details recorded)'
          : plan === undefined
            ? 'heads differ in their cheapest qualifying form, but every key/value head (with its query heads) wants the same one: one spec for every head'
            : `heads differ in their cheapest qualifying form, but head groups (${groupsText(plan.groups)}) cost ${fmt(plan.time * 1e3)} ms ` +
              `(copies included) vs ${fmt(uniformCost.time * 1e3)} ms for one spec for every head: kept one spec`,
      );
    }
  }
  if (split) {
    const certified = split.groups.every((g) => g.certified);
    if (!certified) {
      notes.push(
        `${split.groups.filter((g) => !g.certified).map((g) => `${headsText(g.heads)}: ${g.chosen}`).join(', ')} accepted on measured error <= budget ${budget} ` +
          'on the calibration data: measured, not certified (BOUNDS.md (c), (d); allowUncertified)',
      );
    }
    return {
      id: calibration.id,
      target: target.name,
      budget,
      before: printSpec(baseline),
      chosenSpec: baseline,
      chosen: groupsText(split.groups),
      exact: false,
      certified,
      bound: Math.max(...split.groups.map((g) => g.bound)),
      measuredError: Math.max(...split.groups.map((g) => g.measuredError)),
      flopsBefore: before.flops,
      flopsAfter: split.flops,
      timeBefore: before.time,
      timeAfter: split.time,
      tried,
      ...(perHeadDetails ? { perHead: perHeadDetails } : {}),
      groups: split.groups,
      uniform:
        best === undefined
          ? { chosen: printSpec(baseline), bound: 0, flops: before.flops, time: before.time }
          : { chosen: printSpec(evaluated[best]!.form), bound: site[best]!.bound, flops: uniformCost.flops, time: uniformCost.time },
      notes,
    };
  }
  const lowRankNote = () =>
    lowK.length === 0
      ? ''
      : `; low-rank forms measured (not certified), the smallest error ${fmt(Math.min(...lowK.map((k) => site[k]!.measuredError)))}` +
        (options.allowUncertified ? '' : ' (allowUncertified is off)');
  if (best === undefined) {
    const reasonDense =
      budget === 0
        ? 'budget 0 allows exact rewrites only, and the site already has its exact spec'
        : evaluated.length === 0
        ? unique.some((f, k) => !isLowRank(f) && !(costs[k]!.time < before.time))
          ? `no candidate is cheaper than ${printSpec(baseline)} on ${target.target}` +
            (target.execution === 'unfused' ? ' (only banded or block-gathered forms compute fewer than nq x nk scores there)' : '')
          : 'no certifiable candidate is cheaper'
        : maskK.length > 0
        ? `no cheaper form has a certified bound within the budget ${budget} (the tightest: ${fmt(Math.min(...maskK.map((k) => site[k]!.bound)))})` +
          lowRankNote()
        : `no cheaper certifiable form; ${options.allowUncertified ? `no low-rank form has a measured error within the budget ${budget}` : 'low-rank forms have no certificate and allowUncertified is off'}` +
          lowRankNote();
    return stay(reasonDense, tried, before, perHeadDetails);
  }
  const chosen = evaluated[best]!;
  const s = site[best]!;
  const chosenCertified = !isLowRank(chosen.form);
  if (!chosenCertified) {
    notes.push(
      `${printSpec(chosen.form)} accepted on measured error ${fmt(s.measuredError)} <= budget ${budget} on the calibration data: measured, not certified (BOUNDS.md (c), (d); allowUncertified)`,
    );
  }
  return {
    id: calibration.id,
    target: target.name,
    budget,
    before: printSpec(baseline),
    chosenSpec: chosen.form,
    chosen: printSpec(chosen.form),
    exact: false,
    certified: chosenCertified,
    bound: s.bound,
    measuredError: s.measuredError,
    flopsBefore: before.flops,
    flopsAfter: chosen.cost.flops,
    timeBefore: before.time,
    timeAfter: chosen.cost.time,
    tried,
    ...(perHeadDetails ? { perHead: perHeadDetails } : {}),
    notes,
  };
}
