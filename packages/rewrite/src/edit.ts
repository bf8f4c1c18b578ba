// Graph edits rules share: replace a matched subgraph by new nodes, move a value's readers to another value,
// insert nodes after an anchor, and drop what became dead.

import type { Graph, Node, Value } from '@attnopt/ir';

/** Whether every use of the values produced inside `nodes` stays inside `nodes`, except `outputs`. */
export function isSelfContained(graph: Graph, nodes: readonly Node[], outputs: readonly Value[]): boolean {
  const inside = new Set(nodes);
  for (const n of nodes) {
    for (const v of n.outputs) {
      if (outputs.includes(v)) continue;
      if (graph.outputs.includes(v)) return false;
      if (v.uses().some((u) => !inside.has(u.node))) return false;
    }
  }
  return true;
}

/**
 * Inserts `replacement` nodes just after the last node of `matched` (their inputs are defined before the
 * match uses them), points every use of each `outputs[k]` (graph outputs too) at `newOutputs[k]`, then
 * removes the matched nodes that nothing uses any more. Matched nodes still used elsewhere stay.
 */
export function replaceMatch(
  graph: Graph,
  matched: readonly Node[],
  outputs: readonly Value[],
  newOutputs: readonly Value[],
  replacement: readonly Node[],
): void {
  let at = -1;
  for (const n of matched) at = Math.max(at, graph.nodes.indexOf(n));
  if (at < 0) throw new Error('replaceMatch: none of the matched nodes is in the graph');
  replacement.forEach((n, k) => graph.addNode(n, at + 1 + k));
  outputs.forEach((v, k) => {
    if (v !== newOutputs[k]) v.replaceAllUsesWith(newOutputs[k]!, graph);
  });
  removeDead(graph, matched);
}

/** Removes, repeatedly, the given nodes whose outputs have no use and are not graph outputs. */
export function removeDead(graph: Graph, candidates: readonly Node[]): number {
  const pending = new Set(candidates);
  let removed = 0;
  let progress = true;
  while (progress) {
    progress = false;
    for (const n of pending) {
      if (n.graph !== graph) {
        pending.delete(n);
        continue;
      }
      const dead = n.outputs.every((v) => v.uses().length === 0 && !graph.outputs.includes(v));
      if (dead) {
        graph.removeNode(n);
        pending.delete(n);
        removed++;
        progress = true;
      }
    }
  }
  return removed;
}

/** Outputs of `node` that something reads (a node or the graph), by slot; undefined for the others. */
export function liveOutputs(graph: Graph, node: Node): (Value | undefined)[] {
  return node.outputs.map((v) =>
    v.annotations.has('onnx.omitted') || (v.uses().length === 0 && !graph.outputs.includes(v)) ? undefined : v,
  );
}

/**
 * Moves the uses of `old` (graph-output slots included) and its name to `fresh`; `old` keeps a
 * `__attnopt_replaced` name until its producer is removed.
 */
export function redirect(graph: Graph, old: Value, fresh: Value): void {
  const name = old.name;
  old.replaceAllUsesWith(fresh, graph);
  old.name = `${name}__attnopt_replaced`;
  fresh.name = name;
}

/** Inserts `nodes` right after `anchor`, in order. */
export function insertAfter(graph: Graph, anchor: Node, nodes: readonly Node[]): void {
  const at = graph.nodes.indexOf(anchor);
  nodes.forEach((n, k) => graph.addNode(n, at + 1 + k));
}

/** Adds an output slot to a node built without it (a present K/V computed by a lifted node). */
export function appendOutput(node: Node, v: Value): void {
  v.producer = node;
  v.outputIndex = node.outputs.length;
  node.outputs.push(v);
}
