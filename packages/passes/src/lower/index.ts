// Lowering attnopt::Attention to standard ONNX ops.
export { blockGatherInputsBlocker, cannotLower, decodeRouteQueries, lowRankInputsBlocker, lowerAttention, loweringPlan, type LowerOptions, type LoweringPlan, type LoweringStrategy } from './attention.js';
export { lowerBandedNative, NATIVE_ATTENTION_OPSET, nativeBandedBlocker } from './banded-native.js';
export { bandBlockSize, bandedAttention, bandedKeysPerQuery, keySupport, type BandedInputs, type KeySupport } from './banded.js';
export { blockGatherAttention, blockGatherParts, type BlockGatherInputs, type BlockGatherParts } from './blocks.js';
export { lowRankAttention, lowRankBlocker, type LowRankInputs } from './low-rank.js';
/** The rows w_i (m x d) of a Performer spec: performerW of @attnopt/ir, under the name this module exported. */
export { performerW as performerRows } from '@attnopt/ir';
export { hasKeyBias, keyBiasBlocker } from './key-bias.js';
export { relativeBiasOf } from './relative-bias.js';
export { lowerAttentionPass } from './pass.js';
export { specMask, unsupportedSpec, type MaskIndices } from './mask.js';
export { lshChunkedAttention, type LshInputs } from './lsh.js';
export { lshBucketIds, lshKeepMask, lshOrder, type LshMaskInputs, type LshOrder } from './lsh-hash.js';
export { NYSTROM_PINV_STEPS, nystromAttention, type NystromInputs } from './nystrom.js';
export { GUARD_FALLBACK_VALUE, GUARDED_OPSET, guardableSpec, guardedBandedAttention, guardedBlocker, guardedInputsBlocker, guardedSiteLabel, guardFallbackLabel, type GuardedInputs } from './guarded.js';
export { guardableBlocksSpec, guardBlockSize, guardedBlocksAttention, guardedBlocksBlocker, type GuardedBlocksInputs } from './guarded-blocks.js';
export { DECODE_ROUTE_BRANCH_SECONDS, DECODE_ROUTE_NODES, DECODE_ROUTE_BANDED_QUERIES, decodeRouteThreshold } from './decode-route.js';
export { splitDecodeRoute, type SplitRoute } from './split-decode-route.js';
