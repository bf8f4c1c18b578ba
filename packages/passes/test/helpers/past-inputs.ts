// Inputs of a bhsd site with past keys (batch 1, H heads of size D), their float64 reference, and a run of a lowered
// model in onnxruntime: what the decode-route tests feed a site at a decode step and at a prefill call.

import { type AttentionSpec } from '@attnopt/ir';
import { referenceAttention } from '@attnopt/reference';
import { GUARD_FALLBACK_VALUE, guardFallbackLabel } from '../../src/lower/index.js';
import { guardedSiteParams } from './guarded-params.js';
import { ortTensor, ortValues, runModel } from './ort.js';

export interface PastInputs {
  readonly H: number;
  readonly D: number;
  /** Cached keys. */
  readonly P: number;
  /** New queries (and keys). */
  readonly nq: number;
  readonly q: Float64Array; // [H, nq, D]
  readonly k: Float64Array; // [H, P + nq, D]
  readonly v: Float64Array;
}

/**
 * Seeded inputs, float32-rounded: local attention (rotary-like features: query t peaked at keys near t, logits up to
 * 72); `outlier`: queries made non-negative and key 10 aligned with all of them (logits up to 80 on it).
 */
export function pastInputs(H: number, D: number, P: number, nq: number, seed: number, outlier = false): PastInputs {
  let state = seed >>> 0;
  const rand = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const T = P + nq;
  const w = Array.from({ length: D / 2 }, (_, f) => 0.0015 * 1.6 ** f);
  const feat = (t: number, c: number) => 6 * (c % 2 === 0 ? Math.cos(w[c >> 1]! * t) : Math.sin(w[c >> 1]! * t));
  const f32 = (n: number, f: (k: number) => number) => Float64Array.from(Float32Array.from({ length: n }, (_, k) => f(k)));
  const q = f32(H * nq * D, (k) => feat(P + (Math.floor(k / D) % nq), k % D) * (outlier ? Math.sign(feat(P + (Math.floor(k / D) % nq), k % D)) : 1));
  const k = f32(H * T * D, (k) => (outlier && Math.floor(k / D) % T === 10 ? 5.3 : feat(Math.floor(k / D) % T, k % D) + 0.025 * rand()));
  return { H, D, P, nq, q, k, v: f32(H * T * D, rand) };
}

/** Rows [from, to) of each head of [H, T, D] as [1, H, to - from, D]. */
function rows(x: PastInputs, t: Float64Array, from: number, to: number): Float64Array {
  const T = x.P + x.nq;
  const out = new Float64Array(x.H * (to - from) * x.D);
  for (let h = 0; h < x.H; h++) out.set(t.subarray((h * T + from) * x.D, (h * T + to) * x.D), h * (to - from) * x.D);
  return out;
}

/** The site's inputs: the new queries, keys and values, and the cached keys and values. */
export function pastParts(x: PastInputs) {
  const T = x.P + x.nq;
  return { q: x.q, k: rows(x, x.k, x.P, T), v: rows(x, x.v, x.P, T), pastKey: rows(x, x.k, 0, x.P), pastValue: rows(x, x.v, 0, x.P) };
}

/** The float64 reference of `spec` over the inputs ([1, H, nq, D]). */
export function pastReference(spec: AttentionSpec, x: PastInputs): Float64Array {
  const t = (d: Float64Array, n: number) => ({ shape: [1, x.H, n, x.D], data: d });
  const s = pastParts(x);
  return referenceAttention(guardedSiteParams(x.H, x.D, spec), { q: t(s.q, x.nq), k: t(s.k, x.nq), v: t(s.v, x.nq), pastKey: t(s.pastKey, x.P), pastValue: t(s.pastValue, x.P) }).y.data;
}

export interface FallbackFlags {
  readonly dims: readonly number[];
  readonly values: Float64Array;
}

/** Runs a model with inputs q, k, v, past_key, past_value: its output y and its fallback flags (label or '' -> flags). */
export async function runPast(model: Uint8Array, x: PastInputs): Promise<{ y: Float64Array; flags: Map<string, FallbackFlags> }> {
  const s = pastParts(x);
  const t = (d: Float64Array, n: number) => ortTensor('f32', [1, x.H, n, x.D], d);
  const out = await runModel(model, { q: t(s.q, x.nq), k: t(s.k, x.nq), v: t(s.v, x.nq), past_key: t(s.pastKey, x.P), past_value: t(s.pastValue, x.P) });
  const flags = new Map<string, FallbackFlags>();
  for (const [name, v] of Object.entries(out)) {
    const label = name.endsWith(`/${GUARD_FALLBACK_VALUE}`) ? '' : guardFallbackLabel(name);
    if (label !== undefined) flags.set(label, { dims: v.dims, values: ortValues(v) });
  }
  return { y: ortValues(out.y!), flags };
}

export const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let t = 0; t < a.length; t++) m = Math.max(m, Math.abs(a[t]! - b[t]!));
  return m;
};
