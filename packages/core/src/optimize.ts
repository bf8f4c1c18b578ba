// optimize: the whole job on one model. decide() recognizes every attention site, proves what its own mask keeps
// (exact, error 0), calibrates and chooses per site the cheapest form whose certified error fits the budget (per
// head group where heads want different forms and that is cheaper); then every site that changed is lowered back
// to standard ONNX ops so any runtime runs the result, and every site that did not goes back to the ONNX nodes it
// was lifted from (the runtime meets the model's own subgraph, not a re-lowered copy of it).

import { lowerAttentionPass, NATIVE_ATTENTION_OPSET, unliftSite } from '@attnopt/passes';
import type { PassNote } from '@attnopt/rewrite';
import { DECIDE_STAGES, type DecideOptions, decide, type GroupPlan, type SitePlan } from './decide.js';
import type { AttnoptModel } from './model.js';

export interface OptimizeOptions extends DecideOptions {
  /**
   * Put every site that computes exactly what it was recognized as (same spec, same mask) back as the ONNX nodes
   * it was lifted from, instead of lowering it (default true).
   */
  readonly restoreUnchanged?: boolean;
  /**
   * Where the model's opset has ONNX's Attention op (23 and later), lower banded sites to one Attention per batch
   * of query blocks (measured 1.13-1.23x the standard banded form in onnxruntime, tools/bench/banded-native.ts)
   * instead of MatMul / Softmax per block (default true).
   */
  readonly nativeAttention?: boolean;
}

/** One head group of a site split by heads, as optimize reports it (decide's GroupPlan without the node). */
export type OptimizedGroup = Omit<GroupPlan, 'id' | 'node'>;

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
  /** True when the site computes what it was recognized as and was left as the ONNX nodes it was lifted from. */
  readonly restored?: boolean;
}

export interface OptimizeResult {
  readonly model: AttnoptModel;
  readonly sites: readonly OptimizedSite[];
  readonly notes: readonly PassNote[];
}

/** Stage names optimize reports through onStage, in order (decide's, then the lowering). */
export const OPTIMIZE_STAGES = [...DECIDE_STAGES, 'lower'] as const;

/** Metadata key holding the certified bounds (JSON), which `verify` checks measured errors against. */
export const CERTIFIED_METADATA = 'attnopt.certified';

function defaultOpset(model: AttnoptModel): number {
  const d = model.proto.opsetImport?.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx');
  return Number(d?.version ?? 17n);
}

function optimizedGroup({ id: _id, node: _node, ...group }: GroupPlan): OptimizedGroup {
  return group;
}

function optimizedSite(p: SitePlan, restored: boolean): OptimizedSite {
  return {
    id: p.id,
    chosen: p.chosen,
    exact: p.exact,
    bound: p.bound,
    measuredError: p.measuredError,
    flopsBefore: p.flopsBefore,
    flopsAfter: p.flopsAfter,
    ...(p.reason !== undefined ? { reason: p.reason } : {}),
    ...(p.groups !== undefined ? { groups: p.groups.map(optimizedGroup) } : {}),
    ...(restored ? { restored } : {}),
  };
}

/** True when the site computes what it was recognized as, the same way: nothing to gain from lowering it. */
function unchanged(p: SitePlan): boolean {
  return p.groups === undefined && !p.facts.proven && p.chosen === p.facts.recognized;
}

/** Runs the whole optimization on `model` (its graph is rewritten in place) and reports every site. */
export async function optimize(model: AttnoptModel, options: OptimizeOptions = {}): Promise<OptimizeResult> {
  const stage = options.onStage ?? (() => {});
  const decided = await decide(model, options);
  const notes: PassNote[] = [...decided.notes];

  const restored = new Set<string>();
  if (options.restoreUnchanged ?? true) {
    for (const p of decided.sites) {
      if (unchanged(p) && unliftSite(p.node)) {
        restored.add(p.id);
        notes.push({ pass: 'optimize', node: p.node.describe(), message: `${p.id}: unchanged (${p.chosen}): the ONNX nodes it was lifted from are kept as they were` });
      }
    }
  }
  stage('lower');
  const opset = defaultOpset(model);
  const native = (options.nativeAttention ?? true) && opset >= NATIVE_ATTENTION_OPSET ? { native: 'onnxruntime' as const } : {};
  notes.push(...lowerAttentionPass({ opset, ...native }).run(model.graph).notes);
  const sites = decided.sites.map((p) => optimizedSite(p, restored.has(p.id)));
  const certified = { maxError: decided.budget, sites: Object.fromEntries(sites.map((s) => [s.id, s.bound])) };
  const metadata = (model.proto.metadataProps ?? []).filter((e) => e.key !== CERTIFIED_METADATA);
  model.proto.metadataProps = [...metadata, { key: CERTIFIED_METADATA, value: JSON.stringify(certified) }];
  return { model, sites, notes };
}
