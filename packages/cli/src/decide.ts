// The shared first half of optimize, explain, codegen and inspect --decisions: calibration inputs, then
// recognize, prove masks and choose forms (core's decide: the compile pipeline through sparsify), with failures
// mapped to exit codes.

import { type AttnoptModel, type CalibrationSample, DECIDE_STAGES as CORE_STAGES, type DecideOptions, type DecideResult, decide } from '@attnopt/core';
import { CliError, ExitCode } from './exit-codes.js';
import { budgetAllowsApproximation, budgetOptions, checkSeqLen, type DecisionFlags } from './options.js';
import type { Progress } from './progress.js';
import { failedOn } from './failure.js';
import { checkRunMemory } from './memory.js';
import { samplesFor } from './samples.js';

/** The command's own first stage, then the labels of decide's passes (for the progress bar). */
export const DECIDE_STAGES = ['calibration inputs', ...CORE_STAGES] as const;

/** What core's decide and optimize are asked, from the command's flags. */
export function coreOptions(flags: DecisionFlags, samples: Iterable<CalibrationSample>, target: string): DecideOptions {
  return {
    ...budgetOptions(flags),
    samples,
    samplesFrom: flags.calibration ? 'user' : 'generated',
    allowStatistical: flags.allowStatistical === true,
    seqLen: flags.seqLen,
    seed: flags.seed,
    target,
    runtime: flags.runtime,
    ...(flags.verifyEach === true ? { verifyEach: true } : {}),
    ...(flags.measure === false ? { measure: false } : {}),
    ...(flags.decodeSteps !== undefined ? { decodeSteps: flags.decodeSteps } : {}),
  };
}

export async function decideOrFail(model: AttnoptModel, modelPath: string, flags: DecisionFlags, target: string, progress: Progress): Promise<DecideResult> {
  if (budgetAllowsApproximation(flags) && flags.calibration === undefined) checkRunMemory(model, modelPath, flags.seqLen, flags.allowMemory);
  checkSeqLen(flags.seqLen);
  progress.stage('calibration inputs');
  const samples = budgetAllowsApproximation(flags) ? samplesFor(model, flags.calibration, flags.seqLen, flags.seed, 2, flags.dim) : [];
  try {
    return await decide(model, { ...coreOptions(flags, samples, target), onStage: (s) => progress.stage(s), onProgress: (d) => progress.detail(d) });
  } catch (e) {
    throw failedOn(modelPath, e, flags.calibration === undefined ? { generated: true, seqLen: flags.seqLen } : { generated: false });
  }
}

/** A model with no attention site gives a command that rewrites or compiles sites nothing to do: bad input. */
export function requireSites(count: number, modelPath: string, what: string): void {
  if (count === 0) {
    throw new CliError(`${modelPath}: no attention site found: nothing to ${what} (attnopt inspect lists what was recognized)`, ExitCode.badInput);
  }
}
