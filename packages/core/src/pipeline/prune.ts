// Pruning as a pipeline pass: the nodes the rewrites left unread (a scale Constant a lift no longer reads, a
// length the lowering computed for a form it did not take, a mask a proof made redundant) leave the model, and so do
// the initializers only they read (a position-bias table, a mask's constants); nodes and initializers the model as
// read held unread stay, as the model wrote them.
//   n (no output read, not a graph output, read before the pipeline)  ->  nothing
//   initializer (read before the pipeline, by no node now, no graph input or output, no subgraph's)  ->  nothing

import { removeDead, type StatePass } from '@attnopt/rewrite';
import type { CompileState } from './state.js';

export const prune: StatePass<CompileState> = {
  name: 'prune',
  label: 'lower',
  run(state) {
    const graph = state.graph;
    const removed = removeDead(graph, graph.nodes.filter((n) => !state.unusedAsRead.has(n)));
    // a subgraph may read an outer initializer by name: such names stay
    const nested = new Set<string>();
    for (const n of graph.allNodes()) if (n.graph !== graph) for (const x of n.inputs) if (x) nested.add(x.name);
    const unread = graph.initializers.filter((v) => state.readInitializers.has(v) && v.uses().length === 0 && !graph.outputs.includes(v) && !graph.inputs.includes(v) && !nested.has(v.name));
    for (const v of unread) graph.initializers.splice(graph.initializers.indexOf(v), 1);
    const notes = [
      ...(removed > 0 ? [{ pass: 'prune', node: graph.name, message: `${removed} nodes the rewrites left unread removed` }] : []),
      ...(unread.length > 0 ? [{ pass: 'prune', node: graph.name, message: `${unread.length} initializers only those nodes read removed` }] : []),
    ];
    return { changed: removed > 0 || unread.length > 0, notes };
  },
};
