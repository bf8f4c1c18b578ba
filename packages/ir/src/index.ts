// @attnopt/ir: the attention IR. Public API of the package: import from here only.

export * from './dtype.js';
export * from './shape.js';
export * from './float16.js';
export * from './tensor.js';
export * from './types.js';
export * from './attributes.js';
export * from './graph.js';
export * from './attention.js';
export * from './random.js';
export * from './softmax.js';
export * from './spec/spec.js';
export * as intervals from './spec/interval-set.js';
export type { IntervalSet } from './spec/interval-set.js';
export * from './spec/mask-query.js';
export * from './text/index.js';
export * from './verify/index.js';
export * from './spec/support.js';
export * from './spec/semantics/index.js';
export * from './spec/keep-expr.js';
export * from './spec/segments.js';
