// The one-site models and the inputs of the guarded onnxruntime benchmarks (guarded.ts, guarded-profile.ts): one
// attention site, 8 heads, head dim 64, batch 1, layout bsd, causal baseline, lowered with standard ONNX ops
// (lowerAttentionPass, opset 21); local inputs (the guarded form should recompute no row) and diffuse ones (every
// row that drops a key falls back).

import { type AttentionGuard, type AttentionParams, attentionNode, causal, Graph, intersect, sinks, slidingWindow, tensorType, union, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { lowerAttentionPass } from '@attnopt/passes';
import { runPipeline } from '@attnopt/rewrite';
import * as ort from 'onnxruntime-node';

export const H = 8;
export const D = 64;
/** causal ∩ (window 256 ∪ sinks 4). */
export const GUARDED_SPEC = intersect(causal(), union(slidingWindow(255, 0), sinks(4)));

/**
 * The site lowered to ONNX bytes: `spec`, guarded with `budget` when given (key blocks of `keyBlock`, 64 unless
 * given; `choices`: the guard's summaries and log Z_S, default the box and the ball and the log-sum-exp) over
 * `baseline` (the site's own spec: causal unless given); a causal spec lowers dense, any other banded unless
 * `strategy` says.
 */
export function siteModel(
  spec: AttentionParams['spec'],
  budget: number | undefined,
  keyBlock = 64,
  choices: Pick<AttentionGuard, 'summaries' | 'logZ'> = {},
  baseline: AttentionGuard['baseline'] = causal(),
  strategy: 'dense' | 'banded' = spec.kind === 'causal' ? 'dense' : 'banded',
): Uint8Array {
  const params: AttentionParams = {
    numHeads: H,
    kvNumHeads: H,
    headDim: D,
    vHeadDim: D,
    scale: 1 / Math.sqrt(D),
    softcap: 0,
    layout: 'bsd',
    spec,
    ...(budget !== undefined ? { guard: { budget, blockSize: keyBlock, baseline, ...choices } } : {}),
  };
  const g = new Graph('guarded_bench');
  const [q, k, v] = ['q', 'k', 'v'].map((name) => g.addInput(new Value(name, tensorType('f32', [1, 'seq', H * D]))));
  const y = new Value('y', tensorType('f32'));
  g.addNode(attentionNode(params, { q: q!, k: k!, v: v! }, { y }, 'attn'));
  g.outputs.push(y);
  // a causal spec lowers dense by the lowering's own rule; a window would lower banded unless told
  runPipeline(g, [lowerAttentionPass({ opset: 21, ...(strategy === 'banded' || spec.kind !== 'causal' ? { strategy } : {}) })]);
  return exportOnnx(newOnnxModel(g, { opset: 21 }));
}

/** Local attention: per head, q_i . k_j = A^2 sum_f cos(w_f (i - j)) over 32 geometric frequencies. */
export function localInputs(n: number): Record<string, ort.Tensor> {
  const F = D / 2;
  const A = Math.sqrt(40 / (F / Math.sqrt(D))); // peak logit scale * F * A^2 = 40
  const q = new Float32Array(n * H * D);
  const k = new Float32Array(n * H * D);
  const v = new Float32Array(n * H * D);
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
  for (let i = 0; i < n; i++) {
    for (let h = 0; h < H; h++) {
      for (let f = 0; f < F; f++) {
        const w = 0.0015 * 1.12 ** f * (1 + 0.05 * h);
        const at = (i * H + h) * D + 2 * f;
        q[at] = k[at] = A * Math.cos(w * i);
        q[at + 1] = k[at + 1] = A * Math.sin(w * i);
      }
      for (let c = 0; c < D; c++) v[(i * H + h) * D + c] = 2 * rnd();
    }
  }
  const t = (x: Float32Array) => new ort.Tensor('float32', x, [1, n, H * D]);
  return { q: t(q), k: t(k), v: t(v) };
}

/** Diffuse attention: small random q and k (every score near 0), random v. */
export function diffuseInputs(n: number): Record<string, ort.Tensor> {
  let s = 777;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
  const t = (a: number) => new ort.Tensor('float32', Float32Array.from({ length: n * H * D }, () => a * rnd()), [1, n, H * D]);
  return { q: t(0.2), k: t(0.2), v: t(2) };
}
