// Misses: Softmax nodes that look like attention but were not lifted, with the recognizer's reason.
//
// A Softmax (the op, one spelled as Exp, ReduceSum over the last axis and Div, or Exp of a LogSoftmax: passes'
// softmaxForm, whose last node stands for it) looks like attention independently of the rules: it normalizes the last axis, and its output
// reaches a MatMul (bmm is a MatMul in ONNX; onnxruntime's FusedMatMul too) or an Einsum whose other operand is a different value (the values
// V) through at most MAX_STEPS layout-only ops, casts and QDQ pairs (a QDQ-quantized model rounds the probabilities
// on the way): the probabilities · V product of some attention,
// however an exporter laid the heads out. The coverage table counts sites with the same definition. A fused
// attention op (ONNX Attention, com.microsoft Attention / MultiHeadAttention / GroupQueryAttention /
// QAttention, DecoderMaskedMultiHeadAttention, and onnxruntime's other contrib attention ops: PackedAttention,
// SparseAttention, ...) left in the graph is a miss too.

import { type Graph, isAttention, type Node, type Value } from '@attnopt/ir';
import { CONTRIB_ATTENTION_NOT_LIFTED, fusedMatMul, inferRank, isFusedMatMul, softmaxForm } from '@attnopt/passes';
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
/** The QDQ pair a quantized model puts on the probabilities (in the ONNX or com.microsoft domain). */
export const QDQ_OPS: ReadonlySet<string> = new Set(['QuantizeLinear', 'DequantizeLinear']);
const MAX_STEPS = 6;
/**
 * Fused attention ops: those the recognizer lifts (matched by op name in any domain: some exporters misplace
 * them) and onnxruntime's other contrib attention ops, which it names with why it does not lift them.
 */
export const FUSED_ATTENTION_OPS: ReadonlySet<string> = new Set(['Attention', 'FlexAttention', 'QAttention', 'MultiHeadAttention', 'GroupQueryAttention', 'DecoderMaskedMultiHeadAttention', ...Object.keys(CONTRIB_ATTENTION_NOT_LIFTED)]);

/** A fused attention op of ONNX or com.microsoft (not attnopt's own Attention, the lifted form). */
export const isFusedAttention = (n: Node): boolean => FUSED_ATTENTION_OPS.has(n.op) && !isAttention(n);
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
    // onnxruntime's FusedMatMul, as its optimizer saves a MatMul (one that transposes P, as a training graph's
    // gradient reads it, is no P · V)
    const product = node.domain === '' ? node.op === 'MatMul' || node.op === 'Einsum' : isFusedMatMul(node) && typeof fusedMatMul(node) !== 'string';
    if (product) return node.inputs.some((other) => other !== undefined && other !== v);
    const passes = node.domain === '' ? LAYOUT_ONLY_OPS.has(node.op) || QDQ_OPS.has(node.op) : node.domain === 'com.microsoft' && QDQ_OPS.has(node.op);
    return steps < MAX_STEPS && passes && node.outputs.some((o) => reachesValueProduct(o, steps + 1));
  });
}

/** Whether `node` is a Softmax (the op, or the Div / Mul ending a spelled one) that looks like attention (see the header). */
export function looksLikeAttention(node: Node, opset = DEFAULT_OPSET): boolean {
  if (node.op === 'Div' || node.op === 'Mul' || node.op === 'Exp') {
    const spelled = node.domain === '' ? softmaxForm(node) : undefined;
    return spelled !== undefined && (spelled.axisOp === undefined || softmaxAxisIsLast(spelled.axisOp, opset)) && reachesValueProduct(spelled.output, 0);
  }
  return node.op === 'Softmax' && node.domain === '' && softmaxAxisIsLast(node, opset) && node.outputs[0] !== undefined && reachesValueProduct(node.outputs[0], 0);
}

/** Every Softmax of `graph` (subgraphs included) that looks like attention, in graph order. */
export function attentionSoftmaxes(graph: Graph, opset = DEFAULT_OPSET): Node[] {
  return [...graph.allNodes()].filter((n) => looksLikeAttention(n, opset));
}

/** A Softmax that looks like attention, or a fused attention op, not lifted, with why (the recognizer's notes on it). */
export interface AttentionMiss {
  /** The node as errors and notes name it. */
  readonly node: string;
  readonly reason: string;
}

/** What a graph held before recognition, to tell afterwards which attention-like Softmax nodes were left. */
export interface MissWatch {
  /** Softmax nodes of the graph before recognition. */
  readonly softmaxes: number;
  /** Those that look like attention. */
  readonly candidates: number;
  /** Fused attention ops of the graph before recognition. */
  readonly fused: number;
  /**
   * The attention-like Softmax nodes still in the graph and still feeding a P · V product, and the fused ops
   * still in the graph, in graph order, each with the notes' reason.
   */
  misses(notes: readonly PassNote[]): AttentionMiss[];
}

/** Records the attention-like Softmax nodes and fused ops of `graph`; call it before recognition, `misses` after. */
export function watchMisses(graph: Graph, opset = DEFAULT_OPSET): MissWatch {
  const nodes = [...graph.allNodes()];
  const softmaxes = nodes.filter((n) => n.domain === '' && (n.op === 'Softmax' || ((n.op === 'Div' || n.op === 'Mul' || n.op === 'Exp') && softmaxForm(n) !== undefined)));
  const attentionLike = (n: Node) => (isFusedAttention(n) ? true : looksLikeAttention(n, opset));
  const candidates = nodes.filter(attentionLike).map((node) => ({ node, name: node.describe() }));
  return {
    softmaxes: softmaxes.length,
    candidates: candidates.length,
    fused: candidates.filter(({ node }) => isFusedAttention(node)).length,
    misses(notes) {
      return candidates
        .filter(({ node }) => node.graph !== undefined && attentionLike(node))
        .map(({ name }) => {
          const reasons = [...new Set(notes.filter((n) => n.node === name && !n.message.startsWith('applied')).map((n) => n.message))];
          return { node: name, reason: reasons.join('; ') || 'no recognition rule matched it' };
        });
    },
  };
}

/** Why a model has no attention site, in words (for a report that would otherwise say only "0 sites"). */
export function noSitesReason(watch: MissWatch, misses: readonly AttentionMiss[]): string {
  if (watch.softmaxes === 0 && watch.fused === 0) return 'the model has no Softmax node and no fused attention op the recognizer knows';
  if (watch.candidates === 0) {
    const n = watch.softmaxes;
    return `${n} Softmax node${n === 1 ? '' : 's'}, but none normalizes the last axis and feeds its probabilities to a MatMul or Einsum with values (no attention)`;
  }
  const n = misses.length;
  if (watch.fused > 0) return `${n} attention node${n === 1 ? '' : 's'} (fused ops, or Softmax nodes before a P · V product) that no rule lifted (reasons below)`;
  return `${n} Softmax node${n === 1 ? '' : 's'} look${n === 1 ? 's' : ''} like attention but no rule lifted ${n === 1 ? 'it' : 'them'} (reasons below)`;
}
