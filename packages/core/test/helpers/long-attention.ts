// A generated long-attention model for the core tests: Y = Attention(Q, K, V) (one ONNX opset-23 node, 2 heads of
// 32, symbolic sequence length), with calibration samples whose Q and K are Fourier features of the position, so
// attention decays with |i - j| and sparsify picks a window.

import { gaussian, Graph, intAttr, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import type { CalibrationSample } from '../../src/calibrate/index.js';

export const HEADS = 2;
export const DIM = 32;

export function longAttentionBytes(): Uint8Array {
  const g = new Graph('long-attention');
  const [q, k, v] = ['q', 'k', 'v'].map((x) => g.addInput(new Value(x, tensorType('f32', [1, 'seq', HEADS * DIM]))));
  const y = new Value('y', tensorType('f32', [1, 'seq', HEADS * DIM]));
  g.add({ op: 'Attention', name: 'attention', inputs: [q!, k!, v!], outputs: [y], attrs: { q_num_heads: intAttr(HEADS), kv_num_heads: intAttr(HEADS) } });
  g.outputs.push(y);
  return exportOnnx(newOnnxModel(g, { opset: 23 }));
}

/**
 * Q and K from Fourier features of the position (q_i . k_j ~ peak * mean cos(w (i - j))): attention decays with
 * |i - j|. `reach[h]` (default 1) stretches head h's frequencies down by that factor: its attention reaches
 * about that many times further, so heads can want windows of different widths.
 */
export function longAttentionSample(seed: number, n: number, reach: readonly number[] = []): CalibrationSample {
  const W = HEADS * DIM;
  const [q, k, v] = [new Float32Array(n * W), new Float32Array(n * W), new Float32Array(n * W)];
  const noise = gaussian(seed, 3 * n * W);
  const freq = gaussian(99, (HEADS * DIM) / 2);
  const amp = Math.sqrt((20 * Math.sqrt(DIM)) / (DIM / 2));
  for (let i = 0; i < n; i++) {
    for (let h = 0; h < HEADS; h++) {
      for (let f = 0; f < DIM / 2; f++) {
        const w = freq[(h * DIM) / 2 + f]! / (12 * (reach[h] ?? 1));
        const at = i * W + h * DIM + 2 * f;
        q[at] = amp * Math.cos(w * i) + 0.1 * noise[at]!;
        q[at + 1] = amp * Math.sin(w * i) + 0.1 * noise[at + 1]!;
        k[at] = amp * Math.cos(w * i) + 0.1 * noise[n * W + at]!;
        k[at + 1] = amp * Math.sin(w * i) + 0.1 * noise[n * W + at + 1]!;
        v[at] = noise[2 * n * W + at]!;
        v[at + 1] = noise[2 * n * W + at + 1]!;
      }
    }
  }
  const shape = [1, n, W];
  return { q: { dtype: 'f32', shape, data: q }, k: { dtype: 'f32', shape, data: k }, v: { dtype: 'f32', shape, data: v } };
}
