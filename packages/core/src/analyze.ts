// analyze: recognize every attention site of a graph and prove, exactly, which keys each query sees from the
// model's own mask (the first two passes of the compile pipeline, pipeline.ts). Per site the facts a report or
// another compiler needs; nothing here is approximate.
//   Attention(Q, K, V, bias=M), M keeps exactly P(i, j)  ->  Attention(Q, K, V, spec=spec ∩ P)   (error 0)

import type { Graph } from '@attnopt/ir';
import type { PassNote } from '@attnopt/rewrite';
import { runAnalysis } from './pipeline.js';
import { analysisState } from './pipeline/state.js';

export interface AnalyzeOptions {
  /** Also report the fraction of (query, key) pairs each site keeps at nq = nk = seqLen. */
  readonly seqLen?: number;
  /** Run the IR verifier before and after each pass (default: on where ATTNOPT_VERIFY_EACH=1). */
  readonly verifyEach?: boolean;
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
  /**
   * True when that bias is one query row ([.., 1, T]: a key bias, such as padding or ALiBi, the banded and guarded
   * forms gather per key), false when it varies along the query axis (n x n) or there is none.
   */
  readonly keyBias: boolean;
  /**
   * True when that bias is a relative-position bias (a function of j - i: T5's buckets, a symmetric ALiBi, a bias
   * folded at fixed lengths, with or without a key bias beside it), read by the banded and guarded forms on their
   * offsets; false otherwise.
   */
  readonly relativeBias: boolean;
  /**
   * With a proven spec and a key bias: what a row whose kept keys are all masked (a left-padded query) computes, in
   * the mask analysis's words (computed again with the whole bias, or why not); null where the site has no such row.
   */
  readonly unkeptRows: string | null;
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

/**
 * Recognizes the attention sites of `graph` and rewrites each one's mask into its spec where that is exact
 * (the graph is changed in place: Attention nodes replace the subgraphs they were lifted from). Returns per
 * site what was recognized and what was proven.
 */
export function analyze(graph: Graph, options: AnalyzeOptions = {}): AnalyzeResult {
  const state = analysisState(graph, options.seqLen);
  const { notes } = runAnalysis(state, options.verifyEach);
  return { sites: state.facts, notes };
}
