// @attnopt/rewrite: the toolkit every rule and lowering uses (match results, rules, constants, attribute
// readers, the node builder, graph edits) and the pass manager. Public API.

export * from './match-result.js';
export * from './rule.js';
export * from './constants.js';
export * from './attributes.js';
export * from './node-builder.js';
export * from './edit.js';
export * from './pass.js';
export * from './pass-manager.js';
export * from './rewrite-pass.js';
