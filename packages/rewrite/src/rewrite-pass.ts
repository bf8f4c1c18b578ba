// A pass that applies rewrite rules until none fires: each node is offered to the rules rooted at its op,
// in graph order; a rule that fires rewrites and the scan starts over. Failed matches are recorded as
// notes (rule, node, reason) so a user can see why a site was not rewritten.

import type { Graph, Node } from '@attnopt/ir';
import type { Pass, PassNote, PassResult } from './pass.js';
import { opKey, type RewriteRule } from './rule.js';

export interface RewritePassOptions {
  /** Upper bound on rewrites in one run, against rules that undo each other (default 10,000). */
  readonly maxRewrites?: number;
  /** Record why rules did not match (default true). */
  readonly explain?: boolean;
  /** Also rewrite inside subgraphs (default true). */
  readonly subgraphs?: boolean;
}

export function rewritePass(name: string, rules: readonly RewriteRule[], options: RewritePassOptions = {}): Pass {
  const byRoot = new Map<string, RewriteRule[]>();
  for (const r of rules) {
    for (const root of r.roots) byRoot.set(root, [...(byRoot.get(root) ?? []), r]);
  }
  const maxRewrites = options.maxRewrites ?? 10_000;
  const explain = options.explain ?? true;
  const subgraphs = options.subgraphs ?? true;

  function runOn(graph: Graph, notes: PassNote[], budget: { left: number }): boolean {
    let changed = false;
    for (;;) {
      let fired = false;
      const failures: PassNote[] = [];
      for (const node of [...graph.nodes]) {
        if (node.graph !== graph) continue;
        for (const r of byRoot.get(opKey(node)) ?? []) {
          const m = r.match(node, graph);
          if (!m.ok) {
            if (explain && !m.quiet) failures.push({ pass: name, rule: r.name, node: (m.node ?? node).describe(), message: m.reason });
            continue;
          }
          if (budget.left-- <= 0) throw new Error(`pass ${name}: more than ${maxRewrites} rewrites; rules may undo each other`);
          const where = node.describe();
          r.rewrite(graph, node, m.value);
          notes.push({ pass: name, rule: r.name, node: where, message: `applied: ${r.summary}` });
          fired = true;
          changed = true;
          break;
        }
        if (fired) break;
      }
      if (!fired) {
        notes.push(...failures);
        break;
      }
    }
    if (subgraphs) {
      for (const node of graph.nodes as readonly Node[]) {
        for (const g of node.subgraphs()) changed = runOn(g, notes, budget) || changed;
      }
    }
    return changed;
  }

  return {
    name,
    run(graph: Graph): PassResult {
      const notes: PassNote[] = [];
      const changed = runOn(graph, notes, { left: maxRewrites });
      return { changed, notes };
    },
  };
}
