// What the verifier reports, and the shape of its rules: small functions from a graph or node to issues.

import type { Graph, Node, Value } from '../graph.js';
import { printValueName } from '../text/syntax.js';

/** The kind of problem, one per rule family. */
export type VerifyRule =
  | 'dangling'
  | 'use-before-def'
  | 'cycle'
  | 'defined-twice'
  | 'undefined-output'
  | 'bookkeeping'
  | 'attention'
  | 'shape';

export interface VerifyIssue {
  readonly rule: VerifyRule;
  /** The whole problem in words, starting with the node (or graph) it concerns. */
  readonly message: string;
  readonly graph: Graph;
  readonly node?: Node;
}

/** What a graph sees of its enclosing graphs. */
export interface Scope {
  /** Values of enclosing graphs defined before the node that owns this graph. */
  readonly visible: ReadonlySet<Value>;
  /** Every value defined anywhere in an enclosing graph (a use of one not visible is reported there). */
  readonly enclosing: ReadonlySet<Value>;
}

/** A rule over one graph's own level; the driver recurses into subgraphs. */
export type GraphRule = (graph: Graph, scope: Scope) => VerifyIssue[];

/** A rule over one node: the problems in words, without the node's name. */
export interface NodeRule {
  readonly rule: VerifyRule;
  readonly check: (node: Node) => string[];
}

export function nodeIssue(rule: VerifyRule, graph: Graph, node: Node, problem: string): VerifyIssue {
  return { rule, graph, node, message: `${node.describe()}: ${problem}` };
}

export function graphIssue(rule: VerifyRule, graph: Graph, problem: string): VerifyIssue {
  return { rule, graph, message: `graph "${graph.name}": ${problem}` };
}

/** A value as the text form writes it: `%x`, `%"a b"`. */
export const ref = (v: Value): string => printValueName(v.name);
