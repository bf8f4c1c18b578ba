// The metadata of a site split into head groups speaks of each group's own certificate: on the trained byte LM
// (examples/trained/code-lm.onnx, 4 causal sites with an ALiBi key bias) calibrated on held-out bytes at n = 1024,
// optimize splits the sites into guarded window groups and exact ones. Each guarded group's metadata entry gives
// the summaries and log Z_S its own guard takes and its own predicted fallback rate, as optimize reports the group
// (before, every group entry repeated the site's, which has no guard: the default texts and no rate); explain's line
// on each guarded group says the same.

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { type CalibrationSample, explain, GUARANTEES_METADATA, type GuaranteesMetadata, loadModel, optimize } from '../src/index.js';

const trained = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../examples/trained');
const N = 1024;
const text = readFileSync(join(trained, 'heldout', 'stdlib-heldout.txt'));
const samples: CalibrationSample[] = [0, N].map((at) => ({ input_ids: { dtype: 'i64', shape: [1, N], data: BigInt64Array.from(text.subarray(at, at + N), BigInt) } }));

test('each guarded head group: its own summaries, log Z_S and fallback rate in the metadata', async () => {
  const r = await optimize(loadModel(join(trained, 'code-lm.onnx')), { maxError: 1e-2, samples, seqLen: N });
  const meta = JSON.parse(r.model.proto.metadataProps!.find((e) => e.key === GUARANTEES_METADATA)!.value!) as GuaranteesMetadata;
  let guardedGroups = 0;
  for (const s of r.sites) {
    for (const [k, g] of (s.groups ?? []).entries()) {
      const entry = meta.sites[s.id]!.groups![`${s.id}.g${k}`]!;
      expect(entry.guarantee).toBe(g.guarantee);
      if (g.guarantee !== 'guarded') continue;
      guardedGroups++;
      expect(g.guard, `${s.id}.g${k}`).toBeDefined();
      expect(entry.guard!.blockSize).toBe(g.guard!.blockSize);
      expect(entry.guard!.summaries.includes('the ball left out')).toBe(g.guard!.summaries === 'box');
      expect(entry.guard!.logZ.startsWith('the largest kept logit')).toBe(g.guard!.logZ === 'max-logit');
      expect(entry.guard!.fallbackRate).toBe(g.fallbackRate);
      expect(g.fallbackRate).toBeGreaterThanOrEqual(0);
      expect(g.fallbackRate).toBeLessThanOrEqual(0.25);
    }
  }
  expect(guardedGroups).toBeGreaterThan(0);
  // explain's line on each guarded group says what its own certificate reads
  const e = await explain(loadModel(join(trained, 'code-lm.onnx')), { maxError: 1e-2, samples, seqLen: N });
  for (const s of r.sites) {
    for (const [k, g] of (s.groups ?? []).entries()) {
      if (g.guarantee !== 'guarded') continue;
      const line = e.sites.find((x) => x.id === s.id)!.why.find((w) => w.startsWith(`${s.id}.g${k}:`))!;
      expect(line).toMatch(g.guard!.summaries === 'box' ? /the key box per block alone/ : /the key box and ball per block/);
      expect(line).toMatch(g.guard!.logZ === 'max-logit' ? /log Z_S from the largest kept logit/ : /log Z_S the kept scores' log-sum-exp/);
    }
  }
}, 300_000);
