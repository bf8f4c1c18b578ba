// sparsifyPass on a graph: the chosen spec replaces the site's, the decision is recorded on the node and in
// the notes; a site without calibration data keeps its spec and says so. A dry run only reports its decisions;
// decisions given back (a rewrite turned down by keepAsWritten) are applied as they are.

import { attentionNode, attentionParams, type AttentionParams, causal, gaussian, Graph, printGraph, printSpec, tensorType, Value } from '@attnopt/ir';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { keepAsWritten, type SiteDecision, SPARSIFY_DECISION, sparsifyPass } from '../src/sparsify/index.js';

const N = 256;
const D = 16;
const params: AttentionParams = { numHeads: 1, kvNumHeads: 1, headDim: D, vHeadDim: D, scale: 1, softcap: 0, layout: 'bsd', spec: causal() };

function graph(sites: number): Graph {
  const g = new Graph('g');
  for (let s = 0; s < sites; s++) {
    const [q, k, v] = ['q', 'k', 'v'].map((x) => g.addInput(new Value(`${x}${s}`, tensorType('f32', [1, N, D]))));
    const y = new Value(`y${s}`, tensorType('f32', [1, N, D]));
    g.addNode(attentionNode(params, { q: q!, k: k!, v: v! }, { y }, `attn${s}`));
    g.outputs.push(y);
  }
  return g;
}

/** Strongly local: q_i = k_i = a (cos w i, sin w i, ...), scores peak at i = j. */
function localSample(seed: number) {
  const w = gaussian(3, D / 2).map((x) => x / 4);
  const v = gaussian(seed, N * D);
  const q = new Float64Array(N * D);
  for (let i = 0; i < N; i++) {
    for (let f = 0; f < D / 2; f++) {
      q[i * D + 2 * f] = Math.sqrt(30 / (D / 2)) * Math.cos(w[f]! * i);
      q[i * D + 2 * f + 1] = Math.sqrt(30 / (D / 2)) * Math.sin(w[f]! * i);
    }
  }
  const shape = [1, N, D];
  return { q: { shape, data: q }, k: { shape, data: q }, v: { shape, data: v } };
}

describe('sparsifyPass', () => {
  it('rewrites a calibrated site, records the decision, and keeps an uncalibrated one', () => {
    const g = graph(2);
    const result = runPipeline(g, [sparsifyPass({ calibration: [{ id: 'site0', samples: [localSample(1)] }], seed: 1, allowUncertified: true })]);
    expect(result.changed).toBe(true);
    const [a, b] = g.nodes;
    const decision = a!.annotations.get(SPARSIFY_DECISION) as SiteDecision;
    expect(decision.reasonDense).toBeUndefined();
    expect(printSpec(attentionParams(a!).spec)).toBe(decision.chosen);
    expect(decision.bound).toBeLessThanOrEqual(1e-2);
    expect(printSpec(attentionParams(b!).spec)).toBe('causal');
    expect(result.notes.map((n) => n.message).join('\n')).toMatch(/site1: kept: no calibration data/);
  });

  it('a dry run leaves the graph as it is; decisions given back are applied instead of choosing again', () => {
    const g = graph(1);
    const before = printGraph(g);
    const calibration = [{ id: 'site0', samples: [localSample(1)] }];
    const proposed: SiteDecision[] = [];
    const dry = runPipeline(g, [sparsifyPass({ calibration, seed: 1, allowUncertified: true, dryRun: true, onDecision: (d) => proposed.push(d) })]);
    expect(dry.changed).toBe(false);
    expect(printGraph(g)).toBe(before);
    expect(proposed).toHaveLength(1);
    expect(proposed[0]!.reasonDense).toBeUndefined();

    const kept = keepAsWritten(proposed[0]!, causal(), 'measured no faster');
    expect(kept).toMatchObject({ chosen: 'causal', exact: true, guarantee: 'exact', bound: 0, reasonDense: 'measured no faster' });
    const applied = runPipeline(g, [sparsifyPass({ calibration, seed: 1, allowUncertified: true, decided: new Map([['site0', kept]]) })]);
    expect(applied.changed).toBe(false);
    expect(printSpec(attentionParams(g.nodes[0]!).spec)).toBe('causal');
    expect(g.nodes[0]!.annotations.get(SPARSIFY_DECISION)).toBe(kept);
    expect(applied.notes.map((n) => n.message).join('\n')).toMatch(/site0: kept causal: measured no faster/);

    const rewritten = runPipeline(g, [sparsifyPass({ calibration, seed: 1, allowUncertified: true, decided: new Map([['site0', proposed[0]!]]) })]);
    expect(rewritten.changed).toBe(true);
    expect(printSpec(attentionParams(g.nodes[0]!).spec)).toBe(proposed[0]!.chosen);
  });
});
