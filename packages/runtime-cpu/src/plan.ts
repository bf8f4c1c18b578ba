// planGraph: checks every node against the executor's ops before anything runs (one error naming every
// unsupported node), orders the nodes topologically, and records where each value is last read so the
// executor can free it.

import { freeValues, type Graph, type Node, type Value } from '@attnopt/ir';
import { type OpKernel, opKey } from './kernel.js';
import { EXECUTOR_OPS } from './ops/index.js';

const quoted = (name: string): string => JSON.stringify(name);

/** Default-domain opset assumed when none is given (the semantics of Softmax, Split... follow it). */
export const DEFAULT_OPSET = 17;

export interface PlanOptions {
  /** Version of the default (ai.onnx) domain the graph was written for; default 17. */
  readonly opset?: number;
  /**
   * The graph is a subgraph (an If branch): values it reads without defining them come from the enclosing graphs at
   * run time (RunOptions.outer) instead of being an error.
   */
  readonly nested?: boolean;
}

export interface PlannedNode {
  readonly node: Node;
  readonly kernel: OpKernel;
}

export interface GraphPlan {
  readonly graph: Graph;
  readonly opset: number;
  /** Nodes in an order where every input is computed before it is read. */
  readonly steps: readonly PlannedNode[];
  /** Per value, the step after which nothing reads it (graph outputs are kept to the end). */
  readonly lastUse: ReadonlyMap<Value, number>;
}

export interface UnsupportedNode {
  readonly name: string;
  readonly op: string;
  readonly domain: string;
  readonly reason: string;
}

/** The error planGraph throws: every node the executor cannot run, with the reason. */
export class UnsupportedOpsError extends Error {
  constructor(
    readonly graphName: string,
    readonly nodes: readonly UnsupportedNode[],
  ) {
    const lines = nodes.map((n) => `  ${n.name ? JSON.stringify(n.name) : '(unnamed)'}: ${n.domain ? `${n.domain}::` : ''}${n.op} (${n.reason})`);
    super(`graph "${graphName}": the CPU executor cannot run ${nodes.length} node(s):\n${lines.join('\n')}`);
    this.name = 'UnsupportedOpsError';
  }
}

/** Every node checked, the order fixed, the last reads recorded; throws before anything runs. */
export function planGraph(graph: Graph, options: PlanOptions = {}): GraphPlan {
  const opset = options.opset ?? DEFAULT_OPSET;
  const unsupported: UnsupportedNode[] = [];
  const kernels = new Map<Node, OpKernel>();
  for (const node of graph.nodes) {
    const kernel = EXECUTOR_OPS[opKey(node.domain, node.op)];
    const entry = { name: node.name, op: node.op, domain: node.domain };
    if (!kernel) {
      unsupported.push({ ...entry, reason: 'no CPU implementation' });
      continue;
    }
    let reason: string | undefined;
    try {
      reason = kernel.check?.(node, opset);
    } catch (e) {
      reason = (e as Error).message;
    }
    if (reason === undefined && node.subgraphs().length > 0 && !kernel.subgraphs) reason = 'subgraphs are not supported';
    if (reason === undefined) {
      // the branches' nodes are checked now too, so that nothing runs before a refusal
      for (const sub of kernel.subgraphs ? node.subgraphs() : []) {
        try {
          planGraph(sub, { opset, nested: true });
        } catch (e) {
          if (!(e instanceof UnsupportedOpsError)) throw e;
          unsupported.push(...e.nodes.map((n) => ({ ...n, name: `${node.name || node.op}/${sub.name}/${n.name}` })));
        }
      }
    }
    if (reason !== undefined) unsupported.push({ ...entry, reason });
    else kernels.set(node, kernel);
  }
  if (unsupported.length > 0) throw new UnsupportedOpsError(graph.name, unsupported);

  // Kahn's algorithm, keeping the graph's own order among ready nodes
  const defined = new Set<Value>([...graph.inputs, ...graph.initializers]);
  const producerOf = new Map<Value, Node>();
  for (const n of graph.nodes) for (const v of n.outputs) producerOf.set(v, n);
  const waiting = new Map<Node, number>();
  const readers = new Map<Node, Node[]>();
  // what a node reads: its inputs, and the enclosing values its subgraphs read
  const reads = new Map(graph.nodes.map((n) => [n, [...new Set([...n.inputs, ...n.subgraphs().flatMap((sub) => [...freeValues(sub)])])]]));
  for (const n of graph.nodes) {
    let count = 0;
    for (const v of reads.get(n)!) {
      if (v === undefined || defined.has(v) || v.initializer) continue;
      const p = producerOf.get(v);
      if (!p && options.nested) continue;
      if (!p) throw new Error(`${n.describe()}: input ${quoted(v.name)} is defined nowhere in graph "${graph.name}" (not an input, initializer or node output)`);
      count++;
      readers.set(p, [...(readers.get(p) ?? []), n]);
    }
    waiting.set(n, count);
  }
  const index = new Map(graph.nodes.map((n, k) => [n, k]));
  const ready = graph.nodes.filter((n) => waiting.get(n) === 0);
  const steps: PlannedNode[] = [];
  while (ready.length > 0) {
    ready.sort((a, b) => index.get(a)! - index.get(b)!);
    const n = ready.shift()!;
    steps.push({ node: n, kernel: kernels.get(n)! });
    for (const r of readers.get(n) ?? []) {
      const left = waiting.get(r)! - 1;
      waiting.set(r, left);
      if (left === 0) ready.push(r);
    }
  }
  if (steps.length !== graph.nodes.length) {
    const stuck = graph.nodes.filter((n) => !steps.some((s) => s.node === n)).slice(0, 5);
    throw new Error(`graph "${graph.name}" has a cycle through ${stuck.map((n) => n.describe()).join(', ')}`);
  }
  for (const v of graph.outputs) {
    if (!defined.has(v) && !v.initializer && !producerOf.has(v) && !options.nested) throw new Error(`graph "${graph.name}": output ${quoted(v.name)} is defined nowhere`);
  }

  const lastUse = new Map<Value, number>();
  const keep = steps.length; // past the last step: never freed
  steps.forEach(({ node }, k) => {
    for (const v of node.outputs) lastUse.set(v, k); // unread outputs go right after they are made
    for (const v of reads.get(node)!) if (v) lastUse.set(v, k);
  });
  for (const v of graph.outputs) lastUse.set(v, keep);
  return { graph, opset, steps, lastUse };
}
