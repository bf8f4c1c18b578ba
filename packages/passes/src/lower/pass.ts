// The lowering pass: every attnopt::Attention node (subgraphs included) becomes standard ONNX ops.

import { type Graph, isAttention } from '@attnopt/ir';
import type { Pass, PassNote } from '@attnopt/rewrite';
import { type LowerOptions, lowerAttention } from './attention.js';

export function lowerAttentionPass(options: LowerOptions = { opset: 21 }): Pass {
  const name = 'lower-attention';
  const runOn = (graph: Graph, notes: PassNote[]): boolean => {
    let changed = false;
    for (const node of [...graph.nodes]) {
      for (const g of node.subgraphs()) changed = runOn(g, notes) || changed;
      if (!isAttention(node)) continue;
      const where = node.describe();
      lowerAttention(graph, node, options);
      notes.push({ pass: name, node: where, message: `lowered to opset ${options.opset} ONNX ops` });
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
