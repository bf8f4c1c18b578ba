// Fused attention ops no rule lifts, each with the reason in a user's words: the rule only ever says why.
//   MultiHeadAttention (default domain) -> no match: not an ONNX op, the model is not valid ONNX

import { type Node } from '@attnopt/ir';
import { noMatch, type RewriteRule } from '@attnopt/rewrite';

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
