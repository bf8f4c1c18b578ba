// Writing a folder of generated files atomically: everything goes to a temporary sibling folder that is renamed
// into place at the end, so a failure leaves no folder (or the previous one) behind, never a partial one.

import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CliError, ExitCode } from './exit-codes.js';

/** The file that marks a folder as attnopt's output (it may be replaced). */
export const MANIFEST = 'manifest.json';

/** Refuses a target that exists and is neither empty nor an earlier output of this command. */
export function checkOutputDir(dir: string): void {
  if (!existsSync(dir)) {
    if (!existsSync(dirname(dir))) throw new CliError(`${dir}: its parent folder does not exist`, ExitCode.badInput);
    return;
  }
  if (!statSync(dir).isDirectory()) throw new CliError(`${dir}: exists and is not a folder`, ExitCode.badInput);
  const entries = readdirSync(dir);
  if (entries.length > 0 && !entries.includes(MANIFEST)) {
    throw new CliError(`${dir}: exists and holds files attnopt did not write (no ${MANIFEST}); pick an empty or new folder`, ExitCode.badInput);
  }
}

/** Writes `files` (name -> contents) as the folder `dir`, replacing an earlier output there. */
export function writeDirAtomically(dir: string, files: ReadonlyMap<string, string | Uint8Array>): void {
  checkOutputDir(dir);
  const tmp = join(dirname(dir), `.${basename(dir)}.tmp-${process.pid}`);
  const old = join(dirname(dir), `.${basename(dir)}.old-${process.pid}`);
  try {
    mkdirSync(tmp);
    for (const [name, contents] of files) writeFileSync(join(tmp, name), contents);
    if (existsSync(dir)) renameSync(dir, old);
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    if (existsSync(old) && !existsSync(dir)) renameSync(old, dir);
    throw new CliError(`${dir}: could not write the kernels: ${(e as Error).message}`, ExitCode.badInput);
  }
  rmSync(old, { recursive: true, force: true });
}
