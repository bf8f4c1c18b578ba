// The exact semantics of seeded and data-dependent specs: the draws and selection rules that every
// backend, pass and the reference reproduce (one copy, here).

export type { HeadQK } from './head.js';
export { performerW } from './performer-features.js';
export { linformerEF } from './linformer.js';
export { type DenseMatrix, type HeadQKV, thinSvd, pseudoInverse, pseudoInverseProduct, nystromLandmarkCount, segmentMeans, nystromOutput } from './nystrom.js';
export { lshRotations, lshHashes, lshChunks, lshRows } from './lsh.js';
export { headLeafResolver } from './head-resolver.js';
export { type KeyBlockStats, keyBlockStats, queryBlockScores, blockScores, topkSelect, topkBlockIndices, topkBlocksRows } from './topk.js';
