// Bookkeeping rules: producer, output index, uses and node ownership agree with the graph's lists.

import type { Graph, Value } from '../graph.js';
import { type GraphRule, nodeIssue, ref, type VerifyIssue } from './issue.js';

// node input %x missing from %x.uses(), a use recorded for an input that reads something else,
// an output whose producer is not its node, a node listed in another graph -> bookkeeping
export const bookkeeping: GraphRule = (graph: Graph) => {
  const issues: VerifyIssue[] = [];
  const seenNodes = new Set<unknown>();
  const values = new Set<Value>(graph.definedValues());
  for (const node of graph.nodes) {
    const problem = (text: string) => issues.push(nodeIssue('bookkeeping', graph, node, text));
    if (seenNodes.has(node)) problem(`is listed twice in graph "${graph.name}"`);
    seenNodes.add(node);
    if (node.graph !== graph) problem(`records graph "${node.graph?.name ?? '(none)'}" but is listed in graph "${graph.name}"`);
    node.inputs.forEach((v, k) => {
      if (!v) return;
      values.add(v);
      const n = v.uses().filter((u) => u.node === node && u.index === k).length;
      if (n !== 1) problem(`input ${k} ${ref(v)} is recorded ${n} times among the uses of ${ref(v)} (expected once)`);
    });
    node.outputs.forEach((v, k) => {
      if (v.producer === node && v.outputIndex !== k) problem(`output ${k} ${ref(v)} records output index ${v.outputIndex}`);
      if (v.producer === undefined) problem(`output ${k} ${ref(v)} records no producer`);
      else if (v.producer !== node && !v.producer.outputs.includes(v)) {
        problem(`output ${k} ${ref(v)} records producer ${v.producer.describe()}, which does not list it`);
      }
    });
  }
  for (const v of values) {
    for (const { node, index } of v.uses()) {
      if (node.inputs[index] !== v) {
        issues.push(nodeIssue('bookkeeping', graph, node, `${ref(v)} records a use by input ${index}, which reads ${node.inputs[index] ? ref(node.inputs[index]) : 'nothing'}`));
      }
    }
  }
  return issues;
};
