// The guarded tier's test site: a causal ONNX Attention (opset 23, 2 heads of 32, [1, seq, 64]), inputs where
// attention is local (calibration) and inputs with repeated spans (each query matches a key far outside any
// window), as the guarded optimize and verify tests use them.

import { Graph, intAttr, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import type { CalibrationSample } from '../../src/calibrate/index.js';

export const H = 2;
export const D = 32;
export const W = H * D;

export interface Tensors {
  readonly q: Float32Array;
  readonly k: Float32Array;
  readonly v: Float32Array;
}

/** The site in `dtype` (default float32); with `outputs` names, one copy of it per name, all on the same q, k, v. */
export function causalAttention(options: { dtype?: 'f32' | 'f16'; outputs?: readonly string[] } = {}): Uint8Array {
  const dtype = options.dtype ?? 'f32';
  const g = new Graph('causal_attention');
  const [q, k, v] = ['q', 'k', 'v'].map((x) => g.addInput(new Value(x, tensorType(dtype, [1, 'seq', W]))));
  for (const name of options.outputs ?? ['y']) {
    const y = new Value(name, tensorType(dtype, [1, 'seq', W]));
    g.add({ op: 'Attention', name: `attention_${name}`, inputs: [q!, k!, v!], outputs: [y], attrs: { q_num_heads: intAttr(H), kv_num_heads: intAttr(H), is_causal: intAttr(1) } });
    g.outputs.push(y);
  }
  return exportOnnx(newOnnxModel(g, { opset: 23 }));
}

/** q_i . k_j = A^2 sum_f cos(w_f (i - j)) per head, geometric frequencies: local, peak score 40. */
export function localTensors(n: number, seed: number): Tensors {
  const F = D / 2;
  const A = Math.sqrt((40 * Math.sqrt(D)) / F);
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

/** Repeated spans in place: from 500 on the keys repeat those 500 earlier, and each query looks for the copy's successor. */
export function repeatSpans(t: Tensors, n: number): Tensors {
  for (let i = 500; i < n; i++) {
    t.k.set(t.k.subarray((i - 500) * W, (i - 499) * W), i * W);
    for (let c = 0; c < W; c++) t.q[i * W + c] = 1.2 * t.k[(i - 499) * W + c]!;
  }
  return t;
}

export function sample(t: Tensors, n: number): CalibrationSample {
  const shape = [1, n, W];
  return { q: { dtype: 'f32', shape, data: t.q }, k: { dtype: 'f32', shape, data: t.k }, v: { dtype: 'f32', shape, data: t.v } };
}
