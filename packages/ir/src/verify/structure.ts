// Structural rules: every value defined once, every use after its definition and in scope, no cycles,
// graph outputs defined.

import type { Graph, Node, Value } from '../graph.js';
import { type GraphRule, graphIssue, nodeIssue, ref, type VerifyIssue } from './issue.js';

/** Values a graph uses but does not define (inputs of its nodes, of nested subgraphs, and its outputs). */
export function freeValues(graph: Graph): Set<Value> {
  const defined = new Set(graph.definedValues());
  const free = new Set<Value>();
  const use = (v: Value | undefined) => v && !defined.has(v) && free.add(v);
  for (const n of graph.nodes) {
    n.inputs.forEach(use);
    for (const sub of n.subgraphs()) freeValues(sub).forEach(use);
  }
  graph.outputs.forEach(use);
  return free;
}

/** What a node reads: its inputs, then the outer values its subgraphs use. */
function reads(node: Node): { value: Value; what: string; direct: boolean }[] {
  const out: { value: Value; what: string; direct: boolean }[] = [];
  node.inputs.forEach((v, k) => v && out.push({ value: v, what: `input ${k} ${ref(v)}`, direct: true }));
  for (const sub of node.subgraphs()) {
    for (const v of freeValues(sub)) out.push({ value: v, what: `${ref(v)} (read by subgraph "${sub.name}")`, direct: false });
  }
  return out;
}

/** Strongly connected components of nodes 0..n-1 (Tarjan); keeps those that form a cycle. */
function cycles(n: number, edges: readonly (readonly number[])[]): number[][] {
  const index = new Array<number>(n).fill(-1);
  const low = new Array<number>(n).fill(0);
  const onStack = new Array<boolean>(n).fill(false);
  const stack: number[] = [];
  const out: number[][] = [];
  let counter = 0;
  const visit = (v: number): void => {
    index[v] = low[v] = counter++;
    stack.push(v);
    onStack[v] = true;
    for (const w of edges[v]!) {
      if (index[w] === -1) {
        visit(w);
        low[v] = Math.min(low[v]!, low[w]!);
      } else if (onStack[w]) {
        low[v] = Math.min(low[v]!, index[w]!);
      }
    }
    if (low[v] === index[v]) {
      const comp: number[] = [];
      let w: number;
      do {
        w = stack.pop()!;
        onStack[w] = false;
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || edges[v]!.includes(v)) out.push(comp.sort((a, b) => a - b));
    }
  };
  for (let v = 0; v < n; v++) if (index[v] === -1) visit(v);
  return out;
}

// %x defined as an input and as a node output, or two values named %x -> defined-twice
export const definedOnce: GraphRule = (graph) => {
  const issues: VerifyIssue[] = [];
  const seen = new Map<Value, string>();
  const names = new Map<string, Value>();
  const define = (v: Value, as: string, node?: Node) => {
    const before = seen.get(v);
    const other = names.get(v.name);
    const problem = before
      ? `${as} ${ref(v)} is already defined as ${before}`
      : other && other !== v
        ? `${as} ${ref(v)} reuses the name of another value of graph "${graph.name}"`
        : undefined;
    if (problem) issues.push(node ? nodeIssue('defined-twice', graph, node, problem) : graphIssue('defined-twice', graph, problem));
    if (!before) seen.set(v, node ? `output of ${node.describe()}` : as);
    if (!other) names.set(v.name, v);
  };
  graph.inputs.forEach((v) => define(v, 'input'));
  graph.initializers.forEach((v) => define(v, 'initializer'));
  for (const n of graph.nodes) n.outputs.forEach((v, k) => define(v, `output ${k}`, n));
  return issues;
};

// a node reading a value before the node that defines it -> use-before-def, or cycle when they depend on each other;
// reading a value defined nowhere in scope -> dangling
export const definedBeforeUse: GraphRule = (graph, scope) => {
  const issues: VerifyIssue[] = [];
  const position = new Map<Value, number>();
  graph.nodes.forEach((n, k) => n.outputs.forEach((v) => position.has(v) || position.set(v, k)));
  const available = new Set([...scope.visible, ...graph.inputs, ...graph.initializers]);
  const edges: number[][] = graph.nodes.map(() => []);
  const late: { from: number; to: number; what: string }[] = [];
  graph.nodes.forEach((node, k) => {
    for (const { value, what, direct } of reads(node)) {
      const p = position.get(value);
      if (p !== undefined) edges[p]!.push(k);
      if (available.has(value)) continue;
      if (p !== undefined) late.push({ from: p, to: k, what });
      else if (scope.enclosing.has(value) && !direct) continue;
      else if (scope.enclosing.has(value)) {
        issues.push(nodeIssue('use-before-def', graph, node, `${what} is used before its definition in an enclosing graph`));
      } else if (direct) {
        issues.push(nodeIssue('dangling', graph, node, `dangling ${what}: not a graph input, initializer or output of an earlier node in scope`));
      }
    }
    node.outputs.forEach((v) => available.add(v));
  });
  const cyclic = cycles(graph.nodes.length, edges);
  const cycleOf = new Map<number, number[]>();
  for (const comp of cyclic) for (const k of comp) cycleOf.set(k, comp);
  for (const comp of cyclic) {
    const names = comp.map((k) => graph.nodes[k]!.describe());
    issues.push(nodeIssue('cycle', graph, graph.nodes[comp[0]!]!, `on a cycle of nodes: ${[...names, names[0]].join(' -> ')}`));
  }
  for (const { from, to, what } of late) {
    if (cycleOf.get(from) !== undefined && cycleOf.get(from) === cycleOf.get(to)) continue;
    const producer = graph.nodes[from]!;
    issues.push(nodeIssue('use-before-def', graph, graph.nodes[to]!, `${what} is used before its definition by ${producer.describe()}`));
  }
  return issues;
};

// output %x that no input, initializer or node defines (here or in scope) -> undefined-output
export const outputsDefined: GraphRule = (graph, scope) => {
  const defined = new Set([...scope.visible, ...graph.definedValues()]);
  // an enclosing graph's value defined after this graph's node is reported there, as use-before-def
  return graph.outputs
    .filter((v) => !defined.has(v) && !scope.enclosing.has(v))
    .map((v) => graphIssue('undefined-output', graph, `output ${ref(v)} is not defined in the graph or its scope`));
};
