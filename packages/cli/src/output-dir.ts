// Writing a folder of generated files atomically: everything goes to a temporary sibling folder that is renamed
// into place at the end, so a failure leaves no folder (or the previous one) behind, never a partial one.
// A folder that exists is replaced only when attnopt owns it: it holds a manifest attnopt wrote (naming
// attnopt as its generator and listing its files) and nothing else but those files. Only those files are
// deleted.

import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CliError, ExitCode } from './exit-codes.js';
import { kindOf } from './output-paths.js';

/** The file that marks a folder as attnopt's output (it may be replaced). */
export const MANIFEST = 'manifest.json';

/** What the manifest says of itself: attnopt wrote it, and these are the files it wrote beside it. */
export const GENERATOR = 'attnopt';

/** The files an owned folder's manifest lists, or undefined when the folder holds no manifest attnopt wrote. */
function ownedFiles(dir: string): string[] | undefined {
  let manifest: unknown;
  try {
    if (!lstatSync(join(dir, MANIFEST)).isFile()) return undefined;
    manifest = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8'));
  } catch {
    return undefined;
  }
  const m = manifest as { generator?: unknown; files?: unknown };
  if (m.generator !== GENERATOR || !Array.isArray(m.files)) return undefined;
  const files = m.files.filter((f): f is string => typeof f === 'string' && f !== '' && basename(f) === f && f !== '.' && f !== '..');
  return files.length === m.files.length ? files : undefined;
}

/**
 * Refuses a target that exists and is not a folder (or is a link to one), or is a folder holding anything but
 * an earlier output of this command (its manifest and the files it lists).
 */
export function checkOutputDir(dir: string): void {
  let stat;
  try {
    stat = lstatSync(dir);
  } catch {
    if (!existsSync(dirname(resolve(dir)))) throw new CliError(`${dir}: its parent folder does not exist`, ExitCode.badInput);
    return;
  }
  if (!stat.isDirectory()) throw new CliError(`${dir}: exists and is ${kindOf(stat)}, not a folder attnopt wrote`, ExitCode.badInput);
  const entries = readdirSync(dir);
  if (entries.length === 0) return;
  const owned = ownedFiles(dir);
  if (owned === undefined) {
    throw new CliError(
      `${dir}: exists and holds files attnopt did not write (no ${MANIFEST} naming attnopt as its generator); pick an empty or new folder`,
      ExitCode.badInput,
    );
  }
  const foreign = entries.filter((e) => e !== MANIFEST && !owned.includes(e));
  if (foreign.length > 0) {
    const shown = foreign.slice(0, 5).map((f) => JSON.stringify(f)).join(', ');
    throw new CliError(
      `${dir}: holds files its ${MANIFEST} does not list (${shown}${foreign.length > 5 ? `, ${foreign.length - 5} more` : ''}); attnopt replaces only a folder it wrote whole`,
      ExitCode.badInput,
    );
  }
}

/** Deletes an earlier output: the files its manifest lists, the manifest, then the folder (only if now empty). */
function removeOwned(dir: string): void {
  for (const f of ownedFiles(dir) ?? []) rmSync(join(dir, f), { force: true });
  rmSync(join(dir, MANIFEST), { force: true });
  try {
    rmdirSync(dir);
  } catch {
    // something appeared in it meanwhile: left where it is
  }
}

/** Writes `files` (name -> contents; they include the manifest) as the folder `dir`, replacing an earlier output there. */
export function writeDirAtomically(dir: string, files: ReadonlyMap<string, string | Uint8Array>): void {
  checkOutputDir(dir);
  const suffix = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const tmp = join(dirname(dir), `.${basename(dir)}.tmp-${suffix}`);
  const old = join(dirname(dir), `.${basename(dir)}.old-${suffix}`);
  let made = false;
  try {
    mkdirSync(tmp);
    made = true;
    for (const [name, contents] of files) writeFileSync(join(tmp, name), contents);
    if (existsSync(dir)) renameSync(dir, old);
    renameSync(tmp, dir);
  } catch (e) {
    if (made) rmSync(tmp, { recursive: true, force: true });
    if (existsSync(old) && !existsSync(dir)) renameSync(old, dir);
    throw new CliError(`${dir}: could not write the kernels: ${(e as Error).message}`, ExitCode.badInput);
  }
  if (existsSync(old)) removeOwned(old);
}
