// The examples a user copies from run as their READMEs say, and print what they promise.

import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');

function runExample(path: string) {
  const r = spawnSync(process.execPath, ['--conditions=@attnopt/source', '--import', 'tsx', path], {
    cwd: root,
    encoding: 'utf8',
    timeout: 110_000,
    env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('examples/library-api: import, recognize, analyze, compile, optimize and export the bundled tiny-bert', () => {
  const r = runExample('examples/library-api/main.ts');
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const lines = r.stdout.trim().split('\n');
  expect(lines[0]).toMatch(/^2 attention sites recognized/);
  // tiny-bert: 4 heads of 16 (hidden 64), an additive padding mask from its input: nothing provable
  expect(lines[1]).toBe('site0: 4 heads x 16, recognized dense, keys dense, keeps 100.0% of pairs at n=128');
  expect(r.stdout).toMatch(/compiled site0: site0\.wgsl \(\d+ chars of WGSL, \d+ bindings\), site0\.wasm, site0\.attend\.js, site0\.keep\.js for the CPU/);
  expect(r.stdout).toMatch(/optimize site1: /);
  expect(r.stdout).toMatch(/exported \d+ bytes of ONNX/);
});

test('examples/property-suite: a correct naive kernel passes, one without the scale fails with a counterexample', () => {
  const r = runExample('examples/property-suite/main.ts');
  expect(r.code).toBe(0);
  expect(r.stdout).toContain('naive kernel: ok on 100 generated problems');
  expect(r.stdout).toContain('kernel without the scale: fails, as it should');
  expect(r.stdout).toContain('shrunk counterexample:');
});
