// Low-rank specs as MatMuls with constant projections drawn from the spec's seed, as @attnopt/ir defines them
// (linformerEF, performerW in spec/semantics/: the same draws as the reference).
//   linformer(r, seed): softmax(s Q (E K)ᵀ) (F V), E and F r x nk constants: needs a static key count.
//   performer(m, seed): phi(x) = m^-1/2 exp(W x - |x|²/2) on x = sqrt(s) q, sqrt(s) k;
//                       out = phi(Q) (phi(K)ᵀ V) / phi(Q) (phi(K)ᵀ 1): linear in n.
//   nystrom(m):        F A⁺ (G V) with segment-mean landmarks, A⁺ by Newton–Schulz steps (nystrom.ts).

import { type DType, type Linformer, linformerEF, type Nystrom, type Performer, performerW, Tensor, type Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';
import { nystromAttention } from './nystrom.js';

export interface LowRankInputs {
  readonly spec: Linformer | Performer | Nystrom;
  /** [B, H, S, D], [B, H, T, D], [B, H, T, Dv]: heads already repeated for GQA. */
  readonly q: Value;
  readonly k: Value;
  readonly v: Value;
  readonly headDim: number;
  readonly dtype: DType;
  readonly scale: number;
  /** The present key count when static (Linformer needs it). */
  readonly keys?: number;
  readonly opset: number;
  /** Newton–Schulz steps of Nystrom's pseudo-inverse (default NYSTROM_PINV_STEPS). */
  readonly nystromSteps?: number;
}

/** Why a low-rank spec cannot be lowered here, or undefined. */
export function lowRankBlocker(spec: Linformer | Performer | Nystrom, keys: number | undefined, scale: number): string | undefined {
  if (spec.kind === 'linformer' && keys === undefined) {
    return 'linformer projections are rank x nk constants: the key count must be static (it is symbolic)';
  }
  if (spec.kind === 'performer' && !(scale >= 0)) return `performer needs scale >= 0, got ${scale}`;
  return undefined;
}

/** The low-rank attention output [B, H, S, Dv]. */
export function lowRankAttention(b: NodeBuilder, x: LowRankInputs): Value {
  const { spec, dtype } = x;
  const constant = (what: string, shape: number[], values: ArrayLike<number>) => b.constant(what, Tensor.fromValues(dtype, shape, Array.from(values)));
  const tr = (t: Value, what: string) => b.transpose(t, [0, 1, 3, 2], what);
  if (spec.kind === 'nystrom') {
    const steps = x.nystromSteps;
    return nystromAttention(b, { landmarks: spec.landmarks, q: x.q, k: x.k, v: x.v, dtype, scale: x.scale, opset: x.opset, ...(steps !== undefined ? { steps } : {}) });
  }
  if (spec.kind === 'linformer') {
    const nk = x.keys!;
    const r = spec.rank;
    const ef = linformerEF(r, spec.seed, nk);
    const e = constant('linformer_e', [r, nk], ef.e);
    const f = constant('linformer_f', [r, nk], ef.f);
    const ek = b.op('MatMul', [e, x.k], 'linformer_ek'); // [B, H, r, D]
    const fv = b.op('MatMul', [f, x.v], 'linformer_fv'); // [B, H, r, Dv]
    const logits = b.op('Mul', [b.op('MatMul', [x.q, tr(ek, 'linformer_ek_t')], 'linformer_qk'), b.scalar('linformer_scale', dtype, x.scale)], 'linformer_scores');
    const p = b.op('Softmax', [logits], 'linformer_softmax', { axis: { type: 'int', value: -1n } });
    return b.op('MatMul', [p, fv], 'linformer_y');
  }
  const d = x.headDim;
  const m = spec.features;
  const wT = constant('performer_w_t', [d, m], transpose(performerW(m, d, spec.seed, spec.orthogonal), m, d));
  const root = b.scalar('performer_root_scale', dtype, Math.sqrt(x.scale));
  const half = constant('performer_half_ones', [d, 1], Array(d).fill(0.5));
  const norm = b.scalar('performer_norm', dtype, 1 / Math.sqrt(m));
  const phi = (t: Value, what: string) => {
    const xs = b.op('Mul', [t, root], `${what}_scaled`);
    const halfSq = b.op('MatMul', [b.op('Mul', [xs, xs], `${what}_sq`), half], `${what}_half_norm`); // [.., n, 1]
    const proj = b.op('MatMul', [xs, wT], `${what}_proj`);
    return b.op('Mul', [b.op('Exp', [b.op('Sub', [proj, halfSq], `${what}_exponent`)], `${what}_exp`), norm], what);
  };
  const pq = phi(x.q, 'performer_phi_q'); // [B, H, S, m]
  const pkT = tr(phi(x.k, 'performer_phi_k'), 'performer_phi_k_t'); // [B, H, m, T]
  const kv = b.op('MatMul', [pkT, x.v], 'performer_kv'); // [B, H, m, Dv]
  const kSum = x.opset >= 13
    ? b.op('ReduceSum', [pkT, b.ints('performer_sum_axes', [3])], 'performer_k_sum', { keepdims: { type: 'int', value: 1n } })
    : b.op('ReduceSum', [pkT], 'performer_k_sum', { axes: { type: 'ints', value: [3n] }, keepdims: { type: 'int', value: 1n } });
  const num = b.op('MatMul', [pq, kv], 'performer_num');
  const den = b.op('MatMul', [pq, kSum], 'performer_den');
  return b.op('Div', [num, den], 'performer_y');
}

function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j]!;
  return out;
}
