// @attnopt/properties: arbitraries and properties of attention, for attnopt and for other compilers.

export * from './arbitraries/spec.js';
export * from './arbitraries/attention-inputs.js';
export * from './arbitraries/adversarial-heads.js';
export * from './arbitraries/graph.js';
export * from './bounds/row-problem.js';
export * from './bounds/mask-properties.js';
export * from './bounds/statistical.js';
export * from './bounds/guarded-properties.js';
export * from './kernel-check.js';
export * from './bounds/lsh-guarded-properties.js';
