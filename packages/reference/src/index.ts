// @attnopt/reference: float64 semantics of every AttentionSpec, the oracle for all tests. Public API.

export * from './tensor.js';
export * from './compare.js';
export { softmaxRow, droppedMass } from './softmax.js';
export { type BiasLookup, biasLookup } from './bias.js';
export { type HeadsView, headsView, outputFromBhsd, fromBhsd, packQkv, withHeadDims } from './layout.js';
export {
  type ReferenceInputs,
  type ReferenceOutputs,
  type ReferenceOptions,
  referenceAttention,
  scoresAt,
} from './attention.js';
export {
  type HeadQK,
  dataLeafResolver,
  blockScores,
  topkBlockIndices,
  topkBlocksResolver,
  topkBlocksRows,
  lshHashes,
  lshResolver,
  lshRotations,
  lshRows,
} from './resolvers/index.js';
export { type Matrix, matrix, matmul, matmulTransposed, transposeMatrix, svd, pinv, pinvProduct, softmaxRows } from './linalg.js';
export { nystromAttention, segmentMeans } from './low-rank/nystrom.js';
export { linformerAttention, linformerProjections } from './low-rank/linformer.js';
export { performerAttention, performerFeatures, performerProjection } from './low-rank/performer.js';
