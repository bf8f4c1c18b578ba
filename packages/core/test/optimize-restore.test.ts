// optimize leaves a site nothing improved as the model wrote it: every site whose chosen spec is the one it
// was recognized with (no mask proven, no approximation), and every site whose only change is a proven mask
// that saves no work on the target (a causal mask, where onnxruntime computes every score anyway), goes back
// to its original ONNX nodes instead of a re-lowered copy. At maxError 0 on the torch exports and ort-generated models: every such site's ONNX nodes
// are in the output; when every site is such, the output is the original model field for field, plus the
// attnopt.certified metadata entry. With restoreUnchanged: false the same sites are lowered (the nodes differ).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeModel, diffMessages } from '@attnopt/onnx';
import { describe, expect, it } from 'vitest';
import { analyze, CERTIFIED_METADATA, saveModel, loadModel, optimize } from '../src/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const FIXTURES = path.resolve(here, '../../../../shared/fixtures/onnx');
const DIRS = ['torch-exports', 'ort-generated/models'];
const files = DIRS.flatMap((d) =>
  fs
    .readdirSync(path.join(FIXTURES, d))
    .filter((f) => f.endsWith('.onnx'))
    .map((f) => `${d}/${f}`),
).sort();

const nodeNames = (bytes: Uint8Array) => new Set((decodeModel(bytes).graph?.node ?? []).map((n) => n.name ?? ''));

describe('optimize(maxError 0) keeps unchanged sites as the ONNX nodes they were lifted from', () => {
  let restoredModels = 0;
  let identicalModels = 0;
  it.each(files)('%s', async (file) => {
    const full = path.join(FIXTURES, file);
    const model = loadModel(full);
    const result = await optimize(model, { maxError: 0 });
    const restored = result.sites.filter((s) => s.restored).map((s) => s.id);
    const out = saveModel(model);
    const names = nodeNames(out);
    for (const s of result.sites) expect(s.exact, `${file} ${s.id}`).toBe(true);
    if (restored.length > 0) restoredModels++;
    // the restored sites' ONNX nodes (named ones) are back
    const fresh = loadModel(full);
    const facts = analyze(fresh.graph).sites;
    for (const id of restored) {
      const f = facts.find((x) => x.id === id)!;
      const s = result.sites.find((x) => x.id === id)!;
      // unchanged, or only a proven mask that costs the target as much as the mask as written
      if (f.proven) expect({ chosen: s.chosen, saves: s.flopsAfter < s.flopsBefore }, `${file} ${id}`).toEqual({ chosen: f.spec, saves: false });
      for (const n of f.onnxNodes.filter((x) => !x.startsWith('node '))) expect(names.has(n), `${file} ${id}: ${n}`).toBe(true);
    }
    if (restored.length === result.sites.length && result.sites.length > 0) {
      const original = decodeModel(fs.readFileSync(full));
      const optimized = decodeModel(out);
      const certified = (optimized.metadataProps ?? []).filter((e) => e.key === CERTIFIED_METADATA);
      expect(certified).toHaveLength(1);
      expect((optimized.metadataProps ?? []).filter((e) => e.key === 'attnopt.guarantees')).toHaveLength(1);
      optimized.metadataProps = (optimized.metadataProps ?? []).filter((e) => e.key !== CERTIFIED_METADATA && e.key !== 'attnopt.guarantees');
      expect(diffMessages(original, optimized)).toBeUndefined();
      identicalModels++;
    }
  });

  it('restored sites in many models, and gave back whole models unchanged', () => {
    // counts measured when this test was written; a drop means sites stopped being restored
    console.log(`restored sites in ${restoredModels} models, ${identicalModels} models given back unchanged`);
    expect(restoredModels).toBeGreaterThanOrEqual(58);
    expect(identicalModels).toBeGreaterThanOrEqual(58);
  });
});

describe('restoreUnchanged: false lowers every site', () => {
  it('gives a different graph for a fused model whose site is unchanged', async () => {
    const file = path.join(FIXTURES, 'ort-generated/models/gpt2_embedlayer_one_attn.onnx');
    const kept = loadModel(file);
    await optimize(kept, { maxError: 0 });
    const lowered = loadModel(file);
    await optimize(lowered, { maxError: 0, restoreUnchanged: false });
    expect([...kept.graph.allNodes()].some((n) => n.domain === 'com.microsoft' && n.op === 'Attention')).toBe(true);
    expect([...lowered.graph.allNodes()].some((n) => n.domain === 'com.microsoft' && n.op === 'Attention')).toBe(false);
  });
});
