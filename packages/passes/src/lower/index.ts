// Lowering attnopt::Attention to standard ONNX ops.
export { cannotLower, lowerAttention, type LowerOptions } from './attention.js';
export { lowerAttentionPass } from './pass.js';
export { specMask, unsupportedSpec, type MaskIndices } from './mask.js';
