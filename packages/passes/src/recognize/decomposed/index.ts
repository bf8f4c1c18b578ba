// Recognition of decomposed attention (plain ONNX ops as exporters write them): the rules, in the order tried.

import { rule, type RewriteRule } from '@attnopt/rewrite';
import { decomposedAttention } from './decomposed-attention.js';

export { decomposedAttention, DECOMPOSED_ATTENTION, matchDecomposedAttention, type DecomposedSite } from './decomposed-attention.js';
export { softmaxForm, type SoftmaxForm } from './softmax-form.js';
export { type FusedMatMul, fusedMatMul, isFusedMatMul } from './fused-matmul.js';

export const DECOMPOSED_RULES: readonly RewriteRule[] = [rule(decomposedAttention)];
