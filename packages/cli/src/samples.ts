// Calibration or verification inputs: a folder the user names, or inputs generated from the model. Generated
// inputs are made when first read (a model with no attention site never needs them, and weights fed as inputs
// can be large), then kept for the next reader.
// Generated inputs of different purposes never coincide: sample k of a purpose uses seed + stream + k, with
// streams 2^20 apart (calibration, the report's held-out input, verify), so verify and the report never see
// the calibration inputs for the same --seed (and any sample count under 2^20).

/** Offsets added to --seed per purpose of generated inputs. */
export const SEED_STREAM = { calibration: 0, heldOut: 2 ** 20, verify: 2 ** 21 } as const;

/** Metadata key under which optimize records the calibration folder it read (its real path), if any. */
export const CALIBRATION_METADATA = 'attnopt.calibration';

/** Records in the model's metadata which calibration folder the choices were made on (none: generated inputs). */
export function recordCalibration(model: AttnoptModel, folder: string | undefined): void {
  const value = JSON.stringify(folder === undefined ? { generated: true } : { folder: realpathSync(folder) });
  const kept = (model.proto.metadataProps ?? []).filter((e) => e.key !== CALIBRATION_METADATA);
  model.proto.metadataProps = [...kept, { key: CALIBRATION_METADATA, value }];
}

/** A note when verify's --inputs is the folder the optimized model was calibrated on (its errors are then not held out). */
export function calibrationNote(optimized: AttnoptModel, inputs: string | undefined): string | undefined {
  if (inputs === undefined || !existsSync(inputs)) return undefined;
  const entry = optimized.proto.metadataProps?.find((e) => e.key === CALIBRATION_METADATA);
  let folder: unknown;
  try {
    folder = (JSON.parse(entry?.value ?? '{}') as { folder?: unknown }).folder;
  } catch {
    return undefined;
  }
  if (typeof folder !== 'string' || realpathSync(inputs) !== folder) return undefined;
  return `${inputs} is the folder the optimized model was calibrated on: the comparison is not held out (inputs it never saw may differ more)`;
}

import { existsSync, realpathSync } from 'node:fs';
import { type AttnoptModel, type CalibrationSample, calibrationSet, generateInputs, isPastDim } from '@attnopt/core';
import { CliError, ExitCode } from './exit-codes.js';

/**
 * `dims` with every past dim of the model's inputs (a named dim like past, not a total) sized 0: an empty KV
 * cache. Undefined when the model has no such dim or `dims` already sizes one (the user chose the cache).
 */
export function emptyCacheDims(model: AttnoptModel, dims: Readonly<Record<string, number>> | undefined): Record<string, number> | undefined {
  if (Object.keys(dims ?? {}).some(isPastDim)) return undefined;
  const names = new Set<string>();
  for (const v of model.graph.inputs) if (v.type?.kind === 'tensor') for (const d of v.type.shape ?? []) if (typeof d === 'string' && isPastDim(d)) names.add(d);
  return names.size === 0 ? undefined : { ...dims, ...Object.fromEntries([...names].map((n) => [n, 0])) };
}

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
