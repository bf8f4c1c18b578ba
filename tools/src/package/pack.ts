// Installable tarballs of the public packages: @attnopt/core, @attnopt/cli and every @attnopt package they need at
// run time (their `dependencies`, followed transitively), packed by `npm pack` from the built dist/ folders.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The packages other projects install; everything they depend on at run time is packed with them. */
export const PUBLIC_ROOTS = ['@attnopt/core', '@attnopt/cli'] as const;

/** What `npm run build` writes that a package cannot ship without (default: dist/index.js). */
const BUILT: Readonly<Record<string, readonly string[]>> = { '@attnopt/cli': ['dist/index.js', 'dist/attnopt.js'] };

interface Manifest {
  readonly name: string;
  readonly version: string;
  readonly private?: boolean;
  readonly dependencies?: Readonly<Record<string, string>>;
}

export interface WorkspacePackage {
  readonly dir: string;
  readonly manifest: Manifest;
}

/** Every package under packages/, by name. */
export function workspacePackages(root: string): Map<string, WorkspacePackage> {
  const found = new Map<string, WorkspacePackage>();
  for (const entry of readdirSync(join(root, 'packages'), { withFileTypes: true })) {
    const file = join(root, 'packages', entry.name, 'package.json');
    if (!entry.isDirectory() || !existsSync(file)) continue;
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
    found.set(manifest.name, { dir: join(root, 'packages', entry.name), manifest });
  }
  return found;
}

/** The roots and the workspace packages they depend on at run time, sorted by name. */
export function runtimeClosure(packages: ReadonlyMap<string, WorkspacePackage>, roots: readonly string[] = PUBLIC_ROOTS): string[] {
  const seen = new Set<string>();
  const todo = [...roots];
  while (todo.length > 0) {
    const name = todo.pop()!;
    if (seen.has(name)) continue;
    const pkg = packages.get(name);
    if (pkg === undefined) throw new Error(`packages/*/package.json: no workspace package is named ${name}`);
    seen.add(name);
    for (const dep of Object.keys(pkg.manifest.dependencies ?? {})) if (packages.has(dep)) todo.push(dep);
  }
  return [...seen].sort();
}

/**
 * Packs the public packages into `outDir` (earlier attnopt tarballs there are removed first) and returns the
 * tarballs' paths. The packages must be built (`npm run build`): a missing build output is an error naming it.
 */
export function packPublic(root: string, outDir: string): string[] {
  const packages = workspacePackages(root);
  const names = runtimeClosure(packages);
  for (const name of names) {
    const { dir, manifest } = packages.get(name)!;
    if (manifest.private) throw new Error(`${join(dir, 'package.json')}: ${name} is private, but ${PUBLIC_ROOTS.join(' and ')} need it at run time`);
    for (const file of BUILT[name] ?? ['dist/index.js']) {
      if (!existsSync(join(dir, file))) throw new Error(`${join(dir, file)}: ${name} is not built (run npm run build)`);
    }
  }
  const out = resolve(outDir);
  mkdirSync(out, { recursive: true });
  for (const old of readdirSync(out)) if (/^attnopt-.*\.tgz$/.test(old)) rmSync(join(out, old));
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const args = ['pack', '--json', '--pack-destination', out, ...names.map((n) => `--workspace=${n}`)];
  const r = spawnSync(npm, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr}`);
  const packed = JSON.parse(r.stdout) as { filename: string }[];
  return packed.map((p) => join(out, p.filename));
}
