// @attnopt/rewrite: pattern matching, rewriting and the pass manager. Public API.

export * from './match-result.js';
export * from './pattern.js';
export * from './rule.js';
export * from './constants.js';
export * from './edit.js';
export * from './pass.js';
export * from './pass-manager.js';
export * from './rewrite-pass.js';
