// Loading the model a command names, turning every failure into a bad-input error that names the file.

import { existsSync, statSync } from 'node:fs';
import { type AttnoptModel, loadModel } from '@attnopt/core';
import { CliError, ExitCode } from './exit-codes.js';

export function loadModelOrFail(path: string): AttnoptModel {
  if (!existsSync(path)) throw new CliError(`${path}: no such file`, ExitCode.badInput);
  if (statSync(path).isDirectory()) throw new CliError(`${path}: is a folder, not an ONNX model file`, ExitCode.badInput);
  try {
    return loadModel(path);
  } catch (e) {
    const message = (e as Error).message;
    // the bridge's errors already start with the file; add it where one does not
    throw new CliError(message.includes(path) ? message : `${path}: ${message}`, ExitCode.badInput);
  }
}
