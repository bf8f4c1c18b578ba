// A graph written in plain ops, recognized to exactly one attnopt::Attention site, lowered back to standard ONNX
// and run in onnxruntime beside the graph as written on the same seeded inputs: the outputs must agree
// (compareLowered: fp32 |lowered - original| <= 1e-5). What the test asks of the site is read before lowering.
// refusalNotes: the reasons for a graph that must not lift.

import { type AttentionParams, assertValid, attentionParams, DEFAULT_OPSET_ANNOTATION, type Graph, isAttention, parseGraph } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { rewritePass } from '@attnopt/rewrite';
import { expect } from 'vitest';
import { lowerAttentionPass } from '../../src/lower/index.js';
import { RECOGNITION_RULES } from '../../src/recognize/index.js';
import { compareLowered, type InputSizes, randomInputs, runModel } from './ort.js';

export interface LiftedSite {
  readonly params: AttentionParams;
  /** The names of the site's inputs (q, k, v, bias, ...; undefined where absent). */
  readonly inputs: readonly (string | undefined)[];
  /** The ops left in the graph after recognition (and `after`). */
  readonly ops: ReadonlySet<string>;
}

export interface LiftOptions {
  readonly opset: number;
  readonly seed: number;
  readonly sizes: InputSizes;
  /** Runs after recognition (the mask analysis, say); its notes join the message when no single site is found. */
  readonly after?: (g: Graph) => readonly string[];
}

export async function liftedAndExact(text: string, o: LiftOptions): Promise<LiftedSite> {
  const original = exportOnnx(newOnnxModel(parseGraph(text), { opset: o.opset }));
  const g = parseGraph(text);
  const notes = rewritePass('recognize', RECOGNITION_RULES).run(g).notes.map((n) => `${n.node}: ${n.message}`);
  notes.push(...(o.after?.(g) ?? []));
  assertValid(g);
  const sites = g.nodes.filter(isAttention);
  expect(sites, notes.join('\n')).toHaveLength(1);
  const site: LiftedSite = { params: attentionParams(sites[0]!), inputs: sites[0]!.inputs.map((v) => v?.name), ops: new Set(g.nodes.map((n) => n.op)) };
  const feeds = randomInputs(g, o.seed, o.sizes);
  const want = await runModel(original, feeds);
  lowerAttentionPass({ opset: o.opset }).run(g);
  const cmp = compareLowered(await runModel(exportOnnx(newOnnxModel(g, { opset: o.opset })), feeds), want);
  expect(cmp.mismatches, `max abs error ${cmp.maxAbsError}`).toEqual([]);
  return site;
}

/** The recognizer's notes on a graph it must not lift (no attnopt::Attention after recognition), one per line. */
export function refusalNotes(text: string, opset = 17): string {
  const g = parseGraph(text);
  g.annotations.set(DEFAULT_OPSET_ANNOTATION, opset);
  const notes = rewritePass('recognize', RECOGNITION_RULES, { explain: true }).run(g).notes.map((n) => n.message);
  expect(g.nodes.filter(isAttention), notes.join('\n')).toHaveLength(0);
  return notes.join('\n');
}
