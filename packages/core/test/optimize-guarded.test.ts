// optimize end to end on the guarded tier: a causal ONNX Attention (opset 23, 2 heads of 32), calibrated on the
// user's samples where attention is local, gets a guarded window; its metadata says so (tier, budget, block
// summaries, calibration provenance); and in onnxruntime the optimized model stays within the budget of the
// original on an input unlike its calibration (repeated spans: each query matches a key far outside the window),
// float32 rounding aside (1e-4).

import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Graph, intAttr, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import type { CalibrationSample } from '../src/calibrate/index.js';
import { loadModel, optimize, saveModel } from '../src/index.js';

process.env.ORT_DISABLE_TELEMETRY = '1';

const H = 2;
const D = 32;
const W = H * D;
const N = 1024;
const BUDGET = 1e-3;

function causalAttention(): Uint8Array {
  const g = new Graph('causal_attention');
  const [q, k, v] = ['q', 'k', 'v'].map((x) => g.addInput(new Value(x, tensorType('f32', [1, 'seq', W]))));
  const y = new Value('y', tensorType('f32', [1, 'seq', W]));
  g.add({ op: 'Attention', name: 'attention', inputs: [q!, k!, v!], outputs: [y], attrs: { q_num_heads: intAttr(H), kv_num_heads: intAttr(H), is_causal: intAttr(1) } });
  g.outputs.push(y);
  return exportOnnx(newOnnxModel(g, { opset: 23 }));
}

/** q_i . k_j = A^2 sum_f cos(w_f (i - j)) per head, geometric frequencies: local, peak score 40. */
function localTensors(n: number, seed: number): { q: Float32Array; k: Float32Array; v: Float32Array } {
  const F = D / 2;
  const A = Math.sqrt(40 * Math.sqrt(D) / F);
  const q = new Float32Array(n * W);
  const k = new Float32Array(n * W);
  const v = new Float32Array(n * W);
  let s = seed;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
  for (let i = 0; i < n; i++) {
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

function sample(t: { q: Float32Array; k: Float32Array; v: Float32Array }, n: number): CalibrationSample {
  const shape = [1, n, W];
  return { q: { dtype: 'f32', shape, data: t.q }, k: { dtype: 'f32', shape, data: t.k }, v: { dtype: 'f32', shape, data: t.v } };
}

async function run(bytes: Uint8Array, t: { q: Float32Array; k: Float32Array; v: Float32Array }, n: number): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled' });
  const x = (d: Float32Array) => new ort.Tensor('float32', d, [1, n, W]);
  return (await s.run({ q: x(t.q), k: x(t.k), v: x(t.v) })).y!.data as Float32Array;
}

describe('optimize, guarded tier, end to end in onnxruntime', () => {
  it('a guarded window on local calibration data, within the budget on repeated spans it never saw', async () => {
    const original = causalAttention();
    const result = await optimize(loadModel(original), { maxError: BUDGET, seqLen: N, samples: [sample(localTensors(N, 1), N)] });
    expect(result.sites).toHaveLength(1);
    const site = result.sites[0]!;
    expect(site).toMatchObject({ guarantee: 'guarded', bound: BUDGET, exact: false });
    expect(site.chosen).toMatch(/window/);
    expect(result.calibration).toEqual({ source: 'user', count: 1, seqLen: N });
    const meta = result.model.proto.metadataProps?.find((e) => e.key === 'attnopt.guarantees');
    const guarantees = JSON.parse(meta!.value!) as { budget: number; calibration: unknown; sites: Record<string, { guarantee: string; guard?: { blockSize: number; summaries: string } }> };
    expect(guarantees.budget).toBe(BUDGET);
    expect(guarantees.calibration).toEqual({ source: 'user', count: 1, seqLen: N });
    expect(guarantees.sites.site0).toMatchObject({ guarantee: 'guarded', guard: { blockSize: 64 } });
    expect(guarantees.sites.site0!.guard!.summaries).toMatch(/Quest/);

    // lowered in the guarded form: the fallback rows gathered by NonZero and scattered back
    const ops = new Set([...result.model.graph.allNodes()].map((n) => n.op));
    expect(ops.has('NonZero') && ops.has('ScatterElements')).toBe(true);
    const optimized = saveModel(result.model);
    // repeated spans: from 500 on the keys repeat those 500 earlier, and each query looks for the copy's successor
    const t = localTensors(N, 2);
    for (let i = 500; i < N; i++) {
      t.k.set(t.k.subarray((i - 500) * W, (i - 499) * W), i * W);
      for (let c = 0; c < W; c++) t.q[i * W + c] = 1.2 * t.k[(i - 499) * W + c]!;
    }
    const want = await run(original, t, N);
    const got = await run(optimized, t, N);
    let err = 0;
    for (let x = 0; x < want.length; x++) err = Math.max(err, Math.abs(got[x]! - want[x]!));
    expect(err).toBeLessThanOrEqual(BUDGET + 1e-4);
  }, 300_000);
});
