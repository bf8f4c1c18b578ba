// Layouts of Q, K, V and Y (see AttentionLayout in @attnopt/ir), converted to and from [batch, heads, seq, dim].
//
// - bsd:  [batch, seq, heads * dim], head-major inside the last axis (ONNX 3D inputs);
// - bhsd: [batch, heads, seq, dim] (ONNX 4D inputs);
// - bshd: [batch, seq, heads, dim];
// - packed-qkv: Q is [batch, seq, (numHeads + 2 * kvNumHeads) * headDim] holding, along the last axis,
//   the query heads, then the key heads, then the value heads (each head-major); K and V are absent.
// Y uses the layout of Q, except packed-qkv, whose Y is bsd: [batch, seq, numHeads * vHeadDim].
// past_key / past_value and present_key / present_value are always bhsd: [batch, kvNumHeads, seq, dim].
// A head size left to run time (headDim / vHeadDim 0, bhsd only) is read from the arrays: see withHeadDims.

import { type AttentionLayout, type AttentionParams, RUNTIME_HEAD_DIM } from '@attnopt/ir';
import { type Tensor64, transpose } from './tensor.js';

/** Q, K, V in bhsd, as the reference computes on them. */
export interface HeadsView {
  readonly batch: number;
  readonly nq: number;
  readonly nkNew: number;
  readonly q: Tensor64;
  readonly k: Tensor64;
  readonly v: Tensor64;
}

function expectShape(name: string, t: Tensor64, want: readonly number[]): void {
  if (t.shape.length !== want.length || t.shape.some((d, k) => d !== want[k])) {
    throw new Error(`attention input ${name} must have shape [${want.join(', ')}], got [${t.shape.join(', ')}]`);
  }
}

/** [batch, seq, heads * dim] or [batch, seq, heads, dim] -> [batch, heads, seq, dim]. */
function toBhsd(name: string, t: Tensor64, layout: AttentionLayout, heads: number, dim: number): Tensor64 {
  switch (layout) {
    case 'bhsd':
      if (t.shape.length !== 4) throw new Error(`attention input ${name} (bhsd) must have rank 4, got [${t.shape.join(', ')}]`);
      expectShape(name, t, [t.shape[0]!, heads, t.shape[2]!, dim]);
      return t;
    case 'bshd':
      if (t.shape.length !== 4) throw new Error(`attention input ${name} (bshd) must have rank 4, got [${t.shape.join(', ')}]`);
      expectShape(name, t, [t.shape[0]!, t.shape[1]!, heads, dim]);
      return transpose(t, [0, 2, 1, 3]);
    case 'bsd':
    case 'packed-qkv': {
      if (t.shape.length !== 3) throw new Error(`attention input ${name} (${layout}) must have rank 3, got [${t.shape.join(', ')}]`);
      expectShape(name, t, [t.shape[0]!, t.shape[1]!, heads * dim]);
      return transpose({ shape: [t.shape[0]!, t.shape[1]!, heads, dim], data: t.data }, [0, 2, 1, 3]);
    }
  }
}

/** Slices [batch, seq, width] along the last axis: columns [from, from + count). */
function sliceLast(t: Tensor64, from: number, count: number): Tensor64 {
  const [b, s, w] = t.shape as [number, number, number];
  const out = new Float64Array(b * s * count);
  for (let r = 0; r < b * s; r++) out.set(t.data.subarray(r * w + from, r * w + from + count), r * count);
  return { shape: [b, s, count], data: out };
}

/**
 * `p` with the head sizes it leaves to run time (RUNTIME_HEAD_DIM, bhsd only) read from the arrays: headDim
 * from Q's last axis, vHeadDim from V's (else from past value's when V is absent). Static sizes stay as they
 * are (headsView checks them). K and past K must then agree with Q, which headsView and the past concat check.
 */
export function withHeadDims(p: AttentionParams, q: Tensor64, v?: Tensor64, pastValue?: Tensor64): AttentionParams {
  if (p.headDim !== RUNTIME_HEAD_DIM && p.vHeadDim !== RUNTIME_HEAD_DIM) return p;
  if (p.layout !== 'bhsd') throw new Error(`head sizes read at run time need the bhsd layout, got ${p.layout}`);
  const last = (name: string, t: Tensor64 | undefined): number => {
    if (t === undefined || t.shape.length !== 4) {
      throw new Error(`attention input ${name} (bhsd) must have rank 4 to give the head size read at run time, got ${t ? `[${t.shape.join(', ')}]` : 'none'}`);
    }
    return t.shape[3]!;
  };
  return {
    ...p,
    headDim: p.headDim === RUNTIME_HEAD_DIM ? last('Q', q) : p.headDim,
    vHeadDim: p.vHeadDim === RUNTIME_HEAD_DIM ? last('V', v ?? pastValue) : p.vHeadDim,
  };
}

/** Q, K, V of one call in bhsd, checked against the params (head sizes read at run time: see withHeadDims). */
export function headsView(params: AttentionParams, q: Tensor64, k?: Tensor64, v?: Tensor64): HeadsView {
  const p = withHeadDims(params, q, v);
  let qh: Tensor64;
  let kh: Tensor64;
  let vh: Tensor64;
  if (p.layout === 'packed-qkv') {
    if (k !== undefined || v !== undefined) throw new Error('packed-qkv layout: K and V must be absent (they are packed into Q)');
    const width = (p.numHeads + 2 * p.kvNumHeads) * p.headDim;
    if (q.shape.length !== 3 || q.shape[2] !== width) {
      throw new Error(`packed-qkv input must have shape [batch, seq, ${width}], got [${q.shape.join(', ')}]`);
    }
    const qCols = p.numHeads * p.headDim;
    const kvCols = p.kvNumHeads * p.headDim;
    qh = toBhsd('Q', sliceLast(q, 0, qCols), 'bsd', p.numHeads, p.headDim);
    kh = toBhsd('K', sliceLast(q, qCols, kvCols), 'bsd', p.kvNumHeads, p.headDim);
    vh = toBhsd('V', sliceLast(q, qCols + kvCols, kvCols), 'bsd', p.kvNumHeads, p.vHeadDim);
  } else {
    if (k === undefined || v === undefined) throw new Error(`${p.layout} layout: K and V are required`);
    qh = toBhsd('Q', q, p.layout, p.numHeads, p.headDim);
    kh = toBhsd('K', k, p.layout, p.kvNumHeads, p.headDim);
    vh = toBhsd('V', v, p.layout, p.kvNumHeads, p.vHeadDim);
  }
  const batch = qh.shape[0]!;
  if (kh.shape[0] !== batch || vh.shape[0] !== batch) throw new Error('attention inputs Q, K, V must have the same batch size');
  if (kh.shape[2] !== vh.shape[2]) throw new Error(`K has ${kh.shape[2]} keys but V has ${vh.shape[2]}`);
  return { batch, nq: qh.shape[2]!, nkNew: kh.shape[2]!, q: qh, k: kh, v: vh };
}

/** Y from [batch, heads, nq, vHeadDim] into the output layout of `layout`. */
export function outputFromBhsd(y: Tensor64, layout: AttentionLayout): Tensor64 {
  const [b, h, s, d] = y.shape as [number, number, number, number];
  switch (layout) {
    case 'bhsd':
      return y;
    case 'bshd':
      return transpose(y, [0, 2, 1, 3]);
    case 'bsd':
    case 'packed-qkv': {
      const t = transpose(y, [0, 2, 1, 3]);
      return { shape: [b, s, h * d], data: t.data };
    }
  }
}

/** Converts a bhsd tensor into `layout` (for tests and backends building inputs): bsd, bshd or bhsd. */
export function fromBhsd(t: Tensor64, layout: Exclude<AttentionLayout, 'packed-qkv'>): Tensor64 {
  return outputFromBhsd(t, layout);
}

/** Packs bhsd Q, K, V into one packed-qkv tensor [batch, seq, (numHeads + 2 kvNumHeads) * headDim]. */
export function packQkv(q: Tensor64, k: Tensor64, v: Tensor64): Tensor64 {
  const parts = [q, k, v].map((t) => outputFromBhsd(t, 'bsd'));
  const [b, s] = parts[0]!.shape as [number, number];
  if (parts.some((t) => t.shape[0] !== b || t.shape[1] !== s)) throw new Error('packQkv: Q, K, V need the same batch and seq');
  const width = parts.reduce((a, t) => a + t.shape[2]!, 0);
  const out = new Float64Array(b * s * width);
  for (let r = 0; r < b * s; r++) {
    let off = r * width;
    for (const t of parts) {
      const w = t.shape[2]!;
      out.set(t.data.subarray(r * w, (r + 1) * w), off);
      off += w;
    }
  }
  return { shape: [b, s, width], data: out };
}
