// One attention site alone, as a model of its own: a copy of the site's Attention node over graph inputs typed as
// its inputs are in the model (symbolic dims kept: a runtime would fold index arithmetic over concrete ones that it
// cannot fold in the model), the sparsify decision applied or not, lowered as the lower pass lowers it. What a runtime can time side by side: the site as written against its chosen form.
//   Attention(site inputs, spec S) in a model  ->  Model(in0..in6 -> lowered Attention(spec S or the chosen form))

import { attentionParams, Graph, Node, tensorType, Value } from '@attnopt/ir';
import { runPipeline } from '@attnopt/rewrite';
import { type LowerOptions, lowerAttentionPass } from '../lower/index.js';
import { inferDtype, inferShape } from '../shape-inference/shapes.js';
import type { SiteDecision } from './choose.js';
import { applyDecision } from './pass.js';

export type SiteVariantOptions = LowerOptions;

export interface SiteVariant {
  readonly graph: Graph;
  /** Per site input (by index), the graph input standing for it (`in<k>`); undefined where the site has none. */
  readonly inputs: readonly (Value | undefined)[];
}

/**
 * The site `site` alone, lowered: as written (`decision` undefined or kept) or with `decision` applied (its spec and
 * guard, or its head groups). Throws where the site does not lower (as the lower pass would).
 */
export function siteVariant(site: Node, decision: SiteDecision | undefined, options: SiteVariantOptions): SiteVariant {
  const params = attentionParams(site);
  const g = new Graph('site');
  const typed = (v: Value, k: number) => {
    const dtype = inferDtype(v);
    const shape = inferShape(v);
    return new Value(`in${k}`, dtype !== undefined ? tensorType(dtype, shape === undefined ? undefined : [...shape]) : v.type, v.initializer);
  };
  const inputs = site.inputs.map((v, k) => (v === undefined ? undefined : v.initializer ? g.addInitializer(typed(v, k)) : g.addInput(typed(v, k))));
  const copy = new Node({ domain: site.domain, op: site.op, name: 'site', inputs, outputs: site.outputs.map((v, k) => new Value(`out${k}`, v.type)), attrs: new Map(site.attrs) });
  g.addNode(copy);
  g.outputs.push(...copy.outputs);
  // named for no site in particular (the guard's flags take the decision's id): the same form at two sites gives
  // the same model
  if (decision !== undefined) applyDecision(copy, params, { ...decision, id: 'site' }, 'site');
  runPipeline(g, [lowerAttentionPass(options)]);
  return { graph: g, inputs };
}
