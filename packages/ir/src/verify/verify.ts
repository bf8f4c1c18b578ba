// The verifier: runs every rule over a graph and, with lexical scoping, over each nested subgraph.

import type { Graph, Value } from '../graph.js';
import { attentionRule } from './attention-shapes.js';
import { bookkeeping } from './bookkeeping.js';
import type { GraphRule, NodeRule, Scope, VerifyIssue } from './issue.js';
import { onnxShapeRule } from './onnx-shapes.js';
import { definedBeforeUse, definedOnce, outputsDefined } from './structure.js';

/** Rules over each graph's own level. */
export const GRAPH_RULES: readonly GraphRule[] = [definedOnce, definedBeforeUse, outputsDefined, bookkeeping];

/** Rules over each node. */
export const NODE_RULES: readonly NodeRule[] = [attentionRule, onnxShapeRule];

function verifyIn(graph: Graph, scope: Scope, issues: VerifyIssue[]): void {
  for (const rule of GRAPH_RULES) issues.push(...rule(graph, scope));
  for (const node of graph.nodes) {
    for (const { rule, check } of NODE_RULES) {
      for (const problem of check(node)) issues.push({ rule, graph, node, message: `${node.describe()}: ${problem}` });
    }
  }
  const visible = new Set<Value>([...scope.visible, ...graph.inputs, ...graph.initializers]);
  const enclosing = new Set<Value>([...scope.enclosing, ...graph.definedValues()]);
  for (const node of graph.nodes) {
    for (const sub of node.subgraphs()) verifyIn(sub, { visible: new Set(visible), enclosing }, issues);
    node.outputs.forEach((v) => visible.add(v));
  }
}

/** Every problem found in `graph` and its subgraphs; empty when the graph is well formed. */
export function verifyGraph(graph: Graph): VerifyIssue[] {
  const issues: VerifyIssue[] = [];
  verifyIn(graph, { visible: new Set(), enclosing: new Set() }, issues);
  return issues;
}

/** Throws one Error listing every issue, or returns the graph when there are none. */
export function assertValid(graph: Graph): Graph {
  const issues = verifyGraph(graph);
  if (issues.length > 0) {
    throw new Error(`graph "${graph.name}" is invalid (${issues.length} issue${issues.length > 1 ? 's' : ''}):\n${issues.map((i) => `  - ${i.message}`).join('\n')}`);
  }
  return graph;
}
