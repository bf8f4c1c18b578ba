// Fused attention ops no rule lifts, each with the reason in a user's words: the rule only ever says why.
//   MultiHeadAttention (default domain)          -> no match: not an ONNX op, the model is not valid ONNX
//   com.microsoft::DecoderMaskedMultiHeadAttention -> no match: beam-search cache indirection

import { type Node } from '@attnopt/ir';
import { noMatch, type RewriteRule } from '@attnopt/rewrite';
import { MS_DOMAIN } from './common.js';

export const unsupportedFusedRule: RewriteRule<never> = {
  name: 'unsupported-fused-attention',
  summary: 'fused attention ops that one attnopt::Attention cannot express -> no match, with the reason',
  roots: ['MultiHeadAttention', `${MS_DOMAIN}::DecoderMaskedMultiHeadAttention`],
  match(node: Node) {
    if (node.domain === MS_DOMAIN) {
      return noMatch(`${node.op} reads a beam-search cache indirection (and writes into a fixed-size past buffer in place): one attnopt::Attention cannot express it`);
    }
    return noMatch(`${node.op} in the default ONNX domain is not an ONNX op (it is com.microsoft::${node.op}), so the model is not valid ONNX and has no exact meaning to lift`);
  },
  rewrite() {
    throw new Error('unsupported-fused-attention never matches');
  },
};
