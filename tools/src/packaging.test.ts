// The public packages as a user gets them: built (npm run build), packed (the package script), installed from the
// tarballs into an empty project outside the repository, and run there with plain node: no tsx, no source
// condition, no workspace. The library must compute what it computes from the sources, and the installed command
// must start fast.

import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { attentionSites, saveModel, loadModel, optimize, recognize } from '@attnopt/core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LOADED_ON_FIRST_USE } from './package/on-first-use.js';
import { packPublic, runtimeClosure, workspacePackages } from './package/pack.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const example = join(root, 'examples/tiny-bert/model.onnx');
const scratch = mkdtempSync(join(tmpdir(), 'attnopt-packaging-'));
const project = join(scratch, 'project');
// the installed project holds onnxruntime-node's native libraries: removing it can take more than the default 10 s
afterAll(() => rmSync(scratch, { recursive: true, force: true }), 120_000);

// what a user's shell gives: no vitest or tsx loader options, and onnxruntime-node's CUDA download skipped
const env: NodeJS.ProcessEnv = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', ORT_DISABLE_TELEMETRY: '1' };
delete env.NODE_OPTIONS;
for (const key of Object.keys(env)) if (key.startsWith('VITEST')) delete env[key];

function ok(r: SpawnSyncReturns<string>, what: string): string {
  if (r.error) throw new Error(`${what}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${what} exited ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

// the library's job on the bundled example, printed as JSON: run with plain node inside the installed project
const LIBRARY_USE = `
import { createHash } from 'node:crypto';
import { attentionSites, saveModel, loadModel, optimize, recognize } from '@attnopt/core';
const model = loadModel(process.argv[2]);
recognize(model.graph);
const result = await optimize(loadModel(process.argv[2]), { maxError: 0.01, seqLen: 32 });
const bytes = saveModel(result.model);
console.log(JSON.stringify({
  sites: attentionSites(model.graph).length,
  chosen: result.sites.map((s) => s.chosen),
  sha256: createHash('sha256').update(bytes).digest('hex'),
}));
`;

beforeAll(() => {
  ok(spawnSync('npm', ['run', 'build'], { cwd: root, env, encoding: 'utf8' }), 'npm run build');
  const tarballs = packPublic(root, join(scratch, 'tarballs'));
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'uses-attnopt', version: '1.0.0', private: true, type: 'module' }));
  writeFileSync(join(project, 'use.mjs'), LIBRARY_USE);
  // the tarballs from disk; their third-party dependencies from npm's cache, the registry where it has none
  const install = spawnSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...tarballs], { cwd: project, env, encoding: 'utf8' });
  ok(install, `npm install in ${project}`);
}, 300_000);

/** A tsconfig's `references`, as paths relative to the repository root (JSON with comments). */
function references(config: string): string[] {
  const text = readFileSync(join(root, config), 'utf8').replace(/^\s*\/\/.*$/gm, '');
  const refs = (JSON.parse(text) as { references?: { path: string }[] }).references ?? [];
  return refs.map((r) => relative(root, join(root, config, '..', r.path))).sort();
}

test('the build covers every package, each after the attnopt packages it depends on', () => {
  const packages = workspacePackages(root);
  const configs = [...packages.values()].map((p) => join(relative(root, p.dir), 'tsconfig.build.json')).sort();
  expect(references('tsconfig.build.json')).toEqual(configs);
  for (const [name, { dir, manifest }] of packages) {
    const deps = Object.keys(manifest.dependencies ?? {}).filter((d) => packages.has(d));
    const expected = deps.map((d) => join(relative(root, packages.get(d)!.dir), 'tsconfig.build.json')).sort();
    expect(references(join(relative(root, dir), 'tsconfig.build.json')), name).toEqual(expected);
  }
});

test('every public package is installed once, from its tarball, built', () => {
  const expected = runtimeClosure(workspacePackages(root));
  expect(expected).toEqual(expect.arrayContaining(['@attnopt/cli', '@attnopt/core', '@attnopt/ir']));
  const installed = readdirSync(join(project, 'node_modules/@attnopt')).map((n) => `@attnopt/${n}`);
  expect(installed.sort()).toEqual(expected);
  for (const name of installed) {
    const dir = join(project, 'node_modules', name);
    expect(existsSync(join(dir, 'dist/index.js')), `${name}: dist/index.js`).toBe(true);
    expect(existsSync(join(dir, 'dist/index.d.ts')), `${name}: dist/index.d.ts`).toBe(true);
    expect(existsSync(join(dir, 'src')), `${name}: no sources shipped`).toBe(false);
    // the workspace's 0.0.0 inter-package versions resolved among the tarballs, never a second copy
    expect(existsSync(join(dir, 'node_modules/@attnopt')), `${name}: nested @attnopt packages`).toBe(false);
  }
});

test('library: import -> recognize -> optimize with plain node gives what the sources give', async () => {
  const out = ok(spawnSync(process.execPath, ['use.mjs', example], { cwd: project, env, encoding: 'utf8', timeout: 120_000 }), 'node use.mjs');
  const installed = JSON.parse(out) as { sites: number; chosen: string[]; sha256: string };

  const model = loadModel(example);
  recognize(model.graph);
  const result = await optimize(loadModel(example), { maxError: 0.01, seqLen: 32 });
  const fromSources = {
    sites: attentionSites(model.graph).length,
    chosen: result.sites.map((s) => s.chosen),
    sha256: createHash('sha256').update(saveModel(result.model)).digest('hex'),
  };
  expect(fromSources.sites).toBeGreaterThan(0);
  expect(installed).toEqual(fromSources);
}, 180_000);

test('a TypeScript project typechecks against the installed declarations', () => {
  writeFileSync(
    join(project, 'typed.ts'),
    [
      "import { attentionSites, loadModel, optimize, type AttnoptModel } from '@attnopt/core';",
      "const model: AttnoptModel = loadModel('model.onnx');",
      'const ids: string[] = attentionSites(model.graph).map((s) => s.id);',
      'const result = await optimize(model, { maxError: 0.01, seqLen: 32 });',
      'console.log(ids, result.sites.map((s) => s.chosen));',
      '',
    ].join('\n'),
  );
  // strict, so a package without declarations fails (an implicit any); libraries' own .d.ts are not rechecked
  const config = { compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: [] }, files: ['typed.ts'] };
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(config));
  const tsc = join(root, 'node_modules/typescript/bin/tsc');
  ok(spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project, env, encoding: 'utf8', timeout: 120_000 }), 'tsc in the installed project');
}, 120_000);

/** Seconds of wall time and of CPU time (user + system) of one run of `command` in the project, from bash's `time`. */
function timed(command: string): { wall: number; cpu: number; stdout: string } {
  const r = spawnSync('bash', ['-c', `TIMEFORMAT='%R %U %S'; { time ${command} >stdout.txt; } 2>&1`], { cwd: project, env, encoding: 'utf8' });
  const [wall, user, sys] = ok(r, command).trim().split(/\s+/).slice(-3).map(Number);
  return { wall: wall!, cpu: user! + sys!, stdout: readFileSync(join(project, 'stdout.txt'), 'utf8') };
}

test('the installed attnopt --help starts in under 0.5 s', () => {
  const runs = Array.from({ length: 5 }, () => timed('node_modules/.bin/attnopt --help'));
  const bare = Array.from({ length: 5 }, () => timed('node -e 0'));
  expect(runs[0]!.stdout).toContain('Usage: attnopt');
  const best = (xs: number[]) => Math.min(...xs);
  const help = { wall: best(runs.map((r) => r.wall)), cpu: best(runs.map((r) => r.cpu)) };
  const node = { wall: best(bare.map((r) => r.wall)), cpu: best(bare.map((r) => r.cpu)) };
  console.log(`attnopt --help (installed, best of 5): ${help.wall.toFixed(3)} s wall, ${help.cpu.toFixed(3)} s CPU; node -e 0: ${node.wall.toFixed(3)} s wall, ${node.cpu.toFixed(3)} s CPU`);
  // CPU time is what the command costs; wall time on a shared runner also counts the time spent waiting for a core
  expect(help.cpu).toBeLessThan(0.5);
});

// preloaded into the command's process: at exit, writes the CommonJS modules it loaded (require.cache, which ESM
// imports of CommonJS packages fill too) as JSON to the file named by LOADED_MODULES_FILE
const LOADED_MODULES = `
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const cache = createRequire(import.meta.url).cache;
process.on('exit', () => writeFileSync(process.env.LOADED_MODULES_FILE, JSON.stringify(Object.keys(cache))));
`;

/** The packages (names under node_modules) whose CommonJS modules the installed command loads for `args`. */
function packagesLoaded(args: readonly string[]): string[] {
  writeFileSync(join(project, 'loaded-modules.mjs'), LOADED_MODULES);
  const file = join(project, 'loaded-modules.json');
  rmSync(file, { force: true });
  const bin = join(project, 'node_modules/@attnopt/cli/bin/attnopt.js');
  const r = spawnSync(process.execPath, ['--import', './loaded-modules.mjs', bin, ...args], {
    cwd: project,
    env: { ...env, LOADED_MODULES_FILE: file },
    encoding: 'utf8',
    timeout: 120_000,
  });
  ok(r, `attnopt ${args.join(' ')} (with the module probe)`);
  const files = JSON.parse(readFileSync(file, 'utf8')) as string[];
  const names = files.map((f) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f)?.[1]).filter((n): n is string => n !== undefined);
  return [...new Set(names)].sort();
}

test('the installed attnopt --help loads the packages deferred to first use only when a command needs them', () => {
  const deferred = LOADED_ON_FIRST_USE.map((s) => s.split('/')[0]!);
  const help = packagesLoaded(['--help']);
  expect(help, 'the probe sees the CommonJS packages the command imports').toContain('commander');
  for (const name of deferred) expect(help, `${name} loaded by --help`).not.toContain(name);
  // inspect decodes the model (protobufjs); verify runs both models in onnxruntime
  expect(packagesLoaded(['inspect', example])).toContain('protobufjs');
  const verify = packagesLoaded(['verify', example, example, '--seq-len', '16']);
  expect(verify).toEqual(expect.arrayContaining(['onnxruntime-node', 'protobufjs']));
}, 240_000);

test('the installed attnopt inspect prints what the command prints from the sources', () => {
  const args = ['inspect', example, '--json'];
  const installed = ok(spawnSync('node_modules/.bin/attnopt', args, { cwd: project, env, encoding: 'utf8', timeout: 120_000 }), 'attnopt inspect (installed)');
  const bin = join(root, 'packages/cli/bin/attnopt.js');
  const fromSources = ok(spawnSync(process.execPath, [bin, ...args], { cwd: root, env, encoding: 'utf8', timeout: 120_000 }), 'attnopt inspect (sources)');
  expect((JSON.parse(installed) as { sites: unknown[] }).sites.length).toBeGreaterThan(0);
  expect(installed).toBe(fromSources);
}, 240_000);
