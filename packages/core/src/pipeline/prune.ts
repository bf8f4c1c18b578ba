// Pruning as a pipeline pass: the nodes the rewrites left unread (a scale Constant a lift no longer reads, a
// length the lowering computed for a form it did not take, a mask a proof made redundant) leave the model; nodes
// the model as read held unread stay, as the model wrote them.
//   n (no output read, not a graph output, read before the pipeline)  ->  nothing

import { removeDead, type StatePass } from '@attnopt/rewrite';
import type { CompileState } from './state.js';

export const prune: StatePass<CompileState> = {
  name: 'prune',
  label: 'lower',
  run(state) {
    const graph = state.graph;
    const removed = removeDead(graph, graph.nodes.filter((n) => !state.unusedAsRead.has(n)));
    return { changed: removed > 0, notes: removed > 0 ? [{ pass: 'prune', node: graph.name, message: `${removed} nodes the rewrites left unread removed` }] : [] };
  },
};
