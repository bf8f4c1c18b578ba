// Calibration or verification inputs: a folder the user names, or inputs generated from the model. Generated
// inputs are made when first read (a model with no attention site never needs them, and weights fed as inputs
// can be large), then kept for the next reader.

import { existsSync } from 'node:fs';
import { type AttnoptModel, type CalibrationSample, calibrationSet, generateInputs } from '@attnopt/core';
import { CliError, ExitCode } from './exit-codes.js';

export function samplesFor(
  model: AttnoptModel,
  path: string | undefined,
  seqLen: number,
  seed: number,
  count: number,
  dims?: Readonly<Record<string, number>>,
): Iterable<CalibrationSample> {
  if (path === undefined) {
    let made: CalibrationSample[] | undefined;
    return {
      [Symbol.iterator]: () => {
        try {
          made ??= generateInputs(model, { seqLen, seed, count, ...(dims ? { dims } : {}) });
        } catch (e) {
          throw new CliError((e as Error).message, ExitCode.badInput);
        }
        return made[Symbol.iterator]();
      },
    };
  }
  if (!existsSync(path)) throw new CliError(`${path}: no such file or folder`, ExitCode.badInput);
  try {
    return [...calibrationSet(path, model)];
  } catch (e) {
    throw new CliError((e as Error).message, ExitCode.badInput);
  }
}
