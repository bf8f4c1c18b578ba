// The recognize pass: lift every attention site, fused ops first (they are exact by definition), then the
// decomposed forms exporters write.

import { type Pass, rewritePass, type RewriteRule } from '@attnopt/rewrite';
import { DECOMPOSED_RULES } from './decomposed/index.js';
import { FUSED_RULES } from './fused/index.js';

export const RECOGNITION_RULES: readonly RewriteRule[] = [...FUSED_RULES, ...DECOMPOSED_RULES];

/** Softmax(scale Q Kᵀ + M) V, spelled as any exporter spells it -> attnopt::Attention(Q, K, V, bias=M). */
export function recognizePass(options: { explain?: boolean } = {}): Pass {
  return rewritePass('recognize', RECOGNITION_RULES, { explain: options.explain ?? true });
}
