// --max-rel-error: a budget relative to each site's scale. optimize --json gives per site the scale and the absolute
// budget (maxRelError x scale, checked here), every site's bound is its own budget or 0, and giving it with
// --max-error is a usage error (exit 1).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { attnoptInProcess as attnopt } from './run-captured.js';

const model = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../examples/trained/code-lm.onnx');
const dir = mkdtempSync(join(tmpdir(), 'attnopt-rel-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('optimize --max-rel-error', () => {
  test('each site gets maxRelError x its scale', async () => {
    const r = await attnopt('optimize', model, '-o', join(dir, 'rel.onnx'), '--seq-len', '64', '--max-rel-error', '0.05', '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { sites: { id: string; bound: number }[]; relative: { maxRelError: number; scales: Record<string, number>; budgets: Record<string, number> } };
    expect(out.relative.maxRelError).toBe(0.05);
    expect(Object.keys(out.relative.scales).sort()).toEqual(out.sites.map((s) => s.id).sort());
    for (const s of out.sites) {
      expect(out.relative.scales[s.id]).toBeGreaterThan(0);
      expect(out.relative.budgets[s.id]).toBe(0.05 * out.relative.scales[s.id]!);
      expect([0, out.relative.budgets[s.id]]).toContain(s.bound);
    }
  });

  test('with --max-error: a usage error', async () => {
    const r = await attnopt('optimize', model, '-o', join(dir, 'both.onnx'), '--max-error', '0.01', '--max-rel-error', '0.01');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--max-error .* or --max-rel-error .* not both/);
  });
});
