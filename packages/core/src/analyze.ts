// analyze: recognize every attention site of a graph and prove, exactly, which keys each query sees from the
// model's own mask. Per site the facts a report or another compiler needs; nothing here is approximate.
//   Attention(Q, K, V, bias=M), M keeps exactly P(i, j)  ->  Attention(Q, K, V, spec=spec ∩ P)   (error 0)

import {
  AttentionInput,
  attentionParams,
  type AttentionSpec,
  type Graph,
  isDataDependent,
  isLowRank,
  keptPairs,
  type MaskSpec,
  type Node,
  printShape,
  printSpec,
} from '@attnopt/ir';
import { analyzeMaskPass, attentionSites, inferDtype, inferShape, siteOrigin } from '@attnopt/passes';
import { type PassNote, runPipeline } from '@attnopt/rewrite';
import { recognize } from './recognize.js';
import { pushAll } from './extremes.js';

export interface AnalyzeOptions {
  /** Also report the fraction of (query, key) pairs each site keeps at nq = nk = seqLen. */
  readonly seqLen?: number;
}

/** What the analysis proved about one site. */
export interface SiteFacts {
  /** `site<k>`, numbered in graph order (subgraphs after the node that holds them). */
  readonly id: string;
  /** The Attention node (its name, or its description when unnamed). */
  readonly node: string;
  /** The ONNX nodes the site was lifted from. */
  readonly onnxNodes: readonly string[];
  /** The recognition rule that lifted the site, when it was lifted from ONNX nodes. */
  readonly rule: string | null;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly vHeadDim: number;
  readonly scale: number;
  readonly softcap: number;
  readonly layout: string;
  /** Q, K and V shapes in IR text form (`[B, S, 64]`, `[*]` when unknown); K and V null for packed QKV. */
  readonly shapes: { readonly q: string; readonly k: string | null; readonly v: string | null };
  readonly dtype: string;
  /** The spec as recognized (what the op's attributes say), IR text form. */
  readonly recognized: string;
  /** The value feeding the bias or mask as recognized, or null. */
  readonly bias: string | null;
  /** The spec after the mask analysis: exactly the keys each query sees (a residual bias may mask further). */
  readonly spec: string;
  /** True when the analysis proved structure in the bias and moved it into the spec (an exact rewrite). */
  readonly proven: boolean;
  /** The bias still applied after the analysis (its data-dependent part), or null. */
  readonly residualBias: string | null;
  /** Fraction of (query, key) pairs the spec keeps at nq = nk = options.seqLen; null when not asked or data-dependent. */
  readonly keptFraction: number | null;
  /** What the analysis found or why it could not prove more, in words. */
  readonly notes: readonly string[];
}

export interface AnalyzeResult {
  readonly sites: readonly SiteFacts[];
  /** Every note of recognition and mask analysis (rules that did not match say why). */
  readonly notes: readonly PassNote[];
}

/** The shape of an input in IR text form, from its type or inferred from its producers. */
const shapeText = (node: Node, input: number): string | null => {
  const v = node.inputs[input];
  return v ? printShape(inferShape(v)) : null;
};

function keptFraction(spec: AttentionSpec, seqLen: number | undefined): number | null {
  if (seqLen === undefined || isLowRank(spec) || isDataDependent(spec)) return null;
  return keptPairs(spec as MaskSpec, { nq: seqLen, nk: seqLen }) / (seqLen * seqLen);
}

/**
 * Recognizes the attention sites of `graph` and rewrites each one's mask into its spec where that is exact
 * (the graph is changed in place: Attention nodes replace the subgraphs they were lifted from). Returns per
 * site what was recognized and what was proven.
 */
export function analyze(graph: Graph, options: AnalyzeOptions = {}): AnalyzeResult {
  if (options.seqLen !== undefined && !(Number.isSafeInteger(options.seqLen) && options.seqLen >= 1)) {
    throw new Error(`analyze: seqLen must be an integer >= 1, got ${options.seqLen}`);
  }
  const notes: PassNote[] = [...recognize(graph).notes];
  const before = new Map<Node, { spec: string; bias: string | null }>(
    attentionSites(graph).map(({ node }) => [
      node,
      { spec: printSpec(attentionParams(node).spec), bias: node.inputs[AttentionInput.bias]?.name ?? null },
    ]),
  );
  const descriptions = new Map([...before.keys()].map((node) => [node, node.describe()]));
  const analysis = runPipeline(graph, [analyzeMaskPass()], { verify: false }).notes;
  pushAll(notes, analysis);

  const sites = attentionSites(graph).map(({ id, node }): SiteFacts => {
    const p = attentionParams(node);
    const spec = printSpec(p.spec);
    const recognized = before.get(node) ?? { spec, bias: null };
    const residualBias = node.inputs[AttentionInput.bias]?.name ?? null;
    const where = descriptions.get(node) ?? node.describe();
    const origin = siteOrigin(node);
    const q = node.inputs[AttentionInput.q];
    return {
      id,
      node: node.name || node.describe(),
      onnxNodes: origin?.onnxNodes ?? [node.name || node.describe()],
      rule: origin?.rule ?? null,
      heads: p.numHeads,
      kvHeads: p.kvNumHeads,
      headDim: p.headDim,
      vHeadDim: p.vHeadDim,
      scale: p.scale,
      softcap: p.softcap,
      layout: p.layout,
      shapes: { q: shapeText(node, AttentionInput.q)!, k: shapeText(node, AttentionInput.k), v: shapeText(node, AttentionInput.v) },
      dtype: inferDtype(q) ?? '?',
      recognized: recognized.spec,
      bias: recognized.bias,
      spec,
      proven: spec !== recognized.spec || residualBias !== recognized.bias,
      residualBias,
      keptFraction: keptFraction(p.spec, options.seqLen),
      notes: analysis.filter((n) => n.node === where).map((n) => n.message),
    };
  });
  return { sites, notes };
}
