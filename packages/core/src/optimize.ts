// optimize: the whole job on one model. Recognize every attention site, prove what its own mask keeps
// (exact, error 0), calibrate, choose per site the cheapest form whose certified error fits the budget,
// (per head group where heads want different forms and that is cheaper), and lower every site back to standard
// ONNX ops so any runtime runs the result.

import { attentionCost, onnxruntimeCpuProfile, PROFILES, type TargetProfile } from '@attnopt/cost';
import { attentionParams, type AttentionSpec, type Node, printSpec } from '@attnopt/ir';
import {
  analyzeMaskPass,
  attentionSites,
  HEAD_GROUP,
  type HeadGroupAnnotation,
  lowerAttentionPass,
  type SiteDecision,
  SPARSIFY_DECISION,
  sparsifyPass,
} from '@attnopt/passes';
import { type PassNote, runPipeline } from '@attnopt/rewrite';
import { type CalibrationSample, collectSiteTensors, generateInputs } from './calibrate/index.js';
import type { AttnoptModel } from './model.js';
import { recognize } from './recognize.js';
import { siteCalibration } from './calibrate/site-calibration.js';

export interface OptimizeOptions {
  /** Max absolute error of each site's output, certified on the calibration data (default 1e-2; 0: exact only). */
  readonly maxError?: number;
  /** Calibration samples (model inputs); default: generated from the model's input types. */
  readonly samples?: Iterable<CalibrationSample> | AsyncIterable<CalibrationSample>;
  /** Sequence length of generated calibration inputs (default 128). */
  readonly seqLen?: number;
  /** Number of generated calibration samples (default 2). */
  readonly calibrationCount?: number;
  /** Seed of generated inputs and of seeded forms (default 0). */
  readonly seed?: number;
  /** The target whose cost model ranks forms (default onnxruntime-cpu: what the emitted ONNX runs on). */
  readonly target?: keyof typeof PROFILES | TargetProfile;
  /** Called as each stage starts (progress). */
  readonly onStage?: (stage: string) => void;
}

/** One head group of a site split by heads: its own Attention with its own spec. */
export interface OptimizedGroup {
  /** The query heads of the group (contiguous, whole key/value heads). */
  readonly heads: readonly number[];
  readonly kvHeads: readonly number[];
  /** The group's spec, in IR text form. */
  readonly chosen: string;
  readonly exact: boolean;
  /** Certified max-abs error of the group's heads on the calibration data (0 when exact). */
  readonly bound: number;
  readonly measuredError: number | null;
  readonly flops: number;
}

export interface OptimizedSite {
  readonly id: string;
  /** The spec the site computes now, in IR text form; for a site split by heads, every group's ("heads 0-1: ... | ..."). */
  readonly chosen: string;
  /** True when the site computes exactly what the model did (error 0). */
  readonly exact: boolean;
  /** Certified max-abs error of the site's output on the calibration data (0 when exact). */
  readonly bound: number;
  /** Max-abs error measured on the calibration data, or null when nothing approximate was chosen. */
  readonly measuredError: number | null;
  readonly flopsBefore: number;
  readonly flopsAfter: number;
  /** Why the site stayed as it was, when it did. */
  readonly reason?: string;
  /** Present when the site was split into head groups, in head order (bound: the largest group bound). */
  readonly groups?: readonly OptimizedGroup[];
}

export interface OptimizeResult {
  readonly model: AttnoptModel;
  readonly sites: readonly OptimizedSite[];
  readonly notes: readonly PassNote[];
}

/** Metadata key holding the certified bounds (JSON), which `verify` checks measured errors against. */
export const CERTIFIED_METADATA = 'attnopt.certified';

function profileOf(target: OptimizeOptions['target']): TargetProfile {
  if (target === undefined) return onnxruntimeCpuProfile;
  if (typeof target !== 'string') return target;
  const p = PROFILES[target];
  if (!p) throw new Error(`unknown target ${target}: one of ${Object.keys(PROFILES).join(', ')}`);
  return p;
}

function defaultOpset(model: AttnoptModel): number {
  const d = model.proto.opsetImport?.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx');
  return Number(d?.version ?? 17n);
}

function siteFlops(node: Node, spec: AttentionSpec, dims: { batch: number; nq: number; nk: number }, profile: TargetProfile): number {
  const params = { ...attentionParams(node), spec };
  try {
    return attentionCost(params, dims, profile).flops;
  } catch {
    return NaN; // data-dependent specs without data: reported as unknown
  }
}

/** Runs the whole optimization on `model` (its graph is rewritten in place) and reports every site. */
export async function optimize(model: AttnoptModel, options: OptimizeOptions = {}): Promise<OptimizeResult> {
  const budget = options.maxError ?? 1e-2;
  if (!(budget >= 0) || !Number.isFinite(budget)) throw new Error(`max error must be a finite number >= 0, got ${budget}`);
  const profile = profileOf(options.target);
  const seqLen = options.seqLen ?? 128;
  const stage = options.onStage ?? (() => {});
  const notes: PassNote[] = [];

  stage('recognize');
  notes.push(...recognize(model.graph).notes);
  // the sites as recognized (ids site<k>), with their specs before anything changes them
  const original = attentionSites(model.graph).map(({ id, node }) => ({ id, node, spec: attentionParams(node).spec }));

  stage('analyze masks');
  notes.push(...runPipeline(model.graph, [analyzeMaskPass()], { verify: false }).notes);

  const decisions = new Map<Node, SiteDecision>();
  const groupNodes = new Map<Node, readonly Node[]>();
  if (budget > 0 && original.length > 0) {
    stage('calibrate');
    const samples = options.samples ?? generateInputs(model, { seqLen, seed: options.seed ?? 0, count: options.calibrationCount ?? 2 });
    const calibration = await collectSiteTensors(model, samples);
    stage('sparsify');
    const pass = sparsifyPass({
      budget,
      target: profile,
      seed: options.seed ?? 0,
      calibration: calibration.filter((s) => s.samples.length > 0).map(siteCalibration),
      onDecision: (d, node, groups) => {
        decisions.set(node, d);
        if (groups) groupNodes.set(node, groups);
      },
    });
    notes.push(...pass.run(model.graph).notes);
  }

  const dims = { batch: 1, nq: seqLen, nk: seqLen };
  const sites: OptimizedSite[] = original.map(({ id, node, spec: before }) => {
    const d = decisions.get(node) ?? (node.annotations.get(SPARSIFY_DECISION) as SiteDecision | undefined);
    const split = groupNodes.get(node);
    if (split && d?.groups) {
      const groups: OptimizedGroup[] = split.map((g, k) => {
        const spec = attentionParams(g).spec;
        const info = d.groups![k]!;
        const heads = (g.annotations.get(HEAD_GROUP) as HeadGroupAnnotation | undefined)?.heads ?? info.heads;
        return {
          heads,
          kvHeads: info.kvHeads,
          chosen: printSpec(spec),
          exact: info.exact,
          bound: info.bound,
          measuredError: info.exact ? null : info.measuredError,
          flops: siteFlops(g, spec, dims, profile),
        };
      });
      return {
        id,
        chosen: d.chosen,
        exact: false,
        bound: d.bound,
        measuredError: d.measuredError,
        flopsBefore: siteFlops(node, before, dims, profile),
        flopsAfter: groups.reduce((a, g) => a + g.flops, 0),
        groups,
      };
    }
    const spec = attentionParams(node).spec;
    const approximate = d !== undefined && d.reasonDense === undefined && !d.exact;
    return {
      id,
      chosen: printSpec(spec),
      exact: !approximate,
      bound: approximate ? d.bound : 0,
      measuredError: approximate ? d.measuredError : null,
      flopsBefore: siteFlops(node, before, dims, profile),
      flopsAfter: siteFlops(node, spec, dims, profile),
      ...(d?.reasonDense !== undefined ? { reason: d.reasonDense } : {}),
    };
  });

  stage('lower');
  notes.push(...lowerAttentionPass({ opset: defaultOpset(model) }).run(model.graph).notes);
  const certified = { maxError: budget, sites: Object.fromEntries(sites.map((s) => [s.id, s.bound])) };
  const metadata = (model.proto.metadataProps ?? []).filter((e) => e.key !== CERTIFIED_METADATA);
  model.proto.metadataProps = [...metadata, { key: CERTIFIED_METADATA, value: JSON.stringify(certified) }];
  return { model, sites, notes };
}
