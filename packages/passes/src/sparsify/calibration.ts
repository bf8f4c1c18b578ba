// The calibration data the sparsify pass consumes: per attention site, samples of the site's Q, K, V (and
// additive bias) as plain data in the site's layout. The calibrate step (packages/core) produces these.

import { type AttentionParams, kvHeadOf } from '@attnopt/ir';

/** A dense tensor as plain data, row-major. */
export interface CalibrationTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array | Float64Array | readonly number[];
}

/** One run of the model: the inputs of the site in params.layout (packed-qkv: Q holds Q, K and V; k, v absent). */
export interface CalibrationSample {
  readonly q: CalibrationTensor;
  readonly k?: CalibrationTensor;
  readonly v?: CalibrationTensor;
  /** Additive float bias, rank 1..4, broadcast to [batch, numHeads, nq, nk] (-inf = masked). */
  readonly bias?: CalibrationTensor;
  /** Past keys and values [batch, kvNumHeads, past, headDim] whatever the layout: the keys are past ⊕ this call's. */
  readonly pastKey?: CalibrationTensor;
  readonly pastValue?: CalibrationTensor;
}

/** The samples of one site; `id` is `site<k>`, k counting Attention nodes in graph.allNodes() order. */
export interface SiteCalibration {
  readonly id: string;
  readonly samples: readonly CalibrationSample[];
}

/** Q, K, V of one (batch, query head) in float64, row-major, with what the scores need. */
export interface HeadData {
  readonly q: Float64Array;
  readonly k: Float64Array;
  readonly v: Float64Array;
  readonly nq: number;
  /** All keys: the past keys, then this call's. */
  readonly nk: number;
  /** Past keys before this call's (query i sits at past + i under the `past` alignment); absent: 0. */
  readonly past?: number;
  readonly d: number;
  readonly dv: number;
  readonly scale: number;
  readonly softcap: number;
  /** Writes the bias of query row i into `out` (nk entries); absent without a bias. */
  readonly biasRow?: (i: number, out: Float64Array) => void;
}

function need(t: CalibrationTensor | undefined, what: string): CalibrationTensor {
  if (!t) throw new Error(`calibration sample: ${what} is missing`);
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (n !== t.data.length) throw new Error(`calibration sample: ${what} has ${t.data.length} values for shape [${t.shape.join(', ')}]`);
  return t;
}

/** Rows s of head `h` (width `w`, starting at column `col0` of a [B, S, width] tensor or in bhsd). */
function gather(t: CalibrationTensor, layout: AttentionParams['layout'], b: number, h: number, heads: number, w: number, col0: number): { data: Float64Array; n: number } {
  const out = (n: number) => new Float64Array(n * w);
  if (layout === 'bhsd') {
    const [, H, S, D] = t.shape as [number, number, number, number];
    if (H !== heads || D !== w) throw new Error(`calibration sample: bhsd tensor [${t.shape.join(', ')}] does not hold ${heads} heads of ${w}`);
    const o = out(S);
    for (let s = 0; s < S; s++) for (let c = 0; c < w; c++) o[s * w + c] = Number(t.data[((b * H + h) * S + s) * D + c]);
    return { data: o, n: S };
  }
  // bsd, bshd and packed-qkv share [B, S, ...] row-major with the heads' columns side by side
  const S = t.shape[1]!;
  const width = t.shape.slice(2).reduce((a, x) => a * x, 1);
  const o = out(S);
  const base = col0 + h * w;
  for (let s = 0; s < S; s++) for (let c = 0; c < w; c++) o[s * w + c] = Number(t.data[(b * S + s) * width + base + c]);
  return { data: o, n: S };
}

/** A row reader for a bias broadcast (right-aligned, size-1 axes repeat) to [batch, heads, nq, nk]. */
function biasReader(t: CalibrationTensor, b: number, h: number): (i: number, out: Float64Array) => void {
  const shape = [1, 1, 1, 1].slice(0, 4 - t.shape.length).concat(t.shape);
  const [sb, sh, si, sj] = shape as [number, number, number, number];
  const stride = [sh * si * sj, si * sj, sj, 1];
  const off = (sb === 1 ? 0 : b) * stride[0]! + (sh === 1 ? 0 : h) * stride[1]!;
  return (i, out) => {
    const row = off + (si === 1 ? 0 : i) * stride[2]!;
    for (let j = 0; j < out.length; j++) out[j] = Number(t.data[row + (sj === 1 ? 0 : j)]);
  };
}

function concatRows(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** The batch size of a sample. */
export function sampleBatch(sample: CalibrationSample): number {
  return need(sample.q, 'q').shape[0]!;
}

/** The data of (batch b, query head h) of a sample; K and V come from h's key/value head (GQA). */
export function headData(params: AttentionParams, sample: CalibrationSample, b: number, h: number): HeadData {
  const { layout, numHeads, kvNumHeads, headDim: d, vHeadDim: dv } = params;
  const kvh = kvHeadOf(params, h);
  const q = need(sample.q, 'q');
  let Q, K, V;
  if (layout === 'packed-qkv') {
    Q = gather(q, 'bsd', b, h, numHeads, d, 0);
    K = gather(q, 'bsd', b, kvh, kvNumHeads, d, numHeads * d);
    V = gather(q, 'bsd', b, kvh, kvNumHeads, dv, (numHeads + kvNumHeads) * d);
  } else {
    Q = gather(q, layout, b, h, numHeads, d, 0);
    K = gather(need(sample.k, 'k'), layout, b, kvh, kvNumHeads, d, 0);
    V = gather(need(sample.v, 'v'), layout, b, kvh, kvNumHeads, dv, 0);
  }
  if (K.n !== V.n) throw new Error(`calibration sample: K has ${K.n} keys, V ${V.n}`);
  if ((sample.pastKey === undefined) !== (sample.pastValue === undefined)) throw new Error('calibration sample: pastKey and pastValue come together');
  if (sample.pastKey && sample.pastValue) {
    const pk = gather(need(sample.pastKey, 'pastKey'), 'bhsd', b, kvh, kvNumHeads, d, 0);
    const pv = gather(need(sample.pastValue, 'pastValue'), 'bhsd', b, kvh, kvNumHeads, dv, 0);
    if (pk.n !== pv.n) throw new Error(`calibration sample: past K has ${pk.n} keys, past V ${pv.n}`);
    K = { data: concatRows(pk.data, K.data), n: pk.n + K.n };
    V = { data: concatRows(pv.data, V.data), n: pv.n + V.n };
  }
  const past = sample.pastKey ? sample.pastKey.shape[2]! : 0;
  return {
    q: Q.data,
    k: K.data,
    v: V.data,
    nq: Q.n,
    nk: K.n,
    past,
    d,
    dv,
    scale: params.scale,
    softcap: params.softcap,
    ...(sample.bias ? { biasRow: biasReader(need(sample.bias, 'bias'), b, h) } : {}),
  };
}
