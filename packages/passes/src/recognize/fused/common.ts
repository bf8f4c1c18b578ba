// The node builder moved to @attnopt/rewrite; this re-export serves the guarded lowering until it imports it
// from there.

export { NodeBuilder } from '@attnopt/rewrite';
