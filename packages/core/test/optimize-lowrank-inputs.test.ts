// Low-rank forms (Nystrom, Linformer, Performer) are defined for plain softmax(scale Q Kᵀ) V only. A site with a
// kvLength input (onnxruntime's GroupQueryAttention with seqlens_k: the tiny Qwen decoder) must never be given one:
// with the statistical tier allowed, at 256 tokens, the chooser once picked a Performer there and the lowering then
// refused the site, so `optimize` threw. It must choose among the forms the site can carry.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { decide, generateInputs, loadModel, optimize } from '../src/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const QWEN = path.resolve(here, '../../../../shared/fixtures/onnx/genai-models/test/models/hf-internal-testing/tiny-qwen35-cuda/1d392aee_decoder.onnx');

it('optimize gives no low-rank form to a site with a kvLength input, and says why in its decisions', async () => {
  const seqLen = 256;
  const samples = generateInputs(loadModel(QWEN), { seed: 0, seqLen });
  const r = await optimize(loadModel(QWEN), { maxError: 0.01, seqLen, samples, allowStatistical: true });
  for (const s of r.sites) expect(s.chosen, s.id).not.toMatch(/performer|linformer|nystrom/);
  // every low-rank form the chooser tried at such a site is refused: for that reason, or as not cheaper
  const d = await decide(loadModel(QWEN), { maxError: 0.01, seqLen, samples, allowStatistical: true });
  const lowRank = d.sites.flatMap((s) => s.decision?.tried ?? []).filter((t) => /performer|linformer|nystrom/.test(t.spec));
  const refused = lowRank.filter((t) => /is defined for plain softmax\(scale Q Kᵀ\) V only/.test(t.reason ?? ''));
  expect(refused.length).toBeGreaterThan(0);
  for (const t of lowRank) expect(t.accepted, t.spec).toBe(false);
  for (const t of lowRank) expect(t.reason, t.spec).toMatch(/is defined for plain softmax\(scale Q Kᵀ\) V only|^not cheaper/);
}, 120_000);
