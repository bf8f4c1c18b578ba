// verify reports the guarded tier's fallback measured at run time: a causal ONNX Attention (opset 23, 2 heads of
// 32) optimized on local calibration data gets a guarded window; verifyModels on an input with repeated spans
// (each query matches a key far outside the window) reports, for site0, the (batch, head, row) triples the
// optimized model recomputed densely. The certificate is never below the true dropped mass m, so every triple
// whose true m times V's range exceeds the budget (computed here in float64 from the inputs and the chosen
// window) must be among them: that count is a lower bound the measured one must reach, and it is not 0. The
// report's trade-off point carries the same rates.

import { describe, expect, it } from 'vitest';
import { Graph, intAttr, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import type { CalibrationSample } from '../src/calibrate/index.js';
import { loadModel, optimize, saveModel, verifyModels } from '../src/index.js';
import { tradeoffPoint } from '../src/report/tradeoff.js';

process.env.ORT_DISABLE_TELEMETRY = '1';

const H = 2;
const D = 32;
const W = H * D;
const N = 1024;
const BUDGET = 1e-3;

type Tensors = { q: Float32Array; k: Float32Array; v: Float32Array };

function causalAttention(): Uint8Array {
  const g = new Graph('causal_attention');
  const [q, k, v] = ['q', 'k', 'v'].map((x) => g.addInput(new Value(x, tensorType('f32', [1, 'seq', W]))));
  const y = new Value('y', tensorType('f32', [1, 'seq', W]));
  g.add({ op: 'Attention', name: 'attention', inputs: [q!, k!, v!], outputs: [y], attrs: { q_num_heads: intAttr(H), kv_num_heads: intAttr(H), is_causal: intAttr(1) } });
  g.outputs.push(y);
  return exportOnnx(newOnnxModel(g, { opset: 23 }));
}

/** q_i . k_j = A^2 sum_f cos(w_f (i - j)) per head, geometric frequencies: local, peak score 40. */
function localTensors(seed: number): Tensors {
  const F = D / 2;
  const A = Math.sqrt((40 * Math.sqrt(D)) / F);
  const q = new Float32Array(N * W);
  const k = new Float32Array(N * W);
  const v = new Float32Array(N * W);
  let s = seed;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
  for (let i = 0; i < N; i++) {
    for (let h = 0; h < H; h++) {
      for (let f = 0; f < F; f++) {
        const w = 0.0015 * 1.25 ** f;
        const at = i * W + h * D + 2 * f;
        q[at] = k[at] = A * Math.cos(w * i);
        q[at + 1] = k[at + 1] = A * Math.sin(w * i);
      }
      for (let c = 0; c < D; c++) v[i * W + h * D + c] = 2 * rnd();
    }
  }
  return { q, k, v };
}

const sample = (t: Tensors): CalibrationSample => {
  const shape = [1, N, W];
  return { q: { dtype: 'f32', shape, data: t.q }, k: { dtype: 'f32', shape, data: t.k }, v: { dtype: 'f32', shape, data: t.v } };
};

/** The kept keys of `window(left=L, right=R)` (any alignment: no past keys here) with `sinks(E)`, from the chosen spec's text. */
function keptOf(chosen: string): (i: number, j: number) => boolean {
  const w = /window\(left=(\d+), right=(-?\d+)(?:, align=[a-z-]+)?\)/.exec(chosen);
  if (!w) throw new Error(`expected a window in the chosen spec, got ${chosen}`);
  const left = Number(w[1]);
  const right = Number(w[2]);
  const sinks = Number(/sinks\((\d+)\)/.exec(chosen)?.[1] ?? 0);
  return (i, j) => j < sinks || (i - j <= left && j - i <= right);
}

/** (head, row) pairs whose true dropped mass (float64, causal keys) times V's range over all keys exceeds `budget`. */
function mustFallBack(t: Tensors, kept: (i: number, j: number) => boolean, budget: number): number {
  let count = 0;
  for (let h = 0; h < H; h++) {
    let range = 0;
    for (let c = 0; c < D; c++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let j = 0; j < N; j++) {
        lo = Math.min(lo, t.v[j * W + h * D + c]!);
        hi = Math.max(hi, t.v[j * W + h * D + c]!);
      }
      range = Math.max(range, hi - lo);
    }
    const s = new Float64Array(N);
    for (let i = 0; i < N; i++) {
      let max = -Infinity;
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let c = 0; c < D; c++) dot += t.q[i * W + h * D + c]! * t.k[j * W + h * D + c]!;
        s[j] = dot / Math.sqrt(D);
        max = Math.max(max, s[j]!);
      }
      let z = 0;
      let dropped = 0;
      for (let j = 0; j <= i; j++) {
        const e = Math.exp(s[j]! - max);
        z += e;
        if (!kept(i, j)) dropped += e;
      }
      if ((dropped / z) * range > budget) count++;
    }
  }
  return count;
}

describe('verify measures the guarded fallback at run time', () => {
  it('per guarded site, at least every (head, row) whose true dropped mass breaks the budget', async () => {
    const original = causalAttention();
    const result = await optimize(loadModel(original), { maxError: BUDGET, seqLen: N, samples: [sample(localTensors(1))] });
    const site = result.sites[0]!;
    expect(site).toMatchObject({ id: 'site0', guarantee: 'guarded' });
    // repeated spans: from 500 on the keys repeat those 500 earlier, and each query looks for the copy's successor
    const t = localTensors(2);
    for (let i = 500; i < N; i++) {
      t.k.set(t.k.subarray((i - 500) * W, (i - 499) * W), i * W);
      for (let c = 0; c < W; c++) t.q[i * W + c] = 1.2 * t.k[(i - 499) * W + c]!;
    }
    const lowerBound = mustFallBack(t, keptOf(site.chosen), BUDGET);
    expect(lowerBound).toBeGreaterThan(0);
    const report = await verifyModels(original, saveModel(result.model), result.model, [sample(t)]);
    expect(report.guardFallback).toHaveLength(1);
    const [rate] = report.guardFallback!;
    console.log(`site0 on repeated spans (chosen ${site.chosen}): ${rate!.fellBack} of ${rate!.checked} (head, row) fell back; at least ${lowerBound} must (true dropped mass x V range > ${BUDGET})`);
    expect(rate).toMatchObject({ site: 'site0', checked: H * N });
    expect(rate!.fellBack).toBeGreaterThanOrEqual(lowerBound);
    expect(rate!.fellBack).toBeLessThanOrEqual(rate!.checked);
    expect(rate!.rate).toBeCloseTo(rate!.fellBack / rate!.checked, 12);
    // the report's trade-off point carries the same measurement per site
    const point = await tradeoffPoint(BUDGET, original, result, [sample(t)]);
    expect(point.guardFallback).toEqual({ site0: rate!.rate });
  }, 300_000);

  it('no guarded site: nothing to report', async () => {
    const original = causalAttention();
    const result = await optimize(loadModel(original), { maxError: 0, seqLen: 256 });
    const t = localTensors(3);
    const s: CalibrationSample = Object.fromEntries(Object.entries(sample(t)).map(([k, x]) => [k, { ...x, shape: [1, 256, W], data: x.data.subarray(0, 256 * W) }]));
    const report = await verifyModels(original, saveModel(result.model), result.model, [s]);
    expect(report.guardFallback).toEqual([]);
  }, 300_000);
});
