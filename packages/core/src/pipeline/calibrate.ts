// Calibration as a pipeline pass: run the model on calibration inputs (the user's, or generated from its input
// types) and collect Q, K, V (and bias) of every site, as sparsify reads them. Only with a budget above 0.

import type { StatePass } from '@attnopt/rewrite';
import { collectSiteTensors, generateInputs } from '../calibrate/index.js';
import { CALIBRATION_SAMPLES } from '../run-memory.js';
import { siteCalibration } from '../calibrate/site-calibration.js';
import { maxOf } from '../extremes.js';
import type { CompileState } from './state.js';

/** The key length of the first collected site sample (the calibration sequence length of user data), if any. */
function keyLength(collected: readonly { samples: readonly { k?: { shape: readonly number[] }; q: { shape: readonly number[] } }[] }[]): number | undefined {
  const s = collected.find((c) => c.samples.length > 0)?.samples[0];
  const t = s?.k ?? s?.q;
  return t && t.shape.length >= 3 ? t.shape[t.shape.length - 2] : undefined;
}

export const calibrate: StatePass<CompileState> = {
  name: 'calibrate',
  label: 'calibrate',
  applies: (state) => state.budget > 0 && state.sites.length > 0,
  async run(state) {
    const { model, options, seqLen } = state;
    const samples = options.samples ?? generateInputs(model, { seqLen, seed: state.seed, count: options.calibrationCount ?? CALIBRATION_SAMPLES });
    const collected = await collectSiteTensors(model, samples, { runtime: options.runtime ?? 'onnxruntime', outputs: false });
    const count = maxOf(collected.map((s) => s.samples.length), 0);
    state.provenance = { source: state.fromUser ? 'user' : 'generated', count, seqLen: state.fromUser ? (keyLength(collected) ?? seqLen) : seqLen };
    for (const s of collected) if (s.skipped !== undefined) state.uncollected.set(s.id, s.skipped);
    state.calibration = collected.filter((s) => s.samples.length > 0).map(siteCalibration);
    return { changed: false, notes: [] };
  },
};
