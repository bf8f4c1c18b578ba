// One bhsd attnopt::Attention site of B batches, H query heads over Hkv key/value heads of size D and a symbolic
// sequence length, lowered for onnxruntime (asserting that it lowers), run on q, k, v (and kvLength), with the
// guarded form's fallback flags [B, H, S] as an output when asked; and its float64 reference on the f32-rounded
// inputs onnxruntime reads. The guarded-lowering tests share it.

import { type AttentionParams, attentionNode, Graph, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { expect } from 'vitest';
import { cannotLower, GUARD_FALLBACK_VALUE, type LowerOptions, lowerAttentionPass, type LoweringStrategy, NATIVE_ATTENTION_OPSET } from '../../src/lower/index.js';
import type { QKV } from './guarded-inputs.js';
import { ortTensor, ortValues, runModel } from './ort.js';

export interface Shape {
  readonly B: number;
  readonly H: number;
  readonly Hkv: number;
}

/**
 * The site lowered for onnxruntime at `opset` (default 21; 23 with `native`, the onnxruntime banded form); with
 * `flags` the fallback flags are an output too; `strategy` forces a lowering (LowerOptions.strategy).
 */
export function buildBhsdSite(shape: Shape, p: AttentionParams, options: { kvLength?: boolean; flags?: boolean; opset?: number; native?: boolean; strategy?: LoweringStrategy } = {}): Uint8Array {
  const opset = options.opset ?? (options.native ? NATIVE_ATTENTION_OPSET : 21);
  const lowering: LowerOptions = { opset, ...(options.native ? { native: 'onnxruntime' } : {}), ...(options.strategy ? { strategy: options.strategy } : {}) };
  const D = p.headDim;
  const g = new Graph('bhsd_site');
  const q = g.addInput(new Value('q', tensorType('f32', [shape.B, shape.H, 'seq', D])));
  const k = g.addInput(new Value('k', tensorType('f32', [shape.B, shape.Hkv, 'seq', D])));
  const v = g.addInput(new Value('v', tensorType('f32', [shape.B, shape.Hkv, 'seq', p.vHeadDim])));
  const kvLength = options.kvLength ? g.addInput(new Value('kv_length', tensorType('i64', [shape.B]))) : undefined;
  const y = new Value('y', tensorType('f32'));
  const node = attentionNode(p, { q, k, v, ...(kvLength ? { kvLength } : {}) }, { y }, 'attn');
  g.addNode(node);
  g.outputs.push(y);
  expect(cannotLower(node, lowering)).toBeUndefined();
  runPipeline(g, [lowerAttentionPass(lowering)]);
  if (options.flags) g.outputs.push(g.nodes.flatMap((n) => n.outputs).find((o) => o.name.endsWith(`/${GUARD_FALLBACK_VALUE}`))!);
  return exportOnnx(newOnnxModel(g, { opset }));
}

/** float64 values rounded to float32, as onnxruntime reads them. */
export const f32 = (t: Float64Array): Float64Array => Float64Array.from(Float32Array.from(t));

/** Y (and the fallback flags, when the model outputs them) of a built site at length n, head size d. */
export async function runBhsdSite(model: Uint8Array, shape: Shape, x: QKV, n: number, d: number, kvLength?: number[]): Promise<{ y: Float64Array; flags?: Float64Array }> {
  const out = await runModel(model, {
    q: ortTensor('f32', [shape.B, shape.H, n, d], x.q),
    k: ortTensor('f32', [shape.B, shape.Hkv, n, d], x.k),
    v: ortTensor('f32', [shape.B, shape.Hkv, n, d], x.v),
    ...(kvLength ? { kv_length: ortTensor('i64', [shape.B], kvLength) } : {}),
  });
  const flags = Object.keys(out).find((k) => k !== 'y');
  return { y: ortValues(out.y!), ...(flags ? { flags: ortValues(out[flags]!) } : {}) };
}

/** The float64 reference of `p` (its spec, no guard) on the f32-rounded inputs, at length n. */
export function referenceBhsd(p: AttentionParams, shape: Shape, x: QKV, n: number, kvLength?: number[]): Float64Array {
  const d = p.headDim;
  return referenceAttention(p, {
    q: { shape: [shape.B, shape.H, n, d], data: f32(x.q) },
    k: { shape: [shape.B, shape.Hkv, n, d], data: f32(x.k) },
    v: { shape: [shape.B, shape.Hkv, n, d], data: f32(x.v) },
    ...(kvLength ? { kvLength } : {}),
  }).y.data;
}

export const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let t = 0; t < a.length; t++) m = Math.max(m, Math.abs(a[t]! - b[t]!));
  return m;
};
