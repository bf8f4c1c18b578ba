// Undoing mask proofs (mask-analysis/undo.ts): a site whose proven mask buys nothing gets its bias back with the
// nodes that built it, even when another site's proof removed them (a mask shared by every layer), and can then
// go back to the ONNX nodes it was lifted from while the other sites stay lowered. Checked in onnxruntime against
// the model as written, for each site alone, and for all of them (then the graph has the original's nodes).

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isAttention, type Node } from '@attnopt/ir';
import { decodeModel, exportOnnx, importOnnx } from '@attnopt/onnx';
import { rewritePass } from '@attnopt/rewrite';
import { describe, expect, test } from 'vitest';
import { analyzeMaskPass, maskProven, undoMaskProofs } from '../src/mask-analysis/index.js';
import { lowerAttentionPass } from '../src/lower/index.js';
import { RECOGNITION_RULES } from '../src/recognize/index.js';
import { unliftSite } from '../src/recognize/unlift.js';
import { compareOutputs, randomInputs, runModel } from './helpers/ort.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const OWN = path.resolve(here, '../../../tools/fixtures/whole-models');
const MODELS = [
  { file: 'llama-past.onnx', opset: 17 },
  { file: 'gpt2.onnx', opset: 14 },
];

function analyzed(file: string) {
  const model = importOnnx(file);
  rewritePass('recognize', RECOGNITION_RULES).run(model.graph);
  analyzeMaskPass().run(model.graph);
  const sites = [...model.graph.nodes].filter(isAttention);
  return { model, sites };
}

const nodeNames = (bytes: Uint8Array) => (decodeModel(bytes).graph?.node ?? []).map((n) => `${n.opType}:${n.name ?? ''}`);

describe.each(MODELS)('$file', ({ file, opset }) => {
  const full = path.join(OWN, file);
  test('every site was proven (the premise of the test)', () => {
    const { sites } = analyzed(full);
    expect(sites.length).toBeGreaterThanOrEqual(2);
    for (const s of sites) expect(maskProven(s), s.describe()).toBe(true);
  });

  test.each([0, 1])('site %i undone and restored, the others lowered: same outputs as the model as written', async (k) => {
    const { model, sites } = analyzed(full);
    const site = sites[k] as Node;
    expect(undoMaskProofs(model.graph, [site])).toEqual([site]);
    expect(maskProven(site)).toBe(false);
    expect(unliftSite(site)).toBe(true);
    lowerAttentionPass({ opset }).run(model.graph);
    const feeds = randomInputs(importOnnx(full).graph, 3);
    const want = await runModel(full, feeds);
    const got = await runModel(exportOnnx(model), feeds);
    const cmp = compareOutputs(got, want, 1e-5, 1e-5);
    expect(cmp.mismatches, `max abs error ${cmp.maxAbsError}`).toEqual([]);
  });

  test('every site undone and restored: the nodes of the model as written', () => {
    const { model, sites } = analyzed(full);
    expect(undoMaskProofs(model.graph, sites)).toHaveLength(sites.length);
    for (const s of sites) expect(unliftSite(s)).toBe(true);
    // the same nodes; in the model's order where the mask nodes did not sit among the nodes a lift took
    // (GPT-2 slices its causal buffer between the scores' Div and the Softmax: there the order may differ)
    const [got, want] = [nodeNames(exportOnnx(model)), nodeNames(exportOnnx(importOnnx(full)))];
    expect([...got].sort()).toEqual([...want].sort());
    if (file === 'llama-past.onnx') expect(got).toEqual(want);
  });
});
