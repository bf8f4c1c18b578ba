// Control flow: If runs one of its two branch graphs on the values of the enclosing graphs (the lowering's decode
// route, decode-route.ts in @attnopt/passes, and exporters' own Ifs).

import type { Graph, Node } from '@attnopt/ir';
import type { OpTable } from '../kernel.js';

function branchOf(node: Node, name: string): Graph | undefined {
  const a = node.attrs.get(name);
  return a?.type === 'graph' ? a.value : undefined;
}

export const CONTROL_OPS: OpTable = {
  '::If': {
    minInputs: 1,
    subgraphs: true,
    check: (node) => {
      const missing = ['then_branch', 'else_branch'].filter((b) => branchOf(node, b) === undefined);
      return missing.length > 0 ? `no graph attribute ${missing.join(', ')}` : undefined;
    },
    async run(ctx) {
      const cond = ctx.inputs[0]!;
      if (cond.data.length !== 1) throw new Error(`the condition holds ${cond.data.length} elements, not 1`);
      const branch = branchOf(ctx.node, cond.data[0] ? 'then_branch' : 'else_branch')!;
      if (!ctx.runSubgraph) throw new Error('no enclosing run to take the branch values from');
      const outs = await ctx.runSubgraph(branch);
      if (outs.length !== ctx.node.outputs.length) throw new Error(`branch "${branch.name}" gives ${outs.length} outputs, the node has ${ctx.node.outputs.length}`);
      return outs;
    },
  },
};
