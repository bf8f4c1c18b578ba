// Undoing a lift: a site that nothing improved goes back to the ONNX nodes it was lifted from, so the runtime
// meets the exporter's own subgraph (and its own fusions of it) rather than a re-lowered copy.
//   attnopt::Attention lifted from the subgraph M (with its prelude and postlude)  ->  M, as the model wrote it
// A site lifted in two steps (a rule rewriting an Attention node an earlier rule lifted) is undone step by step.
// The matched nodes return with their inputs, each after the node it followed when it was lifted (or, when that
// node is gone, where the lifted nodes stood); the values the site computed take their uses back.

import type { Graph, Node, Value } from '@attnopt/ir';
import { removeDead } from '@attnopt/rewrite';
import { LIFT_RECORD, type LiftRecord } from './lift.js';
import { sortTopologically, topologicallyOrdered } from './order.js';

/** Why `node` cannot be unlifted, or undefined when it can. */
export function unliftBlocker(node: Node): string | undefined {
  const record = node.annotations.get(LIFT_RECORD) as LiftRecord | undefined;
  const graph = node.graph;
  if (record === undefined) return 'it was not lifted from ONNX nodes';
  if (graph === undefined) return 'it is no longer in a graph';
  if (record.added.some((n) => n.graph !== graph)) return 'the nodes its lift added were rewritten since';
  if (record.fresh.some((v) => v.producer === undefined || v.producer.graph !== graph)) return 'its outputs were rewritten since';
  const same = record.attentionInputs.length === node.inputs.length && record.attentionInputs.every((v, k) => node.inputs[k] === v);
  if (!same) return 'its inputs were rewritten since';
  return undefined;
}

/**
 * `from` -> `to` in the records of the other lifted sites: a site that read this one's output directly (q = k =
 * the previous site's y, with no projection between) reads `to` now, and its matched nodes, once put back, read
 * what they read when the model was written.
 */
function followInRecords(graph: Graph, from: Value, to: Value): void {
  const swap = (xs: readonly (Value | undefined)[]) => (xs.includes(from) ? xs.map((x) => (x === from ? to : x)) : xs);
  for (const n of graph.allNodes()) {
    const r = n.annotations.get(LIFT_RECORD) as LiftRecord | undefined;
    if (r === undefined) continue;
    const attentionInputs = swap(r.attentionInputs);
    const matched = r.matched.map((m) => {
      const inputs = swap(m.inputs);
      return inputs === m.inputs ? m : { ...m, inputs };
    });
    if (attentionInputs !== r.attentionInputs || matched.some((m, k) => m !== r.matched[k])) n.annotations.set(LIFT_RECORD, { ...r, attentionInputs, matched });
  }
}

/** Puts the ONNX nodes `node` was lifted from back in its place; false (and nothing changed) when it cannot. */
export function unliftSite(node: Node): boolean {
  if (unliftBlocker(node) !== undefined) return false;
  const record = node.annotations.get(LIFT_RECORD) as LiftRecord;
  const graph = node.graph!;
  const ordered = topologicallyOrdered(graph); // some exporters write nodes out of order: leave those as they are
  const fallback = () => Math.min(...record.added.map((n) => graph.nodes.indexOf(n)));
  for (const m of record.matched) {
    if (m.node.graph !== undefined) continue; // kept at lift time: still used elsewhere
    // right after the node it followed (restored already when it was matched too), else where the lift stood
    const at = m.anchor === null ? 0 : m.anchor.graph === graph ? graph.nodes.indexOf(m.anchor) + 1 : fallback();
    m.inputs.forEach((v, k) => m.node.setInput(k, v));
    graph.addNode(m.node, at);
  }
  record.fresh.forEach((v, k) => {
    const old = record.replaced[k]!;
    old.name = v.name; // the fresh value took the old one's name (a redirect may have renamed the old one)
    v.name = `${v.name}__attnopt_unlifted`;
    v.replaceAllUsesWith(old, graph);
    followInRecords(graph, v, old);
  });
  removeDead(graph, record.added);
  if (ordered && !topologicallyOrdered(graph)) sortTopologically(graph);
  // a site lifted in two steps (a rule that rewrote an Attention node lifted before) goes back all the way
  for (const m of record.matched) if (m.node.graph === graph && m.node.annotations.has(LIFT_RECORD)) unliftSite(m.node);
  return true;
}
