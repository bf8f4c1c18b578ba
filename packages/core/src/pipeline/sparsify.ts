// Sparsify as a pipeline pass: per site (per head group where heads want different forms and that is cheaper)
// the cheapest form whose error fits the budget, each naming its tier (exact, guarded, statistical). With the
// onnxruntime target, each rewrite is first timed against the site as written (measure/measure-sites.ts) and kept
// only where it is measured faster: the cost model ranks, the runtime confirms.
//   Attention(spec)  ->  Attention(chosen spec), or one Attention per head group with the group's spec

import { GUARDED_OPSET, type SiteCalibration, type SiteDecision, sparsifyPass } from '@attnopt/passes';
import type { Node } from '@attnopt/ir';
import type { SparsifyPassOptions } from '@attnopt/passes';
import type { PassNote, PassResult, StatePass } from '@attnopt/rewrite';
import { maxOf, pushAll } from '../extremes.js';
import { measureDecision, rewritesSite } from '../measure/measure-sites.js';
import { onnxruntimeTimer, type SiteTimer } from '../measure/site-timer.js';
import { valueScale } from '../relative-budget.js';
import { lowerOptions } from './lower.js';
import type { CompileState } from './state.js';

/**
 * The timer that confirms rewrites, or undefined when none runs: the option's (true: onnxruntime-node's), by
 * default onnxruntime-node's for the onnxruntime-cpu target unless ATTNOPT_MEASURE=0 (the test suite's default,
 * so that decisions there do not depend on the machine's load).
 */
function siteTimer(state: CompileState): SiteTimer | undefined {
  const m = state.options.measure;
  if (m === false) return undefined;
  if (typeof m === 'function') return m;
  if (state.profile.target !== 'onnxruntime-cpu') return undefined;
  if (m === undefined && globalThis.process?.env?.['ATTNOPT_MEASURE'] === '0') return undefined;
  return onnxruntimeTimer();
}

/** Tells the caller where the pass is (DecideOptions.onProgress). */
const report = (state: CompileState, detail: string): void => state.options.onProgress?.(detail);

/** The decisions of a dry run, each rewrite timed against its site as written, by site id. */
async function measuredDecisions(state: CompileState, budget: number, calibration: readonly SiteCalibration[], timer: SiteTimer): Promise<Map<string, SiteDecision>> {
  const proposed: { node: Node; decision: SiteDecision }[] = [];
  sparsifyAt(state, budget, calibration, {
    dryRun: true,
    onDecision: (decision, node) => {
      proposed.push({ node, decision });
      report(state, `${proposed.length} of ${calibration.length} sites decided`);
    },
  });
  const byId = new Map(calibration.map((c) => [c.id, c]));
  const measured = new Map<string, SiteDecision>();
  const ctx = { lowering: lowerOptions(state), timer, runtime: 'onnxruntime-node', timings: state.timings };
  for (const [k, { node, decision }] of proposed.entries()) {
    if (rewritesSite(decision)) report(state, `timing ${decision.id}'s rewrite (site ${k + 1} of ${proposed.length}) against the site as written`);
    const c = byId.get(decision.id)!;
    let d = await measureDecision(node, decision, c, ctx);
    // head groups measured no faster: the cheapest form for every head, chosen again without groups, may still be
    if (decision.groups !== undefined && d.reasonDense !== undefined) {
      let uniform: SiteDecision | undefined;
      sparsifyAt(state, budget, [c], { dryRun: true, headGroups: false, onDecision: (x) => (uniform = x) });
      if (uniform !== undefined && uniform.reasonDense === undefined) {
        const u = await measureDecision(node, uniform, c, ctx);
        d = u.reasonDense === undefined ? { ...u, notes: [...u.notes, `head groups turned down: ${d.reasonDense}`] } : { ...d, notes: [...d.notes, `one form for every head turned down too: ${u.reasonDense}`] };
      }
    }
    measured.set(decision.id, d);
  }
  return measured;
}

async function sparsifyMeasured(state: CompileState, budget: number, calibration: readonly SiteCalibration[]): Promise<PassResult> {
  const timer = siteTimer(state);
  if (timer === undefined) return sparsifyAt(state, budget, calibration);
  return sparsifyAt(state, budget, calibration, { decided: await measuredDecisions(state, budget, calibration, timer) });
}

function sparsifyAt(state: CompileState, budget: number, calibration: readonly SiteCalibration[], extra: Pick<SparsifyPassOptions, 'decided' | 'dryRun' | 'onDecision' | 'headGroups'> = {}): PassResult {
  return sparsifyPass({
    budget,
    target: state.profile,
    seed: state.seed,
    allowUncertified: state.options.allowStatistical === true,
    ...(state.options.headGroups === false ? { headGroups: false } : {}),
    ...(state.options.decodeSteps !== undefined ? { decodeSteps: state.options.decodeSteps } : {}),
    ...(state.opset < GUARDED_OPSET ? { guardBlocked: `opset ${state.opset}: the guarded form needs opset ${GUARDED_OPSET}` } : {}),
    calibration,
    onDecision: (d, node, groups) => {
      state.decisions.set(node, d);
      if (groups) state.groupNodes.set(node, groups);
      report(state, `${state.decisions.size} of ${calibration.length} sites decided`);
    },
    ...extra,
  }).run(state.graph) as PassResult;
}

export const sparsify: StatePass<CompileState> = {
  name: 'sparsify',
  label: 'sparsify',
  applies: (state) => state.budget > 0 && state.sites.length > 0,
  async run(state) {
    const rel = state.options.maxRelError;
    if (rel === undefined) return sparsifyMeasured(state, state.budget, state.calibration);
    // one pass per site with its own budget, the last site first: a site split into head groups adds nodes
    // after the sites before it, so their ids (site<k> in node order) still name them
    const notes: PassNote[] = [];
    let changed = false;
    const byId = new Map(state.sites.map((s) => [s.id, s.node]));
    const scales: Record<string, number> = {};
    const budgets: Record<string, number> = {};
    for (const c of state.calibration) {
      scales[c.id] = valueScale(byId.get(c.id)!, c);
      budgets[c.id] = rel * scales[c.id]!;
    }
    for (const c of [...state.calibration].reverse()) {
      const own = new RegExp(`^${c.id}:`);
      const result = await sparsifyMeasured(state, budgets[c.id]!, [c]);
      pushAll(notes, result.notes.filter((n) => own.test(n.message)));
      changed ||= result.changed;
    }
    state.relative = { maxRelError: rel, scales, budgets };
    state.budget = maxOf(Object.values(budgets), 0);
    return { changed, notes };
  },
};
