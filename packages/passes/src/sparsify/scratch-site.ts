// A scratch copy of an Attention site in a graph of its own: each input `in<k>` typed as the site's graph types it
// (dtype and shape inferred through its producers, symbolic dims kept; constants kept as initializers), each output
// `out<k>` a graph output, the node named `site` with the attributes given. What the emitted-node count and the
// site variants lower.
//   Attention(site inputs) in a model  ->  Graph(in0..in6 -> Attention(attrs) -> out0..)

import { type Attr, Graph, Node, tensorType, Value } from '@attnopt/ir';
import { inferDtype, inferShape } from '../shape-inference/shapes.js';

/** The scratch graph and its copy of the site (see the comment at the top). */
export function scratchSite(site: Node, attrs: ReadonlyMap<string, Attr>): { graph: Graph; copy: Node } {
  const graph = new Graph('site');
  const typed = (v: Value, k: number) => {
    const dtype = inferDtype(v);
    const shape = inferShape(v);
    return new Value(`in${k}`, dtype !== undefined ? tensorType(dtype, shape === undefined ? undefined : [...shape]) : v.type, v.initializer);
  };
  const inputs = site.inputs.map((v, k) => (v === undefined ? undefined : v.initializer ? graph.addInitializer(typed(v, k)) : graph.addInput(typed(v, k))));
  const copy = new Node({ domain: site.domain, op: site.op, name: 'site', inputs, outputs: site.outputs.map((v, k) => new Value(`out${k}`, v.type)), attrs });
  graph.addNode(copy);
  graph.outputs.push(...copy.outputs);
  return { graph, copy };
}
