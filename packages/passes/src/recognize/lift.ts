// Lifting a matched attention subgraph into one attnopt::Attention node: the step every recognition
// rule ends with. The node remembers which rule found it and which ONNX nodes it replaced.

import {
  type AttentionInputs,
  attentionNode,
  type AttentionParams,
  type Graph,
  type Node,
  Value,
} from '@attnopt/ir';
import { replaceMatch } from '@attnopt/rewrite';

/** Annotation key on a lifted Attention node: where it came from (see SiteOrigin). */
export const SITE_ORIGIN = 'attnopt.site';

export interface SiteOrigin {
  /** The recognition rule that lifted the site (e.g. `onnx-attention`, `torch-sdpa`). */
  readonly rule: string;
  /** Names (or, for unnamed nodes, descriptions) of the ONNX nodes the site replaced, in graph order. */
  readonly onnxNodes: readonly string[];
}

export interface SiteMatch {
  readonly params: AttentionParams;
  readonly inputs: AttentionInputs;
  /** The value the site computes (Y); its uses move to the Attention node's output. */
  readonly output: Value;
  /** Values the site also computes, replaced by the Attention node's present K/V outputs. */
  readonly presentKey?: Value;
  readonly presentValue?: Value;
  /** Values replaced by the optional scores output. */
  readonly scores?: Value;
  /** Every node of the matched subgraph (nodes still used elsewhere are kept). */
  readonly matched: readonly Node[];
  /** New nodes computing the Attention inputs (reshapes, splits), placed before the Attention node. */
  readonly prelude?: readonly Node[];
  /**
   * New nodes placed right after the Attention node, turning its output back into the value the graph used
   * (e.g. [B, H, S, D] -> [B·H, S, D]). With a postlude the Attention node writes `attentionOutput`, and the
   * first output of the postlude's last node replaces `output`.
   */
  readonly postlude?: readonly Node[];
  readonly attentionOutput?: Value;
}

function twin(v: Value): Value {
  return new Value(v.name, v.type);
}

/** Replaces a matched site by an Attention node (after its prelude, before its postlude) and returns that node. */
export function liftSite(graph: Graph, rule: string, site: SiteMatch): Node {
  const order = new Map(graph.nodes.map((n, k) => [n, k]));
  const onnxNodes = [...site.matched]
    .sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0))
    .map((n) => n.name || n.describe());
  const postlude = site.postlude ?? [];
  const last = postlude.at(-1)?.outputs[0];
  if (postlude.length > 0 && (site.attentionOutput === undefined || last === undefined)) {
    throw new Error('liftSite: a postlude needs attentionOutput and a last node with an output');
  }
  const replaced: Value[] = [site.output];
  const fresh: Value[] = [last ?? twin(site.output)];
  const outs: { y: Value; presentKey?: Value; presentValue?: Value; scores?: Value } = { y: postlude.length > 0 ? site.attentionOutput! : fresh[0]! };
  for (const key of ['presentKey', 'presentValue', 'scores'] as const) {
    const old = site[key];
    if (old !== undefined) {
      const t = twin(old);
      replaced.push(old);
      fresh.push(t);
      outs[key] = t;
    }
  }
  // The old values keep their names until they are gone; the fresh ones take the names afterwards.
  fresh.forEach((v) => (v.name = `${v.name}__attnopt_pending`));
  const node = attentionNode(site.params, site.inputs, outs, onnxNodes.length === 1 ? onnxNodes[0]! : '');
  node.annotations.set(SITE_ORIGIN, { rule, onnxNodes } satisfies SiteOrigin);
  replaceMatch(graph, site.matched, replaced, fresh, [...(site.prelude ?? []), node, ...postlude]);
  fresh.forEach((v, k) => (v.name = replaced[k]!.name));
  return node;
}

/** Where a lifted Attention node came from, or undefined for nodes not made by recognition. */
export function siteOrigin(node: Node): SiteOrigin | undefined {
  return node.annotations.get(SITE_ORIGIN) as SiteOrigin | undefined;
}
