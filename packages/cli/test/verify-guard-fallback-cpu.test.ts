// `attnopt verify --runtime attnopt-cpu` prints each guarded site's fallback measured in attnopt's CPU executor:
// a causal ONNX Attention (2 heads of 32, n = 640) optimized with --runtime attnopt-cpu at --max-error 1e-3 on local
// calibration inputs gets a guarded window or top-k blocks; verified on held-out repeated spans (each query matches a
// key about 500 back), the printed line names site0 with a count of recomputed (head, row) pairs out of 1280 that
// reaches every pair whose true dropped mass (float64) times V's range breaks the budget, and not 0; --json carries
// the same numbers.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeNpy } from '@attnopt/core';
import { afterAll, describe, expect, test } from 'vitest';
import { keptOf, mustFallBack } from '../../core/test/helpers/guard-lower-bound.js';
import { causalAttention, localTensors, repeatSpans, type Tensors, W } from '../../core/test/helpers/guarded-site.js';
import { attnoptInProcess as attnopt } from './run-captured.js';

const N = 640;
const scratch = mkdtempSync(join(tmpdir(), 'attnopt-verify-guard-cpu-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function inputsFolder(name: string, t: Tensors): string {
  const dir = join(scratch, name);
  mkdirSync(dir);
  for (const x of ['q', 'k', 'v'] as const) writeFileSync(join(dir, `${x}.npy`), encodeNpy({ dtype: 'f32', shape: [1, N, W], data: t[x] }));
  return dir;
}

describe('attnopt verify --runtime attnopt-cpu on a guarded model', () => {
  test('prints the fallback of the guarded site, at least every row that must fall back', async () => {
    const model = join(scratch, 'causal.onnx');
    const optimized = join(scratch, 'causal.opt.onnx');
    writeFileSync(model, causalAttention());
    const calibration = inputsFolder('calibration', localTensors(N, 1));
    const heldOut = repeatSpans(localTensors(N, 2), N);
    const inputs = inputsFolder('held-out', heldOut);
    const opt = await attnopt('optimize', model, '-o', optimized, '--max-error', '1e-3', '--seq-len', String(N), '--calibration', calibration, '--runtime', 'attnopt-cpu', '--json');
    expect(opt.code).toBe(0);
    const site = JSON.parse(opt.stdout).sites[0];
    expect(site).toMatchObject({ id: 'site0', guarantee: 'guarded' });
    const lowerBound = mustFallBack(heldOut, N, keptOf(site.chosen, heldOut, N), 1e-3);
    expect(lowerBound).toBeGreaterThan(0);

    const r = await attnopt('verify', model, optimized, '--inputs', inputs, '--runtime', 'attnopt-cpu');
    expect(r.code).toBe(0);
    // the lowered site's flags: the (batch, head, row) triples over the budget, and their rows, recomputed in every head
    const line = /guarded site0: ([\d.]+)% of \(batch, head, row\) over the budget at run time \((\d+) of (\d+)\); their rows, ([\d.]+)% of \(batch, row\), recomputed densely in every head \((\d+) of (\d+)\)/.exec(r.stdout);
    expect(line, r.stdout).not.toBeNull();
    const [percent, fellBack, checked, rowPercent, rowsRecomputed, rows] = line!.slice(1, 7).map(Number) as [number, number, number, number, number, number];
    console.log(line![0]);
    expect(checked).toBe(2 * N);
    expect(fellBack).toBeGreaterThanOrEqual(lowerBound);
    expect(percent).toBeCloseTo((100 * fellBack) / checked, 1);
    expect(rows).toBe(N);
    expect(rowsRecomputed).toBeGreaterThanOrEqual(Math.ceil(fellBack / 2));
    expect(rowsRecomputed).toBeLessThanOrEqual(Math.min(fellBack, N));
    expect(rowPercent).toBeCloseTo((100 * rowsRecomputed) / rows, 1);

    const json = await attnopt('verify', model, optimized, '--inputs', inputs, '--runtime', 'attnopt-cpu', '--json');
    expect(JSON.parse(json.stdout).guardFallback).toEqual([{ site: 'site0', checked, fellBack, rate: fellBack / checked, rows, rowsRecomputed }]);
  }, 300_000);
});
