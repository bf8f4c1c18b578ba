// Lowering attnopt::Attention to standard ONNX ops.
export { cannotLower, lowerAttention, loweringPlan, type LowerOptions, type LoweringPlan, type LoweringStrategy } from './attention.js';
export { bandBlockSize, bandedAttention, bandedKeysPerQuery, keySupport, type BandedInputs, type KeySupport } from './banded.js';
export { blockGatherAttention, type BlockGatherInputs } from './blocks.js';
export { lowRankAttention, lowRankBlocker, performerRows, type LowRankInputs } from './low-rank.js';
export { lowerAttentionPass } from './pass.js';
export { specMask, unsupportedSpec, type MaskIndices } from './mask.js';
