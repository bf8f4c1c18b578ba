// One attention site alone, as a model of its own (scratch-site.ts: symbolic dims kept, since a runtime would fold
// index arithmetic over concrete ones that it cannot fold in the model), the sparsify decision applied or not,
// lowered as the lower pass lowers it: what a runtime can time side by side, the site as written against its
// chosen form.
//   Attention(site inputs, spec S) in a model  ->  Graph(in0..in6 -> lowered Attention(spec S or the chosen form))

import { attentionParams, type Graph, type Node } from '@attnopt/ir';
import { runPipeline } from '@attnopt/rewrite';
import { type LowerOptions, lowerAttentionPass } from '../lower/index.js';
import type { SiteDecision } from './choose.js';
import { applyDecision } from './pass.js';
import { scratchSite } from './scratch-site.js';

/**
 * The site `site` alone, lowered, its inputs `in<k>` by the site's input index: as written (`decision` undefined) or
 * with `decision` applied (its spec and guard, or its head groups). Throws where the site does not lower.
 */
export function siteVariant(site: Node, decision: SiteDecision | undefined, options: LowerOptions): Graph {
  const { graph, copy } = scratchSite(site, site.attrs);
  // named for no site in particular (the guard's flags take the decision's id): the same form at two sites gives
  // the same model
  if (decision !== undefined) applyDecision(copy, attentionParams(site), { ...decision, id: 'site' }, 'site');
  runPipeline(graph, [lowerAttentionPass(options)]);
  return graph;
}
