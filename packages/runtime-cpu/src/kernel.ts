// What an op implementation is: an optional plan-time check (attributes, opset) and a run over the node's
// input tensors. Ops throw plain messages; the executor prefixes the node.

import type { Graph, Node } from '@attnopt/ir';
import type { CpuKernelOptions, CpuWorkerPool } from '@attnopt/backend-cpu';
import type { ExecTensor } from './tensor.js';

export interface OpContext {
  readonly node: Node;
  /** Version of the default (ai.onnx) domain the graph was written for. */
  readonly opset: number;
  /** Inputs by position; undefined where omitted. */
  readonly inputs: readonly (ExecTensor | undefined)[];
  /** Settings of attnopt::Attention sites. */
  readonly attention: CpuKernelOptions;
  readonly pool: CpuWorkerPool | undefined;
  /** Called after each guarded attention site's call with its fallback. */
  readonly onGuard?: ((event: GuardEvent) => void) | undefined;
  /** Runs a graph held by this node's attributes on the values of the enclosing graphs; its outputs in order. */
  readonly runSubgraph?: (graph: Graph) => Promise<readonly ExecTensor[]>;
}

/** One call of a guarded attention site: the rows its certificate sent to the exact fallback. */
export interface GuardEvent {
  readonly node: Node;
  /** The site's budget on the max abs error of each output coordinate. */
  readonly budget: number;
  /**
   * (batch, head, query row) triples whose bound exceeded the budget, or that kept no key but dropped one (their
   * sparse output, 0, is not bounded by m_hat · R), each recomputed over the baseline.
   */
  readonly fallbackRows: number;
  /** Triples recomputed (the flagged ones and those sharing their strip of 4 query rows). */
  readonly recomputedRows: number;
  /** batch · heads · query rows. */
  readonly rows: number;
  /** The largest certified output bound m_hat · R over the rows (before recomputation). */
  readonly largestBound: number;
}

export type OpOutputs = readonly (ExecTensor | undefined)[];

export interface OpKernel {
  /** Inputs that must be present (the first `minInputs` positions). */
  readonly minInputs: number;
  /** Whether the op runs the graphs its attributes hold (If); other nodes with subgraphs are refused. */
  readonly subgraphs?: boolean;
  /** Why this node cannot run (an attribute or opset the executor does not implement), or undefined. */
  check?(node: Node, opset: number): string | undefined;
  run(ctx: OpContext): OpOutputs | Promise<OpOutputs>;
}

/** Ops of one family, keyed `domain::op` (`::op` for the ONNX domain). */
export type OpTable = Readonly<Record<string, OpKernel>>;

export const opKey = (domain: string, op: string): string => `${domain === 'ai.onnx' ? '' : domain}::${op}`;

/** Input k, required. */
export function input(ctx: OpContext, k: number): ExecTensor {
  const t = ctx.inputs[k];
  if (t === undefined) throw new Error(`input ${k} is missing`);
  return t;
}
