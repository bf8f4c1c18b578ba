// Fused attention ops no rule lifts, each with the reason in a user's words: the rules only ever say why, so
// `inspect` lists such a node as a miss instead of reporting a model without attention.
//   MultiHeadAttention (default domain) -> no match: not an ONNX op, the model is not valid ONNX
//   com.microsoft PackedAttention, SparseAttention, ... -> no match: what the node holds that one
//   attnopt::Attention does not

import { type Node } from '@attnopt/ir';
import { MS_DOMAIN, noMatch, type RewriteRule } from '@attnopt/rewrite';

/** onnxruntime's contrib attention ops no rule lifts, with what each computes inside that is not attention alone. */
export const CONTRIB_ATTENTION_NOT_LIFTED: Readonly<Record<string, string>> = {
  QOrderedAttention: 'it computes in ordered int8 (quantized inputs, weights and outputs)',
  QOrderedLongformerAttention: 'it computes in ordered int8 with Longformer windows and global tokens',
  PackedAttention: 'its tokens are packed without padding (token_offset, cumulative_sequence_length)',
  PackedMultiHeadAttention: 'its tokens are packed without padding (token_offset, cumulative_sequence_length)',
  SparseAttention: 'its block-sparse layout, rotary embedding and cache are inside the node',
  LongformerAttention: "its projection, Longformer's windows and global tokens are inside the node",
  DecoderAttention: 'its projections, cache and beam-search state are inside the node',
  DecoderMaskedSelfAttention: 'its projection and beam-search cache are inside the node',
  PagedAttention: 'its keys and values sit in a paged cache read through block tables',
};

export const unsupportedFusedRule: RewriteRule<never> = {
  name: 'unsupported-fused-attention',
  summary: 'fused attention ops that one attnopt::Attention cannot express -> no match, with the reason',
  roots: ['MultiHeadAttention'],
  match(node: Node) {
    return noMatch(`${node.op} in the default ONNX domain is not an ONNX op (it is com.microsoft::${node.op}), so the model is not valid ONNX and has no exact meaning to lift`);
  },
  rewrite() {
    throw new Error('unsupported-fused-attention never matches');
  },
};

// com.microsoft::QAttention(...) (and the other ops above) -> no match, with what the node holds
export const contribAttentionNotLiftedRule: RewriteRule<never> = {
  name: 'contrib-attention-not-lifted',
  summary: "onnxruntime contrib attention ops no rule lifts -> no match, with what the node holds",
  roots: Object.keys(CONTRIB_ATTENTION_NOT_LIFTED).map((op) => `${MS_DOMAIN}::${op}`),
  match(node: Node) {
    return noMatch(`com.microsoft::${node.op} is not lifted: ${CONTRIB_ATTENTION_NOT_LIFTED[node.op] ?? 'no rule reads it'}`);
  },
  rewrite() {
    throw new Error('contrib-attention-not-lifted never matches');
  },
};
