// decide: the choices of optimize, without the lowering. Recognize every site, prove its mask, calibrate, choose
// per site the cheapest form whose certified error fits the budget (per head group where heads want different
// forms and that is cheaper), leaving every site (or each of its head groups) an Attention node with its chosen
// spec: what `optimize` lowers, `compile` turns into kernels, and `explain` puts into words.

import { attentionCost, onnxruntimeCpuProfile, PROFILES, type TargetProfile } from '@attnopt/cost';
import { attentionParams, type AttentionSpec, type Node, parseSpec, printSpec } from '@attnopt/ir';
import { attentionSites, HEAD_GROUP, type HeadGroupAnnotation, type SiteDecision, sparsifyPass } from '@attnopt/passes';
import type { PassNote } from '@attnopt/rewrite';
import { analyze, type SiteFacts } from './analyze.js';
import { type CalibrationSample, collectSiteTensors, generateInputs, type Runtime } from './calibrate/index.js';
import { siteCalibration } from './calibrate/site-calibration.js';
import type { AttnoptModel } from './model.js';

export interface DecideOptions {
  /** Max absolute error of each site's output, certified on the calibration data (default 1e-2; 0: exact only). */
  readonly maxError?: number;
  /** Calibration samples (model inputs); default: generated from the model's input types. */
  readonly samples?: Iterable<CalibrationSample> | AsyncIterable<CalibrationSample>;
  /** Sequence length of generated calibration inputs, and of the reported costs (default 128). */
  readonly seqLen?: number;
  /** Number of generated calibration samples (default 2). */
  readonly calibrationCount?: number;
  /** Seed of generated inputs and of seeded forms (default 0). */
  readonly seed?: number;
  /** The target whose cost model ranks forms (default onnxruntime-cpu: what the emitted ONNX runs on). */
  readonly target?: keyof typeof PROFILES | TargetProfile;
  /** What runs the model to collect calibration data: onnxruntime-node (default) or attnopt's CPU executor. */
  readonly runtime?: Runtime;
  /** Called as each stage starts (progress). */
  readonly onStage?: (stage: string) => void;
}

/** Stage names decide() reports through onStage, in order (calibrate and sparsify only with a budget > 0). */
export const DECIDE_STAGES = ['recognize and analyze masks', 'calibrate', 'sparsify'] as const;

/** One head group of a site split by heads: its own Attention node with its own spec. */
export interface GroupPlan {
  /** `<site>.g<k>`, k counting the groups in head order. */
  readonly id: string;
  /** The group's Attention node (compile it with `compile`). */
  readonly node: Node;
  /** The query heads of the group (contiguous, whole key/value heads). */
  readonly heads: readonly number[];
  readonly kvHeads: readonly number[];
  /** The group's spec, in IR text form. */
  readonly chosen: string;
  readonly exact: boolean;
  /** Certified max-abs error of the group's heads on the calibration data (0 when exact). */
  readonly bound: number;
  readonly measuredError: number | null;
  /** FLOPs of the group at nq = nk = seqLen, batch 1. */
  readonly flops: number;
}

/** One site after decide(): its facts, the form chosen, and sparsify's record of what it tried. */
export interface SitePlan {
  readonly id: string;
  /** The Attention node as recognized and analyzed; its spec now the chosen one (unless split into groups). */
  readonly node: Node;
  /** What recognition and the mask analysis found (exact). */
  readonly facts: SiteFacts;
  /** The spec the site computes now, in IR text form; for a site split by heads, every group's ("heads 0-1: ... | ..."). */
  readonly chosen: string;
  /** True when the site computes exactly what the model did (error 0). */
  readonly exact: boolean;
  /** Certified max-abs error of the site's output on the calibration data (0 when exact; with groups the largest). */
  readonly bound: number;
  /** Max-abs error measured on the calibration data, or null when nothing approximate was chosen. */
  readonly measuredError: number | null;
  /** Why the site kept the spec it was analyzed with, when it did. */
  readonly reason?: string;
  /** Present when the site was split into head groups, in head order. */
  readonly groups?: readonly GroupPlan[];
  /** Sparsify's record: every form tried with its bound, measured error and cost. Absent when sparsify did not run. */
  readonly decision?: SiteDecision;
  /** Why sparsify did not run at this site, when it did not. */
  readonly skipped?: string;
  /** FLOPs of the site at nq = nk = seqLen, batch 1, with the spec it was recognized with and with the chosen one(s). */
  readonly flopsBefore: number;
  readonly flopsAfter: number;
}

export interface DecideResult {
  readonly budget: number;
  /** The target whose cost model ranked the forms. */
  readonly target: string;
  readonly seqLen: number;
  readonly sites: readonly SitePlan[];
  readonly notes: readonly PassNote[];
}

export function targetProfile(target: DecideOptions['target']): TargetProfile {
  if (target === undefined) return onnxruntimeCpuProfile;
  if (typeof target !== 'string') return target;
  const p = PROFILES[target];
  if (!p) throw new Error(`unknown target ${target}: one of ${Object.keys(PROFILES).join(', ')}`);
  return p;
}

function siteFlops(node: Node, spec: AttentionSpec, seqLen: number, profile: TargetProfile): number {
  try {
    return attentionCost({ ...attentionParams(node), spec }, { batch: 1, nq: seqLen, nk: seqLen }, profile).flops;
  } catch {
    return NaN; // data-dependent specs without data: unknown
  }
}

function groupPlans(id: string, d: SiteDecision, nodes: readonly Node[], seqLen: number, profile: TargetProfile): GroupPlan[] {
  return nodes.map((g, k) => {
    const info = d.groups![k]!;
    const spec = attentionParams(g).spec;
    const heads = (g.annotations.get(HEAD_GROUP) as HeadGroupAnnotation | undefined)?.heads ?? info.heads;
    return {
      id: `${id}.g${k}`,
      node: g,
      heads,
      kvHeads: info.kvHeads,
      chosen: printSpec(spec),
      exact: info.exact,
      bound: info.exact ? 0 : info.bound,
      measuredError: info.exact ? null : info.measuredError,
      flops: siteFlops(g, spec, seqLen, profile),
    };
  });
}

/**
 * Recognizes every site of `model`, proves its mask, calibrates and chooses its form (exactly what `optimize`
 * does before lowering), leaving the sites as Attention nodes. The graph changes in place.
 */
export async function decide(model: AttnoptModel, options: DecideOptions = {}): Promise<DecideResult> {
  const budget = options.maxError ?? 1e-2;
  if (!(budget >= 0) || !Number.isFinite(budget)) throw new Error(`max error must be a finite number >= 0, got ${budget}`);
  const profile = targetProfile(options.target);
  const seqLen = options.seqLen ?? 128;
  const stage = options.onStage ?? (() => {});

  stage('recognize and analyze masks');
  const analysis = analyze(model.graph, { seqLen });
  const notes: PassNote[] = [...analysis.notes];
  const facts = new Map(analysis.sites.map((f) => [f.id, f]));
  // the sites as analyzed (ids site<k>), before sparsify splits any of them into head groups
  const sites = attentionSites(model.graph);

  const decisions = new Map<Node, SiteDecision>();
  const groupNodes = new Map<Node, readonly Node[]>();
  const calibrated = new Set<string>();
  const uncollected = new Map<string, string>(); // site -> why calibration read nothing there
  if (budget > 0 && sites.length > 0) {
    stage('calibrate');
    const samples = options.samples ?? generateInputs(model, { seqLen, seed: options.seed ?? 0, count: options.calibrationCount ?? 2 });
    const collected = await collectSiteTensors(model, samples, { runtime: options.runtime ?? 'onnxruntime' });
    for (const s of collected) if (s.skipped !== undefined) uncollected.set(s.id, s.skipped);
    const calibration = collected.filter((s) => s.samples.length > 0);
    for (const s of calibration) calibrated.add(s.id);
    stage('sparsify');
    const pass = sparsifyPass({
      budget,
      target: profile,
      seed: options.seed ?? 0,
      calibration: calibration.map(siteCalibration),
      onDecision: (d, node, groups) => {
        decisions.set(node, d);
        if (groups) groupNodes.set(node, groups);
      },
    });
    notes.push(...pass.run(model.graph).notes);
  }

  const plans = sites.map(({ id, node }): SitePlan => {
    const f = facts.get(id)!;
    const decision = decisions.get(node);
    const skipped =
      decision !== undefined
        ? undefined
        : budget === 0
          ? 'the budget is 0: only exact rewrites are allowed, so no approximate form was tried'
          : !calibrated.has(id)
            ? `no calibration data reached this site${uncollected.has(id) ? `: ${uncollected.get(id)}` : ''}`
            : 'sparsify made no decision for this site';
    const common = { id, node, facts: f, ...(decision ? { decision } : {}), ...(skipped ? { skipped } : {}) };
    const flopsBefore = siteFlops(node, parseSpec(f.recognized), seqLen, profile);
    const split = groupNodes.get(node);
    if (split !== undefined && decision?.groups !== undefined) {
      const groups = groupPlans(id, decision, split, seqLen, profile);
      const exact = groups.every((g) => g.exact);
      return {
        ...common,
        chosen: decision.chosen,
        exact,
        bound: exact ? 0 : decision.bound,
        measuredError: exact ? null : decision.measuredError,
        groups,
        flopsBefore,
        flopsAfter: groups.reduce((a, g) => a + g.flops, 0),
      };
    }
    const spec = attentionParams(node).spec;
    const approximate = decision !== undefined && decision.reasonDense === undefined && !decision.exact;
    const reason = skipped ?? decision?.reasonDense;
    return {
      ...common,
      chosen: printSpec(spec),
      exact: !approximate,
      bound: approximate ? decision.bound : 0,
      measuredError: approximate ? decision.measuredError : null,
      ...(reason !== undefined ? { reason } : {}),
      flopsBefore,
      flopsAfter: siteFlops(node, spec, seqLen, profile),
    };
  });
  return { budget, target: profile.name, seqLen, sites: plans, notes };
}
