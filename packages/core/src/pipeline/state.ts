// The state the compile pipeline's passes share: the graph (and the model around it), the options resolved once,
// and what each pass records for the passes after it and for the report.

import { onnxruntimeCpuProfile, PROFILES, type TargetProfile } from '@attnopt/cost';
import type { Graph, Node, Value } from '@attnopt/ir';
import type { SiteCalibration, SiteDecision } from '@attnopt/passes';
import type { SiteFacts } from '../analyze.js';
import type { CalibrationProvenance, DecideOptions, RelativeBudget } from '../decide.js';
import { type AttnoptModel, modelOpset } from '../model.js';
import type { OptimizeOptions } from '../optimize.js';
import type { SiteTiming } from '../measure/site-timer.js';
import type { SitePlan } from './plans.js';

/** What recognition and the mask analysis need and record (all `analyze` runs). */
export interface AnalysisState {
  readonly graph: Graph;
  /** The length at which each site's kept fraction of (query, key) pairs is reported (none when undefined). */
  readonly seqLen: number | undefined;
  /** Per site what was recognized and proven (set by the mask analysis). */
  facts: readonly SiteFacts[];
  /** The sites as analyzed (ids site<k>), before sparsify splits any of them into head groups. */
  sites: readonly { readonly id: string; readonly node: Node }[];
}

/** The whole pipeline's state (optimize, and decide as its prefix). */
export interface CompileState extends AnalysisState {
  readonly model: AttnoptModel;
  readonly options: OptimizeOptions;
  readonly seqLen: number;
  /** The absolute budget per site; with maxRelError, the largest site budget once sparsify has run. */
  budget: number;
  readonly profile: TargetProfile;
  /** The opset the sites are lowered to. */
  readonly opset: number;
  readonly seed: number;
  /** True when the calibration samples are the user's (not generated). */
  readonly fromUser: boolean;
  /** Calibration: per site the samples sparsify reads, where they came from, and why a site got none. */
  calibration: readonly SiteCalibration[];
  provenance: CalibrationProvenance | undefined;
  readonly uncollected: Map<string, string>;
  /** Sparsify: its record per site node, and the group nodes of a site split by heads. */
  readonly decisions: Map<Node, SiteDecision>;
  readonly groupNodes: Map<Node, readonly Node[]>;
  relative: RelativeBudget | undefined;
  /** Sparsify's timings of rewrites against their sites as written, shared by the sites (measure-sites.ts). */
  readonly timings: Map<string, { readonly timing: SiteTiming; readonly site: string }>;
  /** Per site what was chosen, recorded before restoring and lowering replace the Attention nodes. */
  plans: readonly SitePlan[] | undefined;
  /** The sites put back as the ONNX nodes they were lifted from. */
  readonly restored: Set<string>;
  /** Per Attention node the lowering wrapped in its decode route: the query count below which it runs its exact dense form. */
  readonly decodeRoutes: Map<Node, number>;
  /** The main graph's nodes nothing read in the model as read: the prune pass leaves them (they are the model's). */
  readonly unusedAsRead: ReadonlySet<Node>;
  /** The main graph's initializers some node read in the model as read: the prune pass drops those left unread. */
  readonly readInitializers: ReadonlySet<Value>;
}

export function targetProfile(target: DecideOptions['target']): TargetProfile {
  if (target === undefined) return onnxruntimeCpuProfile;
  if (typeof target !== 'string') return target;
  const p = PROFILES[target];
  if (!p) throw new Error(`unknown target ${target}: one of ${Object.keys(PROFILES).join(', ')}`);
  return p;
}


function checkSeqLen(seqLen: number | undefined): void {
  if (seqLen !== undefined && !(Number.isSafeInteger(seqLen) && seqLen >= 1)) {
    throw new Error(`analyze: seqLen must be an integer >= 1, got ${seqLen}`);
  }
}

export function analysisState(graph: Graph, seqLen: number | undefined): AnalysisState {
  checkSeqLen(seqLen);
  return { graph, seqLen, facts: [], sites: [] };
}

/** The state before the first pass, the options checked (a bad budget or target is an error before any work). */
export function compileState(model: AttnoptModel, options: OptimizeOptions): CompileState {
  const rel = options.maxRelError;
  if (rel !== undefined && options.maxError !== undefined) throw new Error('give maxError (absolute) or maxRelError (relative to each site\'s scale), not both');
  if (rel !== undefined && (!(rel >= 0) || !Number.isFinite(rel))) throw new Error(`max relative error must be a finite number >= 0, got ${rel}`);
  const budget = rel ?? options.maxError ?? 1e-2;
  if (!(budget >= 0) || !Number.isFinite(budget)) throw new Error(`max error must be a finite number >= 0, got ${budget}`);
  const profile = targetProfile(options.target);
  const fromUser = options.samples !== undefined && (options.samplesFrom ?? 'user') === 'user';
  if (options.allowStatistical && !fromUser) {
    throw new Error('allowStatistical needs calibration samples from the user: a statistical form holds only on the data it was measured on, and generated inputs are not real data');
  }
  checkSeqLen(options.seqLen);
  if (options.measure === true && profile.target !== 'onnxruntime-cpu') {
    throw new Error(`measure times the rewrites in onnxruntime-node on this machine; the target ${profile.name} runs elsewhere (give measure: false, or a timer for that target)`);
  }
  return {
    graph: model.graph,
    model,
    options,
    seqLen: options.seqLen ?? 128,
    budget,
    profile,
    opset: options.opset ?? modelOpset(model),
    seed: options.seed ?? 0,
    fromUser,
    facts: [],
    sites: [],
    calibration: [],
    provenance: undefined,
    uncollected: new Map(),
    decisions: new Map(),
    groupNodes: new Map(),
    relative: undefined,
    timings: new Map(),
    plans: undefined,
    restored: new Set(),
    decodeRoutes: new Map(),
    unusedAsRead: new Set(model.graph.nodes.filter((n) => isUnused(model.graph, n))),
    readInitializers: new Set(model.graph.initializers.filter((v) => v.uses().length > 0)),
  };
}

/** Whether nothing reads any output of `node` and none is a graph output. */
export function isUnused(graph: Graph, node: Node): boolean {
  return node.outputs.every((v) => v.uses().length === 0 && !graph.outputs.includes(v));
}
