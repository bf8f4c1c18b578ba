// Misses: Softmax nodes that look like attention but were not lifted, with the recognizer's reason.
//
// A Softmax looks like attention independently of the rules: it normalizes the last axis, and its output
// reaches a MatMul (bmm is a MatMul in ONNX) or an Einsum whose other operand is a different value (the values
// V) through at most MAX_STEPS layout-only ops and casts: the probabilities · V product of some attention,
// however an exporter laid the heads out. The coverage table counts sites with the same definition.

import type { Graph, Node, Value } from '@attnopt/ir';
import { inferRank } from '@attnopt/passes';
import type { PassNote } from '@attnopt/rewrite';

/** Ops that only move, cast or select probabilities on the way from the Softmax to the P · V product. */
export const LAYOUT_ONLY_OPS: ReadonlySet<string> = new Set([
  'Cast',
  'CastLike',
  'Identity',
  'Dropout',
  'Where',
  'Reshape',
  'Transpose',
  'Squeeze',
  'Unsqueeze',
  'Expand',
  'Flatten',
]);
const MAX_STEPS = 6;
/** The default-domain opset assumed when the caller does not say (Softmax's axis defaults to -1 from 13 on). */
const DEFAULT_OPSET = 13;

function softmaxAxisIsLast(softmax: Node, opset: number): boolean {
  const a = softmax.attrs.get('axis');
  const axis = a?.type === 'int' ? Number(a.value) : opset >= 13 ? -1 : 1;
  if (axis === -1) return true;
  const input = softmax.inputs[0];
  // the rank as declared, else as the graph fixes it (exporters before opset 13 write the last axis as 3)
  const rank = (input?.type?.kind === 'tensor' ? input.type.shape?.length : undefined) ?? (input ? inferRank(input) : undefined);
  return rank !== undefined && axis === rank - 1;
}

/** True when `v` (derived from a Softmax's output) reaches a P · V product through layout-only ops. */
function reachesValueProduct(v: Value, steps: number): boolean {
  return v.uses().some(({ node }) => {
    if (node.domain !== '') return false;
    if (node.op === 'MatMul' || node.op === 'Einsum') return node.inputs.some((other) => other !== undefined && other !== v);
    return steps < MAX_STEPS && LAYOUT_ONLY_OPS.has(node.op) && node.outputs.some((o) => reachesValueProduct(o, steps + 1));
  });
}

/** Whether `node` is a Softmax that looks like attention (see the header). */
export function looksLikeAttention(node: Node, opset = DEFAULT_OPSET): boolean {
  return node.op === 'Softmax' && node.domain === '' && softmaxAxisIsLast(node, opset) && node.outputs[0] !== undefined && reachesValueProduct(node.outputs[0], 0);
}

/** Every Softmax of `graph` (subgraphs included) that looks like attention, in graph order. */
export function attentionSoftmaxes(graph: Graph, opset = DEFAULT_OPSET): Node[] {
  return [...graph.allNodes()].filter((n) => looksLikeAttention(n, opset));
}

/** A Softmax that looks like attention and was not lifted, with why (the recognizer's notes on it). */
export interface AttentionMiss {
  /** The Softmax node as errors and notes name it. */
  readonly node: string;
  readonly reason: string;
}

/** What a graph held before recognition, to tell afterwards which attention-like Softmax nodes were left. */
export interface MissWatch {
  /** Softmax nodes of the graph before recognition. */
  readonly softmaxes: number;
  /** Those that look like attention. */
  readonly candidates: number;
  /** The candidates still in the graph and still feeding a P · V product, each with the notes' reason. */
  misses(notes: readonly PassNote[]): AttentionMiss[];
}

/** Records the attention-like Softmax nodes of `graph`; call it before recognition, `misses` after. */
export function watchMisses(graph: Graph, opset = DEFAULT_OPSET): MissWatch {
  const softmaxes = [...graph.allNodes()].filter((n) => n.op === 'Softmax' && n.domain === '');
  const candidates = softmaxes.filter((n) => looksLikeAttention(n, opset)).map((node) => ({ node, name: node.describe() }));
  return {
    softmaxes: softmaxes.length,
    candidates: candidates.length,
    misses(notes) {
      return candidates
        .filter(({ node }) => node.graph !== undefined && looksLikeAttention(node, opset))
        .map(({ name }) => {
          const reasons = [...new Set(notes.filter((n) => n.node === name && !n.message.startsWith('applied')).map((n) => n.message))];
          return { node: name, reason: reasons.join('; ') || 'no recognition rule matched it' };
        });
    },
  };
}

/** Why a model has no attention site, in words (for a report that would otherwise say only "0 sites"). */
export function noSitesReason(watch: MissWatch, misses: readonly AttentionMiss[]): string {
  if (watch.softmaxes === 0) return 'the model has no Softmax node and no fused attention op the recognizer knows';
  if (watch.candidates === 0) {
    const n = watch.softmaxes;
    return `${n} Softmax node${n === 1 ? '' : 's'}, but none normalizes the last axis and feeds its probabilities to a MatMul or Einsum with values (no attention)`;
  }
  const n = misses.length;
  return `${n} Softmax node${n === 1 ? '' : 's'} look${n === 1 ? 's' : ''} like attention but no rule lifted ${n === 1 ? 'it' : 'them'} (reasons below)`;
}
