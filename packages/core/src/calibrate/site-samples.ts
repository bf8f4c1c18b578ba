// What calibration hands to the passes: per site, its parameters and the tensors it saw, as plain data
// (typed arrays and numbers, no onnxruntime types), so passes can consume it without depending on a runtime.

import type { AttentionParams } from '@attnopt/ir';

export interface SiteTensor {
  /** The dtype the model computes in ('f32', 'f64', 'f16' widened to f32 data, 'bool' as 0/1). */
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly data: Float32Array | Float64Array;
}

export interface SiteDimsSeen {
  readonly batch: number;
  /** Query positions. */
  readonly nq: number;
  /** Key positions of this call (past keys not included). */
  readonly nk: number;
  /** Cached keys before this call (0 without past K/V). */
  readonly past: number;
}

/** The tensors one site saw on one calibration sample, in the site's layout (params.layout). */
export interface SiteSample {
  readonly q: SiteTensor;
  readonly k?: SiteTensor;
  readonly v?: SiteTensor;
  /** Additive bias or boolean keep-mask (dtype 'bool'), as the model computed it. */
  readonly bias?: SiteTensor;
  readonly pastKey?: SiteTensor;
  readonly pastValue?: SiteTensor;
  /** The site's output as the original model computed it (when collected). */
  readonly y?: SiteTensor;
  readonly dims: SiteDimsSeen;
}

export interface SiteSamples {
  /** `site<k>` in graph order, as inspectModel numbers sites. */
  readonly id: string;
  readonly params: AttentionParams;
  /** The model values the tensors were read from, by role (q, k, v, bias, pastKey, pastValue, y). */
  readonly values: Readonly<Record<string, string>>;
  readonly samples: SiteSample[];
  /** Why this site has no samples (e.g. it sits in a subgraph), when it has none. */
  readonly skipped?: string;
}

/** Batch, query and key lengths of a sample from Q/K shapes in `layout`. */
export function siteDimsOf(params: AttentionParams, q: readonly number[], k: readonly number[] | undefined, pastKey: readonly number[] | undefined): SiteDimsSeen {
  const seqAxis = params.layout === 'bhsd' ? 2 : 1;
  const nq = q[seqAxis] ?? 0;
  return { batch: q[0] ?? 0, nq, nk: k === undefined ? nq : (k[seqAxis] ?? 0), past: pastKey?.[2] ?? 0 };
}

/** Bytes held by one sample's tensors. */
export const siteSampleBytes = (s: SiteSample): number =>
  [s.q, s.k, s.v, s.bias, s.pastKey, s.pastValue, s.y].reduce((n, t) => n + (t?.data.byteLength ?? 0), 0);
