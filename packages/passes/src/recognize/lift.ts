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

/** Annotation key on a lifted Attention node: what the lift changed, so unliftSite can undo it (see LiftRecord). */
export const LIFT_RECORD = 'attnopt.liftRecord';

/**
 * Node annotation (set by the decomposed rule): the model fills masked scores with a value that does not absorb
 * them (Where(keep, s, -10000), -1e9, float16's -65504): where every score of a row is filled, the model's softmax
 * runs over those fills and the scores it kept, which the IR's keep-mask (a row that keeps nothing) does not say.
 * The mask analysis computes such rows as the model wrote them (unkept-rows.ts).
 */
export const FILL_REPLACES_SCORES = 'attnopt.fillReplacesScores';

/** What liftSite changed, in enough detail to put the original subgraph back (unlift.ts). */
export interface LiftRecord {
  /** The matched nodes in graph order, each with its inputs and the node right before it (null: the first node). */
  readonly matched: readonly { readonly node: Node; readonly inputs: readonly (Value | undefined)[]; readonly anchor: Node | null }[];
  /** The values the site computed and the fresh values that replaced them, pairwise. */
  readonly replaced: readonly Value[];
  readonly fresh: readonly Value[];
  /** The nodes the lift added: prelude, the Attention node, postlude. */
  readonly added: readonly Node[];
  /** The Attention node's inputs as lifted (a later rewrite of them makes the record stale). */
  readonly attentionInputs: readonly (Value | undefined)[];
}

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
  /** Values the site computes that prelude nodes compute now (e.g. a present K/V cache), each replaced by `by`. */
  readonly preludeOutputs?: readonly { readonly replaced: Value; readonly by: Value }[];
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
  const sorted = [...site.matched].sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0));
  const onnxNodes = sorted.map((n) => n.name || n.describe());
  const matched = sorted.map((n) => {
    const k = (order.get(n) ?? 0) - 1;
    return { node: n, inputs: [...n.inputs], anchor: k >= 0 ? graph.nodes[k]! : null };
  });
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
  for (const { replaced: old, by } of site.preludeOutputs ?? []) {
    replaced.push(old);
    fresh.push(by);
  }
  // The old values keep their names until they are gone; the fresh ones take the names afterwards.
  fresh.forEach((v) => (v.name = `${v.name}__attnopt_pending`));
  const node = attentionNode(site.params, site.inputs, outs, onnxNodes.length === 1 ? onnxNodes[0]! : '');
  node.annotations.set(SITE_ORIGIN, { rule, onnxNodes } satisfies SiteOrigin);
  const added = [...(site.prelude ?? []), node, ...postlude];
  replaceMatch(graph, site.matched, replaced, fresh, added);
  fresh.forEach((v, k) => (v.name = replaced[k]!.name));
  node.annotations.set(LIFT_RECORD, { matched, replaced, fresh, added, attentionInputs: [...node.inputs] } satisfies LiftRecord);
  return node;
}

/**
 * Records what a rule changed after liftSite returned `attention`: nodes it added after it, and values of the
 * site it redirected to new ones (fresh[k] replaces replaced[k] and has taken its name), so unliftSite undoes them too.
 */
export function extendLift(attention: Node, more: { added?: readonly Node[]; replaced?: readonly Value[]; fresh?: readonly Value[] }): void {
  const record = attention.annotations.get(LIFT_RECORD) as LiftRecord | undefined;
  if (record === undefined) throw new Error(`extendLift: ${attention.describe()} was not lifted by liftSite`);
  attention.annotations.set(LIFT_RECORD, {
    ...record,
    added: [...record.added, ...(more.added ?? [])],
    replaced: [...record.replaced, ...(more.replaced ?? [])],
    fresh: [...record.fresh, ...(more.fresh ?? [])],
  } satisfies LiftRecord);
}

/** Where a lifted Attention node came from, or undefined for nodes not made by recognition. */
export function siteOrigin(node: Node): SiteOrigin | undefined {
  return node.annotations.get(SITE_ORIGIN) as SiteOrigin | undefined;
}
