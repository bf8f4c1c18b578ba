// Restoring as a pipeline pass: a site that gains nothing goes back to the ONNX nodes it was lifted from, so the
// runtime meets the model's own subgraph, not a re-lowered copy of it. The plans are recorded first: restoring
// and lowering replace the Attention nodes they read.
//   Attention(spec as recognized)  ->  the ONNX nodes it was lifted from
//   Attention(spec = a proven mask that saves no work on the target)  ->  the ONNX nodes, with the mask's nodes
//   a local function's nodes written out by recognize, none changed  ->  the call

import { rerollLocalFunctions } from '@attnopt/onnx';
import { undoMaskProofs, unliftSite } from '@attnopt/passes';
import type { PassNote, StatePass } from '@attnopt/rewrite';
import { type SitePlan, sitePlans } from './plans.js';
import { inlinedCalls } from '../recognize.js';
import type { CompileState } from './state.js';

/** True when the site computes what it was recognized as, the same way: nothing to gain from lowering it. */
function unchanged(p: SitePlan): boolean {
  return p.groups === undefined && !p.facts.proven && p.chosen === p.facts.recognized;
}

/**
 * True when the site keeps only what its own mask proves and the target computes that form with no less work
 * than the model as written (a causal mask where the runtime computes every score anyway): the proof buys
 * nothing there, and lowering would swap the exporter's subgraph for a slower copy.
 */
function provenOnly(p: SitePlan): boolean {
  return p.groups === undefined && p.facts.proven && p.chosen === p.facts.spec && p.flopsAfter >= p.flopsBefore;
}

export const restoreUnchanged: StatePass<CompileState> = {
  name: 'restore',
  label: 'lower',
  run(state) {
    const plans = sitePlans(state);
    const notes: PassNote[] = [];
    if (!(state.options.restoreUnchanged ?? true)) return { changed: false, notes };
    const undone = new Set(undoMaskProofs(state.graph, plans.filter(provenOnly).map((p) => p.node)));
    for (const p of plans) {
      if ((unchanged(p) || undone.has(p.node)) && unliftSite(p.node)) {
        state.restored.add(p.id);
        const what = undone.has(p.node) ? `its proven mask (${p.chosen}) saves no work on this target` : `unchanged (${p.chosen})`;
        notes.push({ pass: 'optimize', node: p.node.describe(), message: `${p.id}: ${what}: the ONNX nodes it was lifted from are kept as they were` });
      }
    }
    // local-function calls whose written-out nodes are all as they were: the call again
    const calls = inlinedCalls(state.graph);
    const rerolled = rerollLocalFunctions(state.graph, calls);
    if (rerolled > 0) notes.push({ pass: 'optimize', node: state.graph.name, message: `${rerolled} of ${calls.length} local-function calls written out to find attention are calls again (nothing in them changed)` });
    return { changed: state.restored.size > 0 || rerolled > 0, notes };
  },
};
