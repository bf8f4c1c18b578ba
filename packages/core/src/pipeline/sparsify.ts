// Sparsify as a pipeline pass: per site (per head group where heads want different forms and that is cheaper)
// the cheapest form whose error fits the budget, each naming its tier (exact, guarded, statistical).
//   Attention(spec)  ->  Attention(chosen spec), or one Attention per head group with the group's spec

import { GUARDED_OPSET, type SiteCalibration, sparsifyPass } from '@attnopt/passes';
import type { PassNote, PassResult, StatePass } from '@attnopt/rewrite';
import { maxOf, pushAll } from '../extremes.js';
import { valueScale } from '../relative-budget.js';
import type { CompileState } from './state.js';

function sparsifyAt(state: CompileState, budget: number, calibration: readonly SiteCalibration[]): PassResult {
  return sparsifyPass({
    budget,
    target: state.profile,
    seed: state.seed,
    allowUncertified: state.options.allowStatistical === true,
    ...(state.options.headGroups === false ? { headGroups: false } : {}),
    ...(state.opset < GUARDED_OPSET ? { guardBlocked: `opset ${state.opset}: the guarded form needs opset ${GUARDED_OPSET}` } : {}),
    calibration,
    onDecision: (d, node, groups) => {
      state.decisions.set(node, d);
      if (groups) state.groupNodes.set(node, groups);
    },
  }).run(state.graph);
}

export const sparsify: StatePass<CompileState> = {
  name: 'sparsify',
  label: 'sparsify',
  applies: (state) => state.budget > 0 && state.sites.length > 0,
  run(state) {
    const rel = state.options.maxRelError;
    if (rel === undefined) return sparsifyAt(state, state.budget, state.calibration);
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
      const result = sparsifyAt(state, budgets[c.id]!, [c]);
      pushAll(notes, result.notes.filter((n) => own.test(n.message)));
      changed ||= result.changed;
    }
    state.relative = { maxRelError: rel, scales, budgets };
    state.budget = maxOf(Object.values(budgets), 0);
    return { changed, notes };
  },
};
