// Undoing a mask proof: a site whose proven mask buys nothing on the target gets its bias back, with the nodes
// that built it, so the site can return to the ONNX nodes it was lifted from (recognize/unlift.ts).
//   Attention(Q, K, V, spec=spec ∩ P), mask nodes removed  ->  Attention(Q, K, V, bias=M, spec), mask nodes back
// The analyze-mask pass records, per site, its inputs and spec before the proof, and per graph every node it
// removed with that node's inputs: a mask shared by several sites is removed with the last site that drops it,
// so undoing any one site may need nodes another site's proof removed. What no site needs again is removed.

import { type Attr, type Graph, type Node, type Value } from '@attnopt/ir';
import { removeDead } from '@attnopt/rewrite';
import { sortTopologically, topologicallyOrdered } from '../recognize/order.js';
import { unpatchUnkeptRows } from './unkept-rows.js';

/** Node annotation: what the site was before its mask was proven. */
export const MASK_PROOF = 'attnopt.maskProof';
/** Graph annotation: the nodes the analyze-mask pass removed, in removal order. */
export const MASK_NODES_REMOVED = 'attnopt.maskNodesRemoved';
/** Graph annotation: the nodes the analyze-mask pass added (residuals as key biases: key-rows.ts). */
export const MASK_NODES_ADDED = 'attnopt.maskNodesAdded';

export interface MaskProofRecord {
  readonly inputs: readonly (Value | undefined)[];
  readonly spec: Attr | undefined;
}

export interface RemovedNode {
  readonly node: Node;
  readonly inputs: readonly (Value | undefined)[];
  /** The node it followed in the graph (null: it was first), so it goes back where the model had it. */
  readonly anchor: Node | null;
}

/** Records `node`'s inputs and spec before the proof rewrites them. */
export function recordMaskProof(node: Node): void {
  if (node.annotations.has(MASK_PROOF)) return; // proven twice: the first record is what the model wrote
  node.annotations.set(MASK_PROOF, { inputs: [...node.inputs], spec: node.attrs.get('spec') } satisfies MaskProofRecord);
}

/** The nodes of `candidates` still in `graph`, with their inputs (taken before removeDead detaches them). */
export function snapshot(graph: Graph, candidates: Iterable<Node>): RemovedNode[] {
  const at = new Map(graph.nodes.map((n, k) => [n, k]));
  return [...candidates]
    .filter((n) => n.graph === graph)
    .map((node) => ({ node, inputs: [...node.inputs], anchor: graph.nodes[at.get(node)! - 1] ?? null }));
}

/** Appends the snapshot entries removeDead did remove to the graph's record. */
export function recordRemoved(graph: Graph, taken: readonly RemovedNode[]): void {
  const removed = (graph.annotations.get(MASK_NODES_REMOVED) as RemovedNode[] | undefined) ?? [];
  removed.push(...taken.filter((r) => r.node.graph !== graph));
  graph.annotations.set(MASK_NODES_REMOVED, removed);
}

/** Records the nodes a proof added (removed again on undo, where no site reads them). */
export function recordKeyRows(graph: Graph, nodes: readonly Node[]): void {
  const added = (graph.annotations.get(MASK_NODES_ADDED) as Node[] | undefined) ?? [];
  added.push(...nodes);
  graph.annotations.set(MASK_NODES_ADDED, added);
}

/** True when `node`'s mask was proven (and can be undone). */
export function maskProven(node: Node): boolean {
  return node.annotations.has(MASK_PROOF);
}

/**
 * Gives each of `sites` its bias and spec back, with the mask nodes the proofs removed; the mask nodes no site
 * needs again are removed once more. Returns the sites undone (a site without a record is left as it is).
 */
export function undoMaskProofs(graph: Graph, sites: readonly Node[]): Node[] {
  const undone = sites.filter((n) => n.graph === graph && maskProven(n));
  if (undone.length === 0) return [];
  const ordered = topologicallyOrdered(graph);
  const removed = (graph.annotations.get(MASK_NODES_REMOVED) as RemovedNode[] | undefined) ?? [];
  const back = removed.filter((r) => r.node.graph === undefined);
  // each after the node it followed, once that one is back too; the rest at the end, then sorted
  let pending = back;
  while (pending.length > 0) {
    const ready = pending.filter((r) => r.anchor === null || r.anchor.graph === graph);
    const placed = ready.length > 0 ? ready : pending;
    for (const r of placed) {
      const at = r.anchor === null ? 0 : r.anchor.graph === graph ? graph.nodes.indexOf(r.anchor) + 1 : graph.nodes.length;
      graph.addNode(r.node, at);
      r.inputs.forEach((v, k) => r.node.setInput(k, v));
    }
    pending = pending.filter((r) => !placed.includes(r));
  }
  graph.annotations.set(MASK_NODES_REMOVED, removed.filter((r) => !back.includes(r)));
  for (const node of undone) {
    unpatchUnkeptRows(graph, node);
    const record = node.annotations.get(MASK_PROOF) as MaskProofRecord;
    node.truncateInputs(0);
    record.inputs.forEach((v, k) => node.setInput(k, v));
    if (record.spec === undefined) node.attrs.delete('spec');
    else node.attrs.set('spec', record.spec);
    node.annotations.delete(MASK_PROOF);
  }
  // the nodes no undone site reads again go back out (recorded again, for a later undo); the nodes a proof added
  // that no site reads any more go too
  const taken = snapshot(graph, back.map((r) => r.node));
  removeDead(graph, back.map((r) => r.node));
  const added = (graph.annotations.get(MASK_NODES_ADDED) as Node[] | undefined) ?? [];
  removeDead(graph, added);
  graph.annotations.set(MASK_NODES_ADDED, added.filter((n) => n.graph === graph));
  recordRemoved(graph, taken);
  if (ordered && !topologicallyOrdered(graph)) sortTopologically(graph);
  return undone;
}
