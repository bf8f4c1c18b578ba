// The sparsify pass: every Attention site with calibration data gets the cheapest form within the budget
// (chooseSiteSpec: guarded by default, statistical only when allowed), or keeps its spec, saying why.
//   Attention(Q, K, V, spec=S)  ->  Attention(Q, K, V, spec=S ∩ F, guard={budget, block, baseline=S})   (guarded)
//   Attention(Q, K, V, spec=S)  ->  Attention(Q, K, V, spec=S ∩ F)     (statistical: bound on the calibration data)
// or, when heads want different forms and that is cheaper, head groups (split-heads.ts):
//   Attention(Q, K, V, spec=S)  ->  Concat_heads(Attention(Slice_g(Q, K, V), spec=S ∩ F_g) for g)
// Sites are named site<k>, k counting Attention nodes in graph.allNodes() order (the calibrate step's ids).

import { attentionAttrs, type AttentionParams, attentionParams, type AttentionSpec, type Graph, hasRuntimeHeadDim, isAttention, type Node, RUNTIME_HEAD_DIM_REASON } from '@attnopt/ir';
import { blockGatherInputsBlocker, lowRankInputsBlocker } from '../lower/attention.js';
import { guardedFormInputsBlocker, guardedInputsBlocker } from '../lower/guarded.js';
import type { Pass, PassNote } from '@attnopt/rewrite';
import type { SiteCalibration } from './calibration.js';
import { chooseSiteSpec, type SiteDecision, type SparsifyOptions } from './choose.js';
import { emittedNodeCounter } from './emitted-nodes.js';
import { siteCostInputs } from './site-inputs.js';
import { headSplitBlocker, splitHeads } from './split-heads.js';

export const SPARSIFY = 'sparsify';
/** Annotation key on an Attention node: its SiteDecision (for the report and `attnopt inspect`). */
export const SPARSIFY_DECISION = 'attnopt.decision';

export interface SparsifyPassOptions extends SparsifyOptions {
  readonly calibration: readonly SiteCalibration[];
  /**
   * Receives every decision, in site order, with the site's node (as it was before the pass: a split site's
   * node leaves the graph) and, for a split site, the group nodes that replace it in head order.
   */
  readonly onDecision?: (decision: SiteDecision, node: Node, groupNodes?: readonly Node[]) => void;
  /**
   * Decisions made before (by a dry run, then reviewed: a rewrite measured slower turned into keepAsWritten), by
   * site id: applied as they are instead of choosing again. A site without one is chosen as usual.
   */
  readonly decided?: ReadonlyMap<string, SiteDecision>;
  /** Choose only: every decision goes to onDecision and the graph is left as it is (the decisions get no notes). */
  readonly dryRun?: boolean;
}

/** The Attention sites of a graph with their ids (site0, site1, ... in graph.allNodes() order). */
export function attentionSites(graph: Graph): { id: string; node: Node }[] {
  return [...graph.allNodes()].filter(isAttention).map((node, k) => ({ id: `site${k}`, node }));
}

const fmt = (x: number) => x.toPrecision(3);

/** One line for the report: what was chosen and why. */
export function describeDecision(d: SiteDecision): string {
  if (d.reasonDense !== undefined) return `${d.id}: kept ${d.chosen}: ${d.reasonDense}`;
  if (d.groups) {
    const worst = d.certified ? `${d.guarantee}: bound ${fmt(d.bound)}` : `statistical (calibration data only): ${fmt(Math.min(d.bound, d.measuredError))}`;
    return (
      `${d.id}: ${d.before} -> head groups ${d.chosen}: ${worst} <= ${d.budget} (largest over the groups), ` +
      `flops ${fmt(d.flopsBefore)} -> ${fmt(d.flopsAfter)}, time ${fmt(d.timeBefore * 1e3)} -> ${fmt(d.timeAfter * 1e3)} ms on ${d.target} ` +
      `(one spec for every head: ${d.uniform?.chosen}, ${fmt((d.uniform?.time ?? NaN) * 1e3)} ms)`
    );
  }
  if (!d.certified) {
    return (
      `${d.id}: ${d.before} -> ${d.chosen}: statistical: ${Number.isFinite(d.bound) ? `bound ${fmt(d.bound)}` : `measured error ${fmt(d.measuredError)}`} <= ${d.budget} on ${d.calibrationRows ?? 0} calibration rows only, ` +
      (d.confidence ? `conformal quantile ${fmt(d.confidence.quantile)} over ${d.confidence.samples} held-out rows (alpha ${d.confidence.alpha}), ` : '') +
      `flops ${fmt(d.flopsBefore)} -> ${fmt(d.flopsAfter)}, time ${fmt(d.timeBefore * 1e3)} -> ${fmt(d.timeAfter * 1e3)} ms on ${d.target}`
    );
  }
  return (
    `${d.id}: ${d.before} -> ${d.chosen}: guarded: error <= ${d.budget} on every input (checked at run time; predicted fallback ${fmt(100 * (d.fallbackRate ?? 0))}% of rows), measured ${fmt(d.measuredError)}, ` +
    `flops ${fmt(d.flopsBefore)} -> ${fmt(d.flopsAfter)}, time ${fmt(d.timeBefore * 1e3)} -> ${fmt(d.timeAfter * 1e3)} ms on ${d.target}`
  );
}

/**
 * Puts `decision` into the graph at its site `node` (its params before): the chosen spec and guard as the node's
 * attributes, or the head groups that replace it (returned, in head order); a kept site is only annotated.
 */
export function applyDecision(node: Node, params: AttentionParams, decision: SiteDecision, id: string): Node[] | undefined {
  node.annotations.set(SPARSIFY_DECISION, decision);
  if (decision.groups) {
    const groupNodes = splitHeads(node, params, decision.groups, id);
    for (const g of groupNodes) g.annotations.set(SPARSIFY_DECISION, decision);
    return groupNodes;
  }
  if (decision.reasonDense === undefined) {
    const { guard: _, ...rest } = params;
    const attrs = attentionAttrs({ ...rest, spec: decision.chosenSpec, ...(decision.guard ? { guard: decision.guard } : {}) });
    for (const [k, a] of attrs) node.attrs.set(k, a);
  }
  return undefined;
}

export function sparsifyPass(options: SparsifyPassOptions): Pass {
  return {
    name: SPARSIFY,
    run(graph: Graph) {
      const notes: PassNote[] = [];
      const byId = new Map(options.calibration.map((c) => [c.id, c]));
      let changed = false;
      for (const { id, node } of attentionSites(graph)) {
        const where = node.describe();
        const calibration = byId.get(id);
        if (!calibration) {
          notes.push({ pass: SPARSIFY, node: where, message: `${id}: kept: no calibration data for this site` });
          continue;
        }
        const params = attentionParams(node);
        if (hasRuntimeHeadDim(params)) {
          notes.push({ pass: SPARSIFY, node: where, message: `${id}: kept: ${RUNTIME_HEAD_DIM_REASON}, so no form can be costed or calibrated` });
          continue;
        }
        const blocker = headSplitBlocker(node, params);
        const guardBlocked = options.guardBlocked ?? guardedInputsBlocker(node);
        const blockGatherBlocked = options.blockGatherBlocked ?? blockGatherInputsBlocker(node);
        const lowRankBlocked = options.lowRankBlocked ?? lowRankInputsBlocker(node);
        const siteOptions = {
          ...options,
          ...(blocker === undefined ? {} : { headGroups: false }),
          ...(guardBlocked === undefined ? {} : { guardBlocked }),
          ...(blockGatherBlocked === undefined ? {} : { blockGatherBlocked }),
          ...(lowRankBlocked === undefined ? {} : { lowRankBlocked }),
          emittedNodes: options.emittedNodes ?? emittedNodeCounter(node),
          siteInputs: options.siteInputs ?? siteCostInputs(node),
          guardFormBlocked: (form: AttentionSpec) => guardedFormInputsBlocker(node, form, params.spec),
        };
        const decision = options.decided?.get(id) ?? chooseSiteSpec(params, calibration, siteOptions);
        if (options.dryRun) {
          options.onDecision?.(decision, node);
          continue;
        }
        const groupNodes = applyDecision(node, params, decision, id);
        changed ||= decision.groups !== undefined || decision.reasonDense === undefined;
        options.onDecision?.(decision, node, groupNodes);
        notes.push({ pass: SPARSIFY, node: where, message: describeDecision(decision) });
        if (blocker !== undefined && decision.perHead && new Set(decision.perHead.map((h) => h.best)).size > 1) {
          notes.push({ pass: SPARSIFY, node: where, message: `${id}: heads not split into groups: ${blocker}` });
        }
        for (const n of decision.notes) notes.push({ pass: SPARSIFY, node: where, message: `${id}: ${n}` });
      }
      return { changed, notes };
    },
  };
}
