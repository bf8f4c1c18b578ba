// Lowering as a pipeline pass: every Attention node left to standard ONNX ops, so any runtime runs the result
// (at opset 23 and later, banded sites as ONNX Attention per batch of query blocks unless nativeAttention is off).
//   Attention(Q, K, V, spec)  ->  MatMul / Softmax / ... over the keys the spec keeps

import { isAttention } from '@attnopt/ir';
import { cannotLower, decodeRouteQueries, type HeadSplit, headSplitOf, type LowerOptions, lowerAttentionPass, NATIVE_ATTENTION_OPSET, splitDecodeRoute } from '@attnopt/passes';
import type { StatePass } from '@attnopt/rewrite';
import type { CompileState } from './state.js';

/** How the sites are lowered: the state's opset; banded sites as ONNX Attention from NATIVE_ATTENTION_OPSET unless off. */
export function lowerOptions(state: CompileState): LowerOptions {
  const native = (state.options.nativeAttention ?? true) && state.opset >= NATIVE_ATTENTION_OPSET;
  return { opset: state.opset, ...(native ? { native: 'onnxruntime' as const } : {}) };
}

export const lower: StatePass<CompileState> = {
  name: 'lower',
  label: 'lower',
  run(state) {
    const options = lowerOptions(state);
    // which sites take the decode route, recorded before the lowering replaces their nodes (the metadata says so): a
    // site or head group its own, and a site split into head groups the route around the whole split (its node as
    // it was before the split)
    const splits = new Set<HeadSplit>();
    for (const node of state.graph.allNodes()) {
      if (!isAttention(node) || cannotLower(node, options) !== undefined) continue;
      const queries = decodeRouteQueries(node, options);
      if (queries !== undefined) state.decodeRoutes.set(node, queries);
      const split = headSplitOf(node);
      if (split === undefined || splits.has(split) || node.graph === undefined) continue;
      splits.add(split);
      const route = splitDecodeRoute(node.graph, node, options);
      if (route !== undefined) state.decodeRoutes.set(split.site, route.queries);
    }
    return lowerAttentionPass(options).run(state.graph);
  },
};
