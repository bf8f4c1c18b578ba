// Fused attention ops lifted into attnopt::Attention, one rule per op.

import { rule, type RewriteRule } from '@attnopt/rewrite';
import { decoderMaskedAttentionRule } from './decoder-masked-attention.js';
import { flexAttentionRule } from './flex-attention.js';
import { groupQueryAttentionRule } from './group-query-attention.js';
import { msAttentionRule, qAttentionRule } from './ms-attention.js';
import { multiHeadAttentionRule } from './multi-head-attention.js';
import { onnxAttentionRule } from './onnx-attention.js';
import { CONTRIB_ATTENTION_NOT_LIFTED, contribAttentionNotLiftedRule, unsupportedFusedRule } from './unsupported.js';

export { CONTRIB_ATTENTION_NOT_LIFTED, contribAttentionNotLiftedRule, decoderMaskedAttentionRule, flexAttentionRule, groupQueryAttentionRule, msAttentionRule, qAttentionRule, multiHeadAttentionRule, onnxAttentionRule, unsupportedFusedRule };

/** ONNX Attention (opset 23/24), ONNX's FlexAttention (ai.onnx.preview), com.microsoft Attention, QAttention, MultiHeadAttention, GroupQueryAttention and DecoderMaskedMultiHeadAttention. */
export const FUSED_RULES: readonly RewriteRule[] = [
  rule(onnxAttentionRule),
  rule(msAttentionRule),
  rule(qAttentionRule),
  rule(multiHeadAttentionRule),
  rule(groupQueryAttentionRule),
  rule(decoderMaskedAttentionRule),
  rule(flexAttentionRule),
  // last: says why the ops no rule lifts stay
  rule(unsupportedFusedRule),
  rule(contribAttentionNotLiftedRule),
];
