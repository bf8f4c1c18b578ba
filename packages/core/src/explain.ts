// explain: what optimize does to each attention site and why, from the records the passes keep.
// decide() is optimize without the lowering: recognize, prove masks, calibrate, sparsify, leaving every site an
// Attention node with its chosen spec (what `attnopt codegen` compiles and `attnopt inspect` reports);
// explain() turns its records into sentences.

import { attentionCost, onnxruntimeCpuProfile, PROFILES, type TargetProfile } from '@attnopt/cost';
import { attentionParams, type AttentionSpec, type Node, parseSpec, printSpec } from '@attnopt/ir';
import {
  attentionSites,
  type SiteDecision,
  sparsifyPass,
  type TriedForm,
} from '@attnopt/passes';
import type { PassNote } from '@attnopt/rewrite';
import { analyze, type SiteFacts } from './analyze.js';
import { collectSiteTensors, generateInputs } from './calibrate/index.js';
import type { AttnoptModel } from './model.js';
import type { OptimizeOptions } from './optimize.js';
import { siteCalibration } from './calibrate/site-calibration.js';

/** One site after decide(): its facts, the form chosen, and sparsify's record of what it tried. */
export interface SitePlan {
  readonly id: string;
  /** The Attention node, its spec now the chosen one (compile it with `compile`). */
  readonly node: Node;
  /** What recognition and the mask analysis found (exact). */
  readonly facts: SiteFacts;
  /** The spec the site computes now, in IR text form. */
  readonly chosen: string;
  /** Sparsify's record: every form tried with its bound, measured error and cost. Absent when sparsify did not run. */
  readonly decision?: SiteDecision;
  /** Why sparsify did not run at this site, when it did not. */
  readonly skipped?: string;
  /** FLOPs of the site at nq = nk = seqLen, batch 1, with the spec it was recognized with and with the chosen one. */
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

function profileOf(target: OptimizeOptions['target']): TargetProfile {
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

/**
 * Recognizes every site of `model`, proves its mask, calibrates and chooses its form exactly as `optimize`
 * does, but leaves the sites as Attention nodes (no lowering, nothing written). The graph changes in place.
 */
export async function decide(model: AttnoptModel, options: OptimizeOptions = {}): Promise<DecideResult> {
  const budget = options.maxError ?? 1e-2;
  if (!(budget >= 0) || !Number.isFinite(budget)) throw new Error(`max error must be a finite number >= 0, got ${budget}`);
  const profile = profileOf(options.target);
  const seqLen = options.seqLen ?? 128;
  const stage = options.onStage ?? (() => {});

  stage('recognize and analyze masks');
  const analysis = analyze(model.graph, { seqLen });
  const notes: PassNote[] = [...analysis.notes];
  const facts = new Map(analysis.sites.map((f) => [f.id, f]));
  // the spec each site was recognized with, before the mask analysis (what the model computed): for the cost
  const recognized = new Map<Node, AttentionSpec>(attentionSites(model.graph).map(({ id, node }) => [node, parseSpec(facts.get(id)!.recognized)]));

  const decisions = new Map<Node, SiteDecision>();
  const calibrated = new Set<string>();
  if (budget > 0 && recognized.size > 0) {
    stage('calibrate');
    const samples = options.samples ?? generateInputs(model, { seqLen, seed: options.seed ?? 0, count: options.calibrationCount ?? 2 });
    const calibration = (await collectSiteTensors(model, samples)).filter((s) => s.samples.length > 0);
    for (const s of calibration) calibrated.add(s.id);
    stage('sparsify');
    const pass = sparsifyPass({
      budget,
      target: profile,
      seed: options.seed ?? 0,
      calibration: calibration.map(siteCalibration),
      onDecision: (d, node) => decisions.set(node, d),
    });
    notes.push(...pass.run(model.graph).notes);
  }

  const sites = attentionSites(model.graph).map(({ id, node }): SitePlan => {
    const spec = attentionParams(node).spec;
    const decision = decisions.get(node);
    const skipped =
      decision !== undefined
        ? undefined
        : budget === 0
          ? 'the budget is 0: only exact rewrites are allowed, so no approximate form was tried'
          : !calibrated.has(id)
            ? 'no calibration data reached this site'
            : 'sparsify made no decision for this site';
    return {
      id,
      node,
      facts: facts.get(id)!,
      chosen: printSpec(spec),
      ...(decision ? { decision } : {}),
      ...(skipped ? { skipped } : {}),
      flopsBefore: siteFlops(node, recognized.get(node) ?? spec, seqLen, profile),
      flopsAfter: siteFlops(node, spec, seqLen, profile),
    };
  });
  return { budget, target: profile.name, seqLen, sites, notes };
}

/** One form sparsify tried, in words. */
export function describeTried(t: TriedForm): string {
  const f = (x: number | null) => (x === null ? 'n/a' : x.toPrecision(3));
  const error = t.certified ? `bound ${f(t.bound)}, measured ${f(t.measuredError)}` : `uncertified, measured ${f(t.measuredError)}`;
  return `${t.spec}: ${t.accepted ? 'qualifies' : 'rejected'} (${error}, flops ${f(t.flops)}, time ${f(t.time * 1e3)} ms): ${t.reason}`;
}

export interface SiteExplanation {
  readonly id: string;
  readonly node: string;
  readonly onnxNodes: readonly string[];
  /** True when the site computes a different spec than it was recognized with (exactly or within the budget). */
  readonly rewritten: boolean;
  /** True when what the site computes is exactly what the model computed. */
  readonly exact: boolean;
  readonly recognized: string;
  readonly proven: string;
  readonly chosen: string;
  /** The reasons, in order: recognition, mask analysis, the choice of form. */
  readonly why: readonly string[];
  /** Every form sparsify tried, in words (empty when it did not run). */
  readonly tried: readonly string[];
}

export interface Explanation {
  readonly budget: number;
  readonly target: string;
  readonly seqLen: number;
  readonly sites: readonly SiteExplanation[];
}

const fmt = (x: number) => (Number.isFinite(x) ? x.toPrecision(3) : 'n/a');

function explainSite(plan: SitePlan, budget: number): SiteExplanation {
  const f = plan.facts;
  const d = plan.decision;
  const why: string[] = [];
  const lifted = f.rule === null ? 'an Attention node of the graph' : `lifted by the ${f.rule} rule from ${f.onnxNodes.length} ONNX node${f.onnxNodes.length === 1 ? '' : 's'}`;
  why.push(`recognized as ${f.recognized} attention (${lifted}), ${f.heads} heads of size ${f.headDim}${f.bias ? `, masked by ${f.bias}` : ''}`);
  if (f.bias === null) why.push(`no mask input: the op itself says which keys each query sees (${f.recognized})`);
  else if (f.proven && f.residualBias === null) why.push(`the mask analysis proved ${f.bias} keeps exactly ${f.spec}: bias dropped, spec ${f.spec} (exact, error 0)`);
  else if (f.proven) why.push(`the mask analysis proved the structure ${f.spec} in ${f.bias} and kept its data-dependent part ${f.residualBias} as the bias (exact, error 0)`);
  else {
    const reason = f.notes.length > 0 ? f.notes.join('; ') : 'nothing in it could be proven structural';
    why.push(`kept the mask ${f.bias} as it is: ${reason}`);
  }
  if (plan.skipped !== undefined) why.push(`kept ${plan.chosen}: ${plan.skipped}`);
  else if (d !== undefined && d.reasonDense !== undefined) why.push(`kept ${d.chosen}: ${d.reasonDense}`);
  else if (d !== undefined) {
    const certificate = d.certified
      ? `certified error bound ${fmt(d.bound)} <= budget ${budget}, measured ${fmt(d.measuredError)} on the calibration data`
      : `not certified: measured error ${fmt(d.measuredError)} <= budget ${budget} on the calibration data only`;
    why.push(
      `rewritten ${d.before} -> ${d.chosen}: the cheapest form within the budget on ${d.target} (${certificate}; ` +
        `flops ${fmt(d.flopsBefore)} -> ${fmt(d.flopsAfter)}, time ${fmt(d.timeBefore * 1e3)} -> ${fmt(d.timeAfter * 1e3)} ms)`,
    );
  }
  for (const n of d?.notes ?? []) why.push(n);
  const approximate = d !== undefined && d.reasonDense === undefined && !d.exact;
  return {
    id: plan.id,
    node: f.node,
    onnxNodes: f.onnxNodes,
    rewritten: plan.chosen !== f.recognized || f.proven,
    exact: !approximate,
    recognized: f.recognized,
    proven: f.spec,
    chosen: plan.chosen,
    why,
    tried: (d?.tried ?? []).map(describeTried),
  };
}

/** Why each site of a decide() result was or was not rewritten, in words. */
export function explainDecisions(result: DecideResult): Explanation {
  return {
    budget: result.budget,
    target: result.target,
    seqLen: result.seqLen,
    sites: result.sites.map((s) => explainSite(s, result.budget)),
  };
}

/** decide() then explainDecisions(): what optimize would do to each site of `model`, and why. */
export async function explain(model: AttnoptModel, options: OptimizeOptions = {}): Promise<Explanation> {
  return explainDecisions(await decide(model, options));
}

