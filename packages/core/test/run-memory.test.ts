// runMemory: a closed-form estimate of a run's peak at a sequence length (no loop over n), and modelFiles: the
// files a model is read from.

import { realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { loadModel, modelFiles, runMemory } from '../src/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const tinyBert = path.resolve(here, '../../../examples/tiny-bert/model.onnx');
const causal = path.resolve(here, '../../../../shared/fixtures/onnx/torch-exports/mha_self_causal_op17_dyn.onnx');

describe('modelFiles', () => {
  test('the model file and the real path of its external data file', () => {
    expect(modelFiles(loadModel(tinyBert))).toEqual([tinyBert, realpathSync(`${tinyBert}.data`)]);
    expect(modelFiles(loadModel(causal))).toEqual([causal]);
  });
});

describe('runMemory', () => {
  const m = runMemory(loadModel(tinyBert));

  test('weights are the model files, sites as recognized', () => {
    expect(m.weightBytes).toBe(statSync(tinyBert).size + statSync(`${tinyBert}.data`).size);
    expect(m.sites.map((p) => p.numHeads)).toEqual([4, 4]);
  });

  test('quadratic in n: doubling n about quadruples the attention part', () => {
    const attention = (n: number) => m.at(n) - 2 * m.weightBytes;
    const ratio = attention(8192) / attention(4096);
    expect(ratio).toBeGreaterThan(3.9);
    expect(ratio).toBeLessThanOrEqual(4);
  });

  test('a length of 1e9 is judged at once', () => {
    const t0 = performance.now();
    expect(m.at(1e9)).toBeGreaterThan(1e18);
    expect(performance.now() - t0).toBeLessThan(50);
  });

  test('largestFitting: the largest n whose estimate fits, for several limits', () => {
    for (const limit of [2 ** 24, 2 ** 30, 17 * 2 ** 30]) {
      const n = m.largestFitting(limit, 1e9);
      expect(m.at(n)).toBeLessThanOrEqual(limit);
      expect(m.at(n + 1)).toBeGreaterThan(limit);
    }
    expect(m.largestFitting(1, 1e9)).toBe(0); // not even n = 1 fits one byte
    expect(m.largestFitting(2 ** 40, 100)).toBe(100); // the requested length fits
  });
});
