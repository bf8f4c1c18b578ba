// optimize: the whole job on one model, the compile pipeline (pipeline.ts) from the first pass to the last:
// recognize every attention site, prove what its own mask keeps (exact, error 0), calibrate and choose per site
// the cheapest form within the budget, guarded by default (per head group where heads want different forms and
// that is cheaper); every site that gains nothing goes back to the ONNX nodes it was lifted from (the runtime
// meets the model's own subgraph, not a re-lowered copy of it) and every other one is lowered to standard ONNX
// ops so any runtime runs the result. Then the bounds and what they mean are written into the model's metadata.

import type { AttentionGuard, Node } from '@attnopt/ir';
import type { DecodeStep, Guarantee, MeasuredTime } from '@attnopt/passes';
import type { PassNote } from '@attnopt/rewrite';
import type { CalibrationProvenance, DecideOptions, GroupPlan, RelativeBudget, SitePlan } from './decide.js';
import type { AttnoptModel } from './model.js';
import { runCompile } from './pipeline.js';
import { sitePlans } from './pipeline/plans.js';
import { compileState } from './pipeline/state.js';

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
export type OptimizedGroup = Omit<GroupPlan, 'id' | 'node'> & {
  /** Calls of fewer new queries than this (decode steps) run the group's exact dense form (the lowering's decode route). */
  readonly decodeRoute?: number;
};

export interface OptimizedSite {
  readonly id: string;
  /** The spec the site computes now, in IR text form; for a site split by heads, every group's ("heads 0-1: ... | ..."). */
  readonly chosen: string;
  /** True when the site computes exactly what the model did (error 0). */
  readonly exact: boolean;
  /** exact, guarded (the bound holds on every input, checked at run time) or statistical (calibration data only). */
  readonly guarantee: Guarantee;
  /** Predicted fraction of rows a guarded site recomputes densely, from the calibration data. */
  readonly fallbackRate?: number;
  /** Statistical sites: P(error of a new row exchangeable with the held-out calibration rows <= quantile) >= 1 - alpha. */
  readonly confidence?: { readonly alpha: number; readonly samples: number; readonly quantile: number };
  /** Max-abs error bound of the site's output: 0 exact, the budget guarded, measured on calibration data statistical. */
  readonly bound: number;
  /** Max-abs error measured on the calibration data, or null when nothing approximate was chosen. */
  readonly measuredError: number | null;
  readonly flopsBefore: number;
  readonly flopsAfter: number;
  /** Why the site stayed as it was, when it did. */
  readonly reason?: string;
  /** The chosen form timed against the site as written (DecideOptions.measure), when it was. */
  readonly measuredTime?: MeasuredTime;
  /** A site that takes cached keys whose rewrite is predicted slower at one decode step than as written: both predictions. */
  readonly decodeStep?: DecodeStep;
  /** Calls of fewer new queries than this (decode steps) run the site's exact dense form (the lowering's decode route). */
  readonly decodeRoute?: number;
  /** Present when the site was split into head groups, in head order (bound: the largest group bound). */
  readonly groups?: readonly OptimizedGroup[];
  /** True when the site computes what it was recognized as and was left as the ONNX nodes it was lifted from. */
  readonly restored?: boolean;
}

export interface OptimizeResult {
  readonly model: AttnoptModel;
  /** With maxRelError: per site its value scale and the absolute budget it got. */
  readonly relative?: RelativeBudget;
  /** Where the calibration data came from (absent when none ran). */
  readonly calibration?: CalibrationProvenance;
  readonly sites: readonly OptimizedSite[];
  readonly notes: readonly PassNote[];
}

/** Metadata key holding the per-site error bounds (JSON), which `verify` checks measured errors against. */
export const CERTIFIED_METADATA = 'attnopt.certified';
/**
 * Metadata key holding what each bound means (JSON): per site its tier, budget, the guard's key summaries and
 * block size, the predicted fallback rate; and where the calibration data came from.
 */
export const GUARANTEES_METADATA = 'attnopt.guarantees';

/** What GUARANTEES_METADATA holds. */
export interface GuaranteesMetadata {
  readonly budget: number;
  /** With a relative budget: maxRelError, and per site its value scale and absolute budget. */
  readonly relative?: RelativeBudget;
  readonly calibration: CalibrationProvenance | null;
  readonly sites: Record<string, SiteGuarantee>;
}

export interface SiteGuarantee {
  readonly guarantee: Guarantee;
  readonly bound: number;
  /**
   * Guarded sites: the key block size, the summaries the run-time certificate reads, how it takes the kept keys'
   * log Z_S, and the predicted fallback rate.
   */
  readonly guard?: { readonly blockSize: number; readonly summaries: string; readonly logZ: string; readonly fallbackRate: number | null };
  /**
   * Where the lowering wrapped the site (or group) in its decode route: calls of fewer new queries than `queries`
   * (decode steps) run its exact dense form, so no row of theirs is certified or approximated.
   */
  readonly decodeRoute?: { readonly queries: number; readonly form: string };
  /** Statistical sites: the calibration rows the bound was measured on. */
  readonly calibrationRows?: number;
  /** Statistical sites: P(error of a new row exchangeable with the held-out calibration rows <= quantile) >= 1 - alpha. */
  readonly confidence?: { readonly alpha: number; readonly samples: number; readonly quantile: number };
  readonly groups?: Record<string, SiteGuarantee>;
}

const GUARD_SUMMARIES = 'per key block: per-channel min/max of K (Quest) and center + radius (ball), the tighter; V range over all keys';
const GUARD_BOX_SUMMARIES = 'per key block: per-channel min/max of K (Quest; the ball left out: it certified no calibration row the box did not); V range over all keys';
const GUARD_LOG_Z_SUM = "the kept scores' log-sum-exp (the largest kept logit minus the log of its probability)";
const GUARD_LOG_Z_MAX = 'the largest kept logit, a lower bound (the log-sum-exp certified no calibration row it did not)';

const DECODE_ROUTE_FORM = "the site's exact dense form (a guarded site's baseline, an unguarded one's own spec), the exporter's own fused node where the site was lifted from one";

/**
 * What the metadata says of a site or a head group: `guard`, `fallbackRate` and `decodeRoute` its own (a group's, not
 * the site's), `decision` the site's (the statistical tier's rows and confidence).
 */
function siteGuarantee(guarantee: Guarantee, bound: number, p: { decision?: SitePlan['decision']; guard?: AttentionGuard; fallbackRate?: number; decodeRoute?: number }): SiteGuarantee {
  const d = p.decision;
  return {
    guarantee,
    bound,
    ...(p.decodeRoute !== undefined ? { decodeRoute: { queries: p.decodeRoute, form: DECODE_ROUTE_FORM } } : {}),
    ...(guarantee === 'guarded'
      ? {
          guard: {
            blockSize: p.guard?.blockSize ?? 64,
            summaries: p.guard?.summaries === 'box' ? GUARD_BOX_SUMMARIES : GUARD_SUMMARIES,
            logZ: p.guard?.logZ === 'max-logit' ? GUARD_LOG_Z_MAX : GUARD_LOG_Z_SUM,
            fallbackRate: p.fallbackRate ?? null,
          },
        }
      : {}),
    ...(guarantee === 'statistical' && d?.calibrationRows !== undefined ? { calibrationRows: d.calibrationRows } : {}),
    ...(guarantee === 'statistical' && d?.confidence !== undefined ? { confidence: d.confidence } : {}),
  };
}

function optimizedGroup({ id: _id, node, ...group }: GroupPlan, routes: ReadonlyMap<Node, number>): OptimizedGroup {
  const route = routes.get(node);
  return { ...group, ...(route !== undefined ? { decodeRoute: route } : {}) };
}

function optimizedSite(p: SitePlan, restored: boolean, routes: ReadonlyMap<Node, number>): OptimizedSite {
  const route = routes.get(p.node);
  return {
    id: p.id,
    chosen: p.chosen,
    exact: p.exact,
    guarantee: p.guarantee,
    ...(p.fallbackRate !== undefined ? { fallbackRate: p.fallbackRate } : {}),
    ...(p.guarantee === 'statistical' && p.decision?.confidence !== undefined ? { confidence: p.decision.confidence } : {}),
    bound: p.bound,
    measuredError: p.measuredError,
    flopsBefore: p.flopsBefore,
    flopsAfter: p.flopsAfter,
    ...(p.reason !== undefined ? { reason: p.reason } : {}),
    ...(p.decision?.measuredTime !== undefined ? { measuredTime: p.decision.measuredTime } : {}),
    ...(p.decision?.decodeStep !== undefined && !restored ? { decodeStep: p.decision.decodeStep } : {}),
    ...(route !== undefined ? { decodeRoute: route } : {}),
    ...(p.groups !== undefined ? { groups: p.groups.map((g) => optimizedGroup(g, routes)) } : {}),
    ...(restored ? { restored } : {}),
  };
}

/** Runs the whole optimization on `model` (its graph is rewritten in place) and reports every site. */
export async function optimize(model: AttnoptModel, options: OptimizeOptions = {}): Promise<OptimizeResult> {
  const state = compileState(model, options);
  const { notes } = await runCompile(state, false);
  const { budget, relative, provenance } = state;
  const plans = sitePlans(state);
  const routes = state.decodeRoutes;
  const sites = plans.map((p) => optimizedSite(p, state.restored.has(p.id), routes));
  const certified = { maxError: budget, sites: Object.fromEntries(sites.map((s) => [s.id, s.bound])) };
  const guarantees: GuaranteesMetadata = {
    budget,
    ...(relative ? { relative } : {}),
    calibration: provenance ?? null,
    sites: Object.fromEntries(
      plans.map((p) => [
        p.id,
        {
          ...siteGuarantee(p.guarantee, p.bound, { ...p, ...(p.decision?.guard ? { guard: p.decision.guard } : {}), ...(routes.has(p.node) ? { decodeRoute: routes.get(p.node)! } : {}) }),
          ...(p.groups
            ? {
                groups: Object.fromEntries(
                  p.groups.map((g) => [
                    g.id,
                    siteGuarantee(g.guarantee, g.bound, {
                      ...(p.decision ? { decision: p.decision } : {}),
                      ...(g.guard ? { guard: g.guard } : {}),
                      ...(g.fallbackRate !== undefined ? { fallbackRate: g.fallbackRate } : {}),
                      ...(routes.has(g.node) ? { decodeRoute: routes.get(g.node)! } : {}),
                    }),
                  ]),
                ),
              }
            : {}),
        },
      ]),
    ),
  };
  const metadata = (model.proto.metadataProps ?? []).filter((e) => e.key !== CERTIFIED_METADATA && e.key !== GUARANTEES_METADATA);
  model.proto.metadataProps = [
    ...metadata,
    { key: CERTIFIED_METADATA, value: JSON.stringify(certified) },
    { key: GUARANTEES_METADATA, value: JSON.stringify(guarantees) },
  ];
  return { model, ...(relative ? { relative } : {}), ...(provenance ? { calibration: provenance } : {}), sites, notes };
}
