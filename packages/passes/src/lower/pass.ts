// The lowering pass: every attnopt::Attention node (subgraphs included) becomes standard ONNX ops.

import { type Graph, isAttention } from '@attnopt/ir';
import type { Pass, PassNote } from '@attnopt/rewrite';
import { cannotLower, decodeRouteQueries, type LowerOptions, lowerAttention, loweringPlan } from './attention.js';
import { nativeBandedBlocker } from './banded-native.js';
import { type HeadSplit, headSplitOf } from '../sparsify/split-heads.js';
import { lowerSplitWithDecodeRoute, splitDecodeRoute } from './split-decode-route.js';

export function lowerAttentionPass(options: LowerOptions = { opset: 21 }): Pass {
  const name = 'lower-attention';
  const runOn = (graph: Graph, notes: PassNote[]): boolean => {
    let changed = false;
    // a site split into head groups whose every group computes its function dense: one route around the whole split
    // (each split looked at once, from its first group)
    const splits = new Set<HeadSplit>();
    for (const node of [...graph.nodes]) {
      const split = isAttention(node) ? headSplitOf(node) : undefined;
      if (split === undefined || splits.has(split)) continue;
      splits.add(split);
      const route = splitDecodeRoute(graph, node, options);
      if (route === undefined) continue;
      const where = route.groups.map((g) => g.node.describe());
      lowerSplitWithDecodeRoute(graph, route, options);
      const own = route.own ? `the exporter's ${route.own.node.op} node` : 'its exact dense form';
      for (const w of where) {
        notes.push({ pass: name, node: w, message: `lowered to opset ${options.opset} ONNX ops inside its site's decode route: calls with fewer than ${route.queries} new queries (decode steps) run the whole site as ${own} (If), not its head groups` });
      }
      changed = true;
    }
    for (const node of [...graph.nodes]) {
      for (const g of node.subgraphs()) changed = runOn(g, notes) || changed;
      if (!isAttention(node)) continue;
      const where = node.describe();
      const native = options.native && cannotLower(node, options) === undefined ? nativeBandedBlocker(node, options, loweringPlan(node, options)) : undefined;
      const route = cannotLower(node, options) === undefined ? decodeRouteQueries(node, options) : undefined;
      lowerAttention(graph, node, options);
      const how = !options.native ? '' : native === undefined ? ` (banded, onnxruntime form: one Attention per batch of blocks)` : ` (onnxruntime form not used: ${native})`;
      const decode = route === undefined ? '' : `; calls with fewer than ${route} new queries (decode steps) take the exact dense form (If)`;
      notes.push({ pass: name, node: where, message: `lowered to opset ${options.opset} ONNX ops${how}${decode}` });
      changed = true;
    }
    return changed;
  };
  return {
    name,
    run(graph) {
      const notes: PassNote[] = [];
      return { changed: runOn(graph, notes), notes };
    },
  };
}
