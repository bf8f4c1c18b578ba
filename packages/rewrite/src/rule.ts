// A rewrite rule: where it may start, how it matches (without mutating), and how it rewrites.
// Its `summary` is its before -> after, the line `--explain` shows.

import type { Graph, Node } from '@attnopt/ir';
import type { MatchResult } from './match-result.js';

export interface RewriteRule<M = unknown> {
  readonly name: string;
  /** before -> after, e.g. `Softmax(MatMul(Q, Kᵀ) · s + M) · V -> Attention(Q, K, V, scale=s, bias=M)`. */
  readonly summary: string;
  /** The ops a match may start at, as `op` or `domain::op`: the rule is tried only on such nodes. */
  readonly roots: readonly string[];
  /** Decides whether the rule applies at `root`; never mutates the graph. */
  match(root: Node, graph: Graph): MatchResult<M>;
  /** Applies a successful match. */
  rewrite(graph: Graph, root: Node, match: M): void;
}

/** The domain of onnxruntime's contrib ops (Attention, MultiHeadAttention, GroupQueryAttention...). */
export const MS_DOMAIN = 'com.microsoft';

/** `op` for the default domain, `domain::op` otherwise: the key rules index their roots by. */
export function opKey(node: Node): string {
  return node.domain === '' || node.domain === 'ai.onnx' ? node.op : `${node.domain}::${node.op}`;
}

/** Erases a rule's match type, for lists of rules of different kinds. */
export function rule<M>(r: RewriteRule<M>): RewriteRule<unknown> {
  return r as RewriteRule<unknown>;
}
