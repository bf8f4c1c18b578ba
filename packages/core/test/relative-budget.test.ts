// --max-rel-error: on the trained byte LM (examples/trained/code-lm.onnx, 4 causal sites) with held-out bytes,
// each site's scale is the largest range of one V channel over the keys, computed here in float64 straight from
// the collected V tensors (any layout: a channel is every axis but the key axis); each site's absolute budget is
// maxRelError x that scale; and each site decides exactly as it does under that absolute budget.

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { attentionParams } from '@attnopt/ir';
import { type CalibrationSample, collectSiteTensors, decide, loadModel, recognize } from '../src/index.js';

const trained = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../examples/trained');
const modelPath = join(trained, 'code-lm.onnx');
const N = 64;
const REL = 0.05;
const text = readFileSync(join(trained, 'heldout', 'stdlib-heldout.txt'));
const samples: CalibrationSample[] = [0, N].map((at) => ({ input_ids: { dtype: 'i64', shape: [1, N], data: BigInt64Array.from(text.subarray(at, at + N), BigInt) } }));

/** max over channels of (max - min over the key axis) of a tensor whose key axis is `axis`. */
function largestChannelRange(shape: readonly number[], data: ArrayLike<number>, axis: number): number {
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const keys = shape[axis]!;
  let best = 0;
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < inner; c++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let j = 0; j < keys; j++) {
        const x = Number(data[(o * keys + j) * inner + c]);
        lo = Math.min(lo, x);
        hi = Math.max(hi, x);
      }
      best = Math.max(best, hi - lo);
    }
  }
  return best;
}

describe('decide with a budget relative to each site scale', () => {
  test('site budget = maxRelError x the largest V channel range on the calibration data, decided as that absolute budget', async () => {
    const model = loadModel(modelPath);
    const result = await decide(model, { maxRelError: REL, samples, seqLen: N });
    expect(result.sites.length).toBe(4);
    const lifted = loadModel(modelPath);
    recognize(lifted.graph);
    const collected = await collectSiteTensors(lifted, samples);
    for (const site of result.sites) {
      const layout = attentionParams(site.node).layout;
      expect(layout).not.toBe('packed-qkv');
      const keyAxis = layout === 'bhsd' ? 2 : 1;
      const own = collected.find((c) => c.id === site.id)!;
      const scale = own.samples.reduce((m, s) => Math.max(m, largestChannelRange(s.v!.shape, s.v!.data as ArrayLike<number>, keyAxis)), 0);
      expect(scale).toBeGreaterThan(0);
      // float64 on both sides, from the same float32 tensors: equal up to summation-free rounding (none here)
      expect(result.relative!.scales[site.id]).toBe(scale);
      expect(result.relative!.budgets[site.id]).toBe(REL * scale);
      expect(site.decision!.budget).toBe(REL * scale);
    }
    expect(result.budget).toBe(Math.max(...Object.values(result.relative!.budgets)));
    // the same choices as the absolute budget of each site, one site at a time
    for (const site of result.sites) {
      const absolute = await decide(loadModel(modelPath), { maxError: result.relative!.budgets[site.id]!, samples, seqLen: N });
      const same = absolute.sites.find((s) => s.id === site.id)!;
      expect(site.chosen).toBe(same.chosen);
      expect(site.decision!.tried.map((t) => t.bound)).toEqual(same.decision!.tried.map((t) => t.bound));
    }
  });

  test('maxError and maxRelError together are refused', async () => {
    await expect(decide(loadModel(modelPath), { maxError: 0.01, maxRelError: 0.01, samples, seqLen: N })).rejects.toThrow(/not both/);
  });
});
