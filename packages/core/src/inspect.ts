// inspect: every attention site of a model, as `attnopt inspect` prints it and other tools read it.

import { AttentionInput, attentionParams, printSpec } from '@attnopt/ir';
import { attentionSites, siteOrigin } from '@attnopt/passes';
import { type AttentionMiss, noSitesReason, watchMisses } from './misses.js';
import { type AttnoptModel, modelOpset } from './model.js';
import { recognize } from './recognize.js';

export interface InspectSite {
  /** `site<k>`, numbered in graph order (subgraphs after the node that holds them). */
  readonly id: string;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly scale: number;
  /** The spec in IR text form: which keys each query sees (a bias input, if any, masks further). */
  readonly mask: string;
  /** The ONNX nodes the site was lifted from. */
  readonly onnxNodes: readonly string[];
  /** The value feeding the site's additive bias or boolean mask (kept as the model computes it), or null. */
  readonly bias: string | null;
}

export interface InspectReport {
  readonly model: string;
  readonly sites: readonly InspectSite[];
  /** Softmax nodes that look like attention but were not lifted, each with the recognizer's reason. */
  readonly misses: readonly AttentionMiss[];
  /** Why there is no site, in words, when there is none; else null. */
  readonly noSites: string | null;
}


/** Recognizes the attention sites of `model` (mutating its graph) and describes each, and what was missed. */
export function inspectModel(model: AttnoptModel): InspectReport {
  const watch = watchMisses(model.graph, modelOpset(model));
  const { notes } = recognize(model.graph);
  const misses = watch.misses(notes);
  const sites = attentionSites(model.graph).map(({ id, node }): InspectSite => {
    const p = attentionParams(node);
    return {
      id,
      heads: p.numHeads,
      kvHeads: p.kvNumHeads,
      headDim: p.headDim,
      scale: p.scale,
      mask: printSpec(p.spec),
      onnxNodes: siteOrigin(node)?.onnxNodes ?? [node.name || node.describe()],
      bias: node.inputs[AttentionInput.bias]?.name ?? null,
    };
  });
  return { model: model.file ?? '<bytes>', sites, misses, noSites: sites.length === 0 ? noSitesReason(watch, misses) : null };
}
