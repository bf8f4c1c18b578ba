// The IR verifier: structural, scoping, bookkeeping and shape rules.

export { assertValid, GRAPH_RULES, NODE_RULES, verifyGraph } from './verify.js';
export type { GraphRule, NodeRule, Scope, VerifyIssue, VerifyRule } from './issue.js';
export { ONNX_SHAPE_CHECKS } from './onnx-shapes.js';
export { freeValues } from './structure.js';
export { DimUnifier } from './dims.js';
