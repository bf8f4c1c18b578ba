// The trained byte models of examples/trained (made by tools/train/*.py, never trained here) run in
// onnxruntime-node at n = 4096 on the committed held-out sample and score what PyTorch scored on the same bytes
// (recorded in <model>.json when the model was exported). Both sides compute in float32 with different kernels;
// the scores are means over thousands of positions of float64 log-softmax values computed here from the logits:
// |ort - torch| <= 1e-4 bits per byte (seen when written: 4e-8 and 1.3e-7, top-1 the same). Top-1 may differ
// by one near-tied masked position.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';

const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../examples/trained');
const N = 4096;
const VOCAB = 256;
const MASK_ID = 256;
const BITS_ATOL = 1e-4;

const sample = fs.readFileSync(path.join(DIR, 'heldout', 'stdlib-heldout.txt')).subarray(0, N);
const metrics = (model: string) => JSON.parse(fs.readFileSync(path.join(DIR, `${model}.json`), 'utf8')) as Record<string, unknown>;

async function logits(model: string, ids: readonly number[]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(path.join(DIR, `${model}.onnx`), { intraOpNumThreads: 2, graphOptimizationLevel: 'disabled' });
  try {
    const out = await session.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]) });
    const y = out['logits']!;
    expect(y.dims).toEqual([1, ids.length, VOCAB]);
    return y.data as Float32Array;
  } finally {
    await session.release();
  }
}

/** -log2 softmax(row)[target] of row t, in float64; and whether target is the row's argmax. */
function score(y: Float32Array, t: number, target: number): { bits: number; top1: boolean } {
  const row = y.subarray(t * VOCAB, (t + 1) * VOCAB);
  let max = -Infinity;
  let arg = 0;
  for (let c = 0; c < VOCAB; c++) {
    if (!Number.isFinite(row[c]!)) throw new Error(`logit [${t}, ${c}] is ${row[c]}`);
    if (row[c]! > max) [max, arg] = [row[c]!, c];
  }
  let z = 0;
  for (let c = 0; c < VOCAB; c++) z += Math.exp(row[c]! - max);
  return { bits: (Math.log(z) + max - row[target]!) / Math.LN2, top1: arg === target };
}

describe('trained models in onnxruntime at n = 4096, against PyTorch', () => {
  test('the held-out sample holds at least 4096 bytes', () => {
    expect(sample.length).toBe(N);
  });

  test('code-lm: held-out bits per byte as PyTorch measured them', async () => {
    const y = await logits('code-lm', [...sample]);
    let bits = 0;
    for (let t = 0; t < N - 1; t++) bits += score(y, t, sample[t + 1]!).bits;
    const torch = metrics('code-lm')['sample_bits_per_byte_n4096'] as number;
    expect(Math.abs(bits / (N - 1) - torch)).toBeLessThanOrEqual(BITS_ATOL);
  });

  test('byte-mlm: bits per masked byte and top-1 at the masked positions (i % 7 == 3) as PyTorch measured them', async () => {
    const masked = [...sample.keys()].filter((i) => i % 7 === 3);
    const y = await logits('byte-mlm', [...sample].map((b, i) => (i % 7 === 3 ? MASK_ID : b)));
    let bits = 0;
    let hits = 0;
    for (const t of masked) {
      const s = score(y, t, sample[t]!);
      bits += s.bits;
      hits += s.top1 ? 1 : 0;
    }
    const torch = metrics('byte-mlm')['sample_n4096'] as { bits_per_masked_byte: number; top1: number; masked: number };
    expect(masked.length).toBe(torch.masked);
    expect(Math.abs(bits / masked.length - torch.bits_per_masked_byte)).toBeLessThanOrEqual(BITS_ATOL);
    expect(Math.abs(hits - torch.top1 * masked.length)).toBeLessThanOrEqual(1 + 1e-9);
  });
});
