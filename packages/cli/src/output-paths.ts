// Output paths, checked before any work: every file a command will write must be new or a regular file
// (never a device, a folder, a FIFO or a symbolic link), in a folder that exists, and no two of the files it
// reads and writes may be the same file (compared by real path: `a/../b`, a linked folder, the model's own
// side file all count). What this refuses would otherwise be destroyed or left half written.

import { lstatSync, realpathSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CliError, ExitCode } from './exit-codes.js';

/** A file a command writes, and how the user named it (for messages). */
export interface OutputFile {
  readonly path: string;
  /** e.g. `-o`, `--report`, `the side file of -o`. */
  readonly role: string;
}

/** A file a command reads (the model, its external data), and what it is. */
export interface InputFile {
  readonly path: string;
  readonly role: string;
}

/** What a path is when it is not a regular file, in words. */
export function kindOf(stat: Stats): string {
  if (stat.isSymbolicLink()) return 'a symbolic link';
  if (stat.isDirectory()) return 'a folder';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isSocket()) return 'a socket';
  return 'a regular file';
}

const lstatOrUndefined = (path: string): Stats | undefined => {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
};

/** Where writing `path` lands: the real path of its folder joined with its name. */
function landing(path: string, role: string): string {
  const folder = dirname(resolve(path));
  let real: string;
  try {
    real = realpathSync(folder);
  } catch {
    throw new CliError(`${path}: the folder ${dirname(path)} does not exist (${role})`, ExitCode.badInput);
  }
  if (!statSync(real).isDirectory()) throw new CliError(`${path}: ${dirname(path)} is not a folder (${role})`, ExitCode.badInput);
  return join(real, basename(resolve(path)));
}

/** The real path of an input file (it exists: the model was read from it). */
const realInput = (path: string): string => {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
};

/**
 * Refuses, before any work, an output that exists and is not a regular file (exit 2), whose folder does not
 * exist (exit 2), or that is the same file as an input or another output (exit 1: the paths named clash).
 */
export function checkOutputFiles(outputs: readonly OutputFile[], inputs: readonly InputFile[]): void {
  const taken = new Map<string, string>();
  for (const input of inputs) taken.set(realInput(input.path), input.role);
  for (const out of outputs) {
    const at = landing(out.path, out.role);
    const stat = lstatOrUndefined(at);
    if (stat !== undefined && !stat.isFile()) {
      throw new CliError(
        `${out.path}: exists and is ${kindOf(stat)} (${out.role}); attnopt replaces only regular files: name a new file or a regular one`,
        ExitCode.badInput,
      );
    }
    const clash = taken.get(at);
    if (clash !== undefined) {
      throw new CliError(`${out.path}: ${out.role} is the same file as ${clash}; name a different file`, ExitCode.usage);
    }
    taken.set(at, out.role);
  }
}

/** Refuses an output folder that holds one of the files the command reads (the model, its external data). */
export function checkNotInside(dir: string, inputs: readonly string[]): void {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch {
    return; // a new folder holds nothing
  }
  for (const input of inputs) {
    const at = realInput(input);
    if (dirname(at) === real || at.startsWith(`${real}/`)) {
      throw new CliError(`${dir}: holds ${input}, which this command reads; name another folder`, ExitCode.usage);
    }
  }
}

/** The side file writeModel may write beside OUT (weights that came from external data). */
export const sideFileOf = (output: string): string => `${output}.data`;
