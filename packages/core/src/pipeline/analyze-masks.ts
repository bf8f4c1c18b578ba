// The mask analysis as a pipeline pass: prove, exactly, which keys each query sees from the model's own mask, and
// record per site what was recognized and what was proven (nothing here is approximate).
//   Attention(Q, K, V, bias=M), M keeps exactly P(i, j)  ->  Attention(Q, K, V, spec=spec ∩ P)   (error 0)

import { AttentionInput, attentionParams, type AttentionSpec, isDataDependent, isLowRank, keptPairs, type MaskSpec, type Node, printShape, printSpec } from '@attnopt/ir';
import { analyzeMaskPass, attentionSites, hasKeyBias, relativeBiasOf, inferDtype, inferShape, siteOrigin, UNKEPT_ROWS_NOTE } from '@attnopt/passes';
import type { PassNote, StatePass } from '@attnopt/rewrite';
import type { SiteFacts } from '../analyze.js';
import type { AnalysisState } from './state.js';

/** The shape of an input in IR text form, from its type or inferred from its producers. */
const shapeText = (node: Node, input: number): string | null => {
  const v = node.inputs[input];
  return v ? printShape(inferShape(v)) : null;
};

function keptFraction(spec: AttentionSpec, seqLen: number | undefined): number | null {
  if (seqLen === undefined || isLowRank(spec) || isDataDependent(spec)) return null;
  return keptPairs(spec as MaskSpec, { nq: seqLen, nk: seqLen }) / (seqLen * seqLen);
}

function siteFacts(id: string, node: Node, recognized: { spec: string; bias: string | null }, where: string, analysis: readonly PassNote[], seqLen: number | undefined): SiteFacts {
  const p = attentionParams(node);
  const spec = printSpec(p.spec);
  const residualBias = node.inputs[AttentionInput.bias]?.name ?? null;
  const origin = siteOrigin(node);
  const q = node.inputs[AttentionInput.q];
  const notes = analysis.filter((n) => n.node === where).map((n) => n.message);
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
    keyBias: residualBias !== null && hasKeyBias(node),
    relativeBias: residualBias !== null && relativeBiasOf(node) !== undefined,
    keptFraction: keptFraction(p.spec, seqLen),
    notes,
    unkeptRows: notes.find((n) => n.startsWith(UNKEPT_ROWS_NOTE)) ?? null,
  };
}

export const analyzeMasks: StatePass<AnalysisState> = {
  name: 'analyze masks',
  label: 'recognize and analyze masks',
  run(state) {
    const before = new Map<Node, { spec: string; bias: string | null }>(
      attentionSites(state.graph).map(({ node }) => [node, { spec: printSpec(attentionParams(node).spec), bias: node.inputs[AttentionInput.bias]?.name ?? null }]),
    );
    const descriptions = new Map([...before.keys()].map((node) => [node, node.describe()]));
    const result = analyzeMaskPass().run(state.graph);
    state.sites = attentionSites(state.graph);
    state.facts = state.sites.map(({ id, node }) => {
      const recognized = before.get(node) ?? { spec: printSpec(attentionParams(node).spec), bias: null };
      return siteFacts(id, node, recognized, descriptions.get(node) ?? node.describe(), result.notes, state.seqLen);
    });
    return result;
  },
};
