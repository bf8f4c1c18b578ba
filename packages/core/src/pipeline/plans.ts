// The per-site plans: what each site was decided to compute (its facts, the form chosen, the tier and bound,
// sparsify's record and the FLOPs before and after), read from the pipeline's state once sparsify has run.

import { attentionCost, type TargetProfile } from '@attnopt/cost';
import { type AttentionGuard, attentionParams, type AttentionSpec, type Node, parseSpec, printSpec } from '@attnopt/ir';
import { type Guarantee, HEAD_GROUP, type HeadGroupAnnotation, type SiteDecision, siteCostInputs } from '@attnopt/passes';
import type { SiteFacts } from '../analyze.js';
import type { CompileState } from './state.js';

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
  /** exact, guarded (every input, checked at run time) or statistical (calibration data only). */
  readonly guarantee: Guarantee;
  /** Max-abs error bound of the group's heads: 0 exact, the budget guarded, measured on calibration data statistical. */
  readonly bound: number;
  readonly measuredError: number | null;
  /** FLOPs of the group at nq = nk = the calibration's length, batch 1. */
  readonly flops: number;
  /** A guarded group: its run-time guard and the share of its calibration rows predicted to fall back. */
  readonly guard?: AttentionGuard;
  readonly fallbackRate?: number;
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
  /** exact, guarded (every input, checked at run time) or statistical (calibration data only); groups: the weakest. */
  readonly guarantee: Guarantee;
  /** Predicted fraction of rows a guarded site recomputes densely (from the calibration data). */
  readonly fallbackRate?: number;
  /**
   * Max-abs error bound of the site's output: 0 exact, the budget when guarded, the bound measured on the
   * calibration data when statistical (with groups the largest).
   */
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
  /** FLOPs of the site at nq = nk = the calibration's length, batch 1, with the spec it was recognized with and with the chosen one(s). */
  readonly flopsBefore: number;
  readonly flopsAfter: number;
}

/** The FLOPs of `node` computing `spec`, priced with the site's own bias and lengths inputs as the chooser prices them
 *  (an n x n bias keeps every form dense on onnxruntime: a window there computes every score anyway). */
function siteFlops(node: Node, spec: AttentionSpec, seqLen: number, profile: TargetProfile): number {
  try {
    return attentionCost({ ...attentionParams(node), spec }, { batch: 1, nq: seqLen, nk: seqLen }, profile, siteCostInputs(node)).flops;
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
      guarantee: info.exact ? 'exact' : info.guarantee,
      bound: info.exact ? 0 : info.bound,
      measuredError: info.exact ? null : info.measuredError,
      flops: siteFlops(g, spec, seqLen, profile),
      ...(!info.exact && info.guard ? { guard: info.guard } : {}),
      ...(!info.exact && info.fallbackRate !== undefined ? { fallbackRate: info.fallbackRate } : {}),
    };
  });
}

/** Every site's plan, in site order (computed once: restoring and lowering replace the nodes it reads). */
export function sitePlans(state: CompileState): readonly SitePlan[] {
  if (state.plans !== undefined) return state.plans;
  const { sites, budget, profile, decisions, groupNodes, uncollected } = state;
  // the length the sites ran at: the user's calibration's where given (the chooser priced its forms there), else
  // the generated inputs' (--seq-len)
  const seqLen = state.provenance?.seqLen ?? state.seqLen;
  const facts = new Map(state.facts.map((f) => [f.id, f]));
  const calibrated = new Set(state.calibration.map((c) => c.id));
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
        guarantee: exact ? 'exact' : decision.guarantee,
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
      guarantee: approximate ? decision.guarantee : 'exact',
      ...(approximate && decision.fallbackRate !== undefined ? { fallbackRate: decision.fallbackRate } : {}),
      bound: approximate ? decision.bound : 0,
      measuredError: approximate ? decision.measuredError : null,
      ...(reason !== undefined ? { reason } : {}),
      flopsBefore,
      flopsAfter: siteFlops(node, spec, seqLen, profile),
    };
  });
  state.plans = plans;
  return plans;
}
