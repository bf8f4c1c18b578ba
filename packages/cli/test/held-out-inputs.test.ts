// verify and the report never reuse the calibration inputs: generated inputs of each purpose come from their
// own seed stream, and verify says so when the user hands it the folder the model was calibrated on.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, test } from 'vitest';
import { type CalibrationSample, encodeNpy, generateInputs, loadModel } from '@attnopt/core';
import { SEED_STREAM } from '../src/samples.js';
import { attnoptInProcess as attnopt } from './run-captured.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const tinyBert = resolve(here, '../../../examples/tiny-bert/model.onnx');
const scratch = mkdtempSync(join(tmpdir(), 'attnopt-held-out-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const SEQ = 24;

function writeSamples(dir: string, samples: readonly CalibrationSample[]): string {
  samples.forEach((sample, k) => {
    mkdirSync(join(dir, String(k)), { recursive: true });
    for (const [name, t] of Object.entries(sample)) writeFileSync(join(dir, String(k), `${name}.npy`), encodeNpy(t));
  });
  return dir;
}

test('generated inputs of calibration (2 samples), the report and verify never coincide for one --seed', () => {
  const model = loadModel(tinyBert);
  for (const seed of [0, 1, 7]) {
    const bytesOf = (s: CalibrationSample) => Object.values(s).map((t) => Buffer.from(encodeNpy(t)).toString('base64')).join();
    const made = [
      ...generateInputs(model, { seqLen: SEQ, seed: seed + SEED_STREAM.calibration, count: 2 }),
      ...generateInputs(model, { seqLen: SEQ, seed: seed + SEED_STREAM.heldOut, count: 1 }),
      ...generateInputs(model, { seqLen: SEQ, seed: seed + SEED_STREAM.verify, count: 1 }),
    ].map(bytesOf);
    expect(new Set(made).size).toBe(4);
  }
});

test('verify --inputs naming the calibration folder: a note says the comparison is not held out; another folder: none', async () => {
  const model = loadModel(tinyBert);
  const calibration = writeSamples(join(scratch, 'calibration'), generateInputs(model, { seqLen: SEQ, seed: 3, count: 2 }));
  const other = writeSamples(join(scratch, 'other'), generateInputs(model, { seqLen: SEQ, seed: 4, count: 1 }));
  const out = join(scratch, 'opt.onnx');
  const o = await attnopt('optimize', tinyBert, '-o', out, '--max-error', '0.05', '--calibration', calibration);
  expect(o.code).toBe(0);
  const same = await attnopt('verify', tinyBert, out, '--inputs', join(scratch, '.', 'calibration'));
  expect(same.stderr).toContain('is the folder the optimized model was calibrated on: the comparison is not held out');
  const held = await attnopt('verify', tinyBert, out, '--inputs', other);
  expect(held.stderr).not.toContain('calibrated on');
  for (const r of [same, held]) expect([0, 3]).toContain(r.code); // judged, not refused
});
