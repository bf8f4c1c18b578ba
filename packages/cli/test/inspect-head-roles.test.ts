// inspect --decisions says what each head does: on the trained byte LM (examples/trained) with a calibration folder
// of held-out text, every head of every site gets a role, the text shows one roles line per site (or head group)
// naming every head once, and the numbers are those the library's modelHeadRoles computes on the same inputs.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { type CalibrationSample, encodeNpy, loadModel, modelHeadRoles } from '@attnopt/core';
import { attnoptInProcess as attnopt } from './run-captured.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const trained = resolve(here, '../../../examples/trained');
const model = join(trained, 'code-lm.onnx');
const N = 128;
const text = readFileSync(join(trained, 'heldout', 'stdlib-heldout.txt'));
// two samples: N bytes of held-out text, and N / 2 further bytes twice
const samples: CalibrationSample[] = [
  [...text.subarray(0, N)],
  [...text.subarray(N, N + N / 2), ...text.subarray(N, N + N / 2)],
].map((bytes) => ({ input_ids: { dtype: 'i64', shape: [1, N], data: BigInt64Array.from(bytes, BigInt) } }));
const folder = mkdtempSync(join(tmpdir(), 'attnopt-roles-'));
afterAll(() => rmSync(folder, { recursive: true, force: true }));
samples.forEach((s, k) => {
  mkdirSync(join(folder, String(k)));
  writeFileSync(join(folder, String(k), 'input_ids.npy'), encodeNpy(s['input_ids']!));
});

interface RoleJson {
  head: number;
  role: string;
  label: string;
  reach: number;
  halfReach: number;
  sinkMass: number;
  diagonalMass: number;
}

describe('inspect --decisions: head roles', () => {
  test('every head of the trained LM has a role, shown once per roles line, as modelHeadRoles computes it', async () => {
    const args = ['--decisions', '--calibration', folder, '--seq-len', String(N)];
    const r = await attnopt('inspect', model, ...args, '--json');
    expect(r.code).toBe(0);
    const sites = JSON.parse(r.stdout).sites as { id: string; heads: number; headRoles: RoleJson[]; decision: { groups?: { id: string; heads: number[] }[] } }[];
    expect(sites).toHaveLength(4);
    const library = await modelHeadRoles(loadModel(model), samples);
    for (const [k, s] of sites.entries()) {
      expect(s.headRoles.map((h) => h.head)).toEqual([...Array(s.heads).keys()]);
      const lib = library.find((x) => x.id === s.id)!;
      expect(s.headRoles.map((h) => [h.role, h.reach, h.halfReach, h.sinkMass, h.diagonalMass])).toEqual(
        lib.heads.map((h) => [h.role, h.stats.reach, h.stats.halfReach, h.stats.sinkMass, h.stats.diagonalMass]),
      );
      for (const h of s.headRoles) {
        expect(['sink', 'induction', 'local', 'global', 'diffuse']).toContain(h.role);
        expect(h.halfReach).toBeLessThanOrEqual(h.reach);
      }
      expect(s.id).toBe(`site${k}`);
    }
    const out = (await attnopt('inspect', model, ...args)).stdout;
    const lines = out.split('\n').filter((l) => l.trimStart().startsWith('roles '));
    const groups = sites.reduce((n, s) => n + (s.decision.groups?.length ?? 1), 0);
    expect(lines).toHaveLength(groups);
    for (const s of sites) {
      for (const h of s.headRoles) expect(out).toContain(`h${h.head} ${h.label}`);
    }
  });
});
