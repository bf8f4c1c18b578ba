// Node order: ONNX wants every node after the producers of what it reads. Some exporters write nodes out of
// order; rewrites keep whatever order they found, and restore it when they were the ones to break it.

import type { Graph, Node } from '@attnopt/ir';

/** True when every value a node reads from this graph's nodes is produced before it. */
export function topologicallyOrdered(graph: Graph): boolean {
  const position = new Map(graph.nodes.map((n, k) => [n, k]));
  return graph.nodes.every((n, k) =>
    n.inputs.every((v) => {
      const p = v?.producer === undefined ? undefined : position.get(v.producer);
      return p === undefined || p < k;
    }),
  );
}

/** Reorders the nodes so producers come first, keeping the present order wherever it is already valid. */
export function sortTopologically(graph: Graph): void {
  const nodes = [...graph.nodes];
  const members = new Set(nodes);
  const placed = new Set<Node>();
  const order: Node[] = [];
  for (const root of nodes) {
    // depth first, producers before consumers, iteratively (graphs can be deep)
    const stack: { node: Node; next: number }[] = [{ node: root, next: 0 }];
    while (stack.length > 0) {
      const top = stack.at(-1)!;
      if (top.next === 0 && placed.has(top.node)) {
        stack.pop();
        continue;
      }
      placed.add(top.node);
      const v = top.node.inputs[top.next++];
      if (top.next > top.node.inputs.length) {
        stack.pop();
        order.push(top.node);
      } else if (v?.producer !== undefined && members.has(v.producer) && !placed.has(v.producer)) {
        stack.push({ node: v.producer, next: 0 });
      }
    }
  }
  graph.nodes.splice(0, graph.nodes.length, ...order);
}
