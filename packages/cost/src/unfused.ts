// The kernels onnxruntime runs for a site that @attnopt/passes lowers densely (lowerAttention, where the IR's
// loweringChoice says 'dense'): one op per node of the emitted graph. The dense form builds the keep-mask
// densely (nq x nk booleans from Range and comparisons) and every score tensor (QKᵀ, masked logits,
// probabilities) is batch·heads·nq·nk floats. The banded and block-gathered forms are in lowered.ts.
// Assumes a dynamic sequence length (the mask is computed at run time, not constant-folded).

import type { AttentionParams, MaskSpec } from '@attnopt/ir';
import { type OpWork, work } from './ops.js';
import type { Extent } from './shape.js';

/** Keep-mask kernels of `spec` over nq x nk booleans (undefined mask: keeps everything). */
export function maskOps(spec: MaskSpec, sk: number): { ops: OpWork[]; masks: boolean } {
  const cmp = (what: string): OpWork => work('Compare', what, { bytes: sk }); // broadcast i64 index vectors -> bool [nq, nk]
  const and = (op: 'And' | 'Or', what: string): OpWork => work('And', `${op} ${what}`, { bytes: 3 * sk });
  switch (spec.kind) {
    case 'dense':
      return { ops: [], masks: false };
    case 'empty':
    case 'causal':
    case 'sinks':
      return { ops: [cmp(spec.kind)], masks: true };
    case 'global':
      return { ops: [cmp('global (Or of token tests)')], masks: true };
    case 'window':
      return { ops: [cmp('window >='), cmp('window <='), and('And', 'window')], masks: true };
    case 'dilated':
      return {
        ops: [
          cmp('window >='),
          cmp('window <='),
          and('And', 'window'),
          work('Sub', 'dilation distance (i64)', { bytes: 8 * sk }),
          work('Mod', 'dilation mod (i64)', { bytes: 16 * sk }),
          work('Compare', 'dilation hit', { bytes: 9 * sk }),
          and('And', 'dilated'),
        ],
        masks: true,
      };
    case 'union':
    case 'intersect': {
      const parts = spec.parts.map((p) => maskOps(p, sk));
      if (spec.kind === 'union' && parts.some((p) => !p.masks)) return { ops: parts.flatMap((p) => p.ops), masks: false };
      const defined = parts.filter((p) => p.masks);
      const ops = parts.flatMap((p) => p.ops);
      for (let k = 1; k < defined.length; k++) ops.push(and(spec.kind === 'union' ? 'Or' : 'And', spec.kind));
      return { ops, masks: defined.length > 0 };
    }
    case 'diff': {
      const base = maskOps(spec.base, sk);
      const minus = maskOps(spec.minus, sk);
      if (!minus.masks) return { ops: [...base.ops, ...minus.ops, cmp('no keys')], masks: true };
      const ops = [...base.ops, ...(base.masks ? [] : [cmp('all keys')]), ...minus.ops, work('Not', 'diff not', { bytes: 2 * sk }), and('And', 'diff')];
      return { ops, masks: true };
    }
    case 'blocks':
    case 'topkBlocks':
    case 'lsh':
      // not lowered yet: costed as an opaque keep-mask input of nq x nk booleans
      return { ops: [], masks: true };
  }
}

export interface UnfusedOptions {
  readonly graphOptimization: 'all' | 'disabled';
  readonly bias: 'none' | 'float' | 'bool';
  readonly kvLength: boolean;
}

/** The kernels of the lowered graph for a key-set spec, score work dense (nq x nk per head). */
export function unfusedMaskedOps(p: AttentionParams, spec: MaskSpec, x: Extent, o: UnfusedOptions): OpWork[] {
  const { B, H, d, dv, nq, nk, E } = x;
  const S = B * H * nq * nk;
  const sk = nq * nk;
  const ops: OpWork[] = presentOps(p, x, o.kvLength);
  const fusedScale = o.graphOptimization === 'all'; // Transpose and Mul by a scalar fold into FusedMatMul
  if (!fusedScale) ops.push(work('Transpose', 'Kᵀ', { bytes: 2 * E * B * H * nk * d }));
  ops.push(work('MatMul', 'scores Q Kᵀ', { flops: 2 * S * d, bytes: E * (B * H * nq * d + B * H * nk * d + S) }));
  if (!fusedScale) ops.push(work('Mul', 'scale', { bytes: 2 * E * S }));
  if (p.softcap > 0) {
    ops.push(work('Mul', 'softcap divide', { bytes: 2 * E * S }));
    ops.push(work('Tanh', 'softcap tanh', { bytes: 2 * E * S }));
    ops.push(work('Mul', 'softcap multiply', { bytes: 2 * E * S }));
  }
  if (o.bias === 'float') ops.push(work('Add', 'bias', { bytes: 2 * E * S + E * B * sk }));
  const mask = maskOps(spec, sk);
  let keepBytes = mask.masks ? sk : 0;
  const needsIndices = mask.masks || o.kvLength;
  if (needsIndices) {
    // Shape, Gather nq / nk, Range rows / cols, Unsqueeze, Sub (bottom-right): small ops
    for (const op of ['Shape', 'Gather', 'Gather', 'Range', 'Range', 'Unsqueeze', 'Sub']) ops.push(work(op, 'mask indices', { bytes: 8 * (nq + nk) }));
  }
  ops.push(...mask.ops);
  if (o.kvLength) {
    ops.push(work('Compare', 'kv length', { bytes: B * nk }));
    if (keepBytes > 0) ops.push(work('And', 'keep & kv length', { bytes: keepBytes + B * nk + B * sk }));
    keepBytes = keepBytes > 0 ? B * sk : B * nk;
  }
  if (o.bias === 'bool') {
    if (keepBytes > 0) ops.push(work('And', 'keep & bool bias', { bytes: keepBytes + 2 * B * sk }));
    keepBytes = B * sk;
  }
  const keep = keepBytes > 0;
  if (keep) ops.push(work('Where', 'masked logits', { bytes: keepBytes + 2 * E * S }));
  ops.push(work('Softmax', 'probabilities', { softmaxFlops: 5 * S, softmaxElements: S, bytes: 2 * E * S }));
  // fully masked rows zeroed on the probabilities when the node outputs them (scores), else on Y (S x Dv)
  const maskedRows = keep || o.bias !== 'none';
  const onProbs = maskedRows && p.scoresMode !== undefined;
  if (onProbs) {
    ops.push(work('IsNaN', 'fully masked rows', { bytes: E * S + S }));
    ops.push(work('Where', 'zero fully masked rows', { bytes: S + 2 * E * S }));
  }
  ops.push(work('MatMul', 'P V', { flops: 2 * S * dv, bytes: E * (S + B * H * nk * dv + B * H * nq * dv) }));
  if (maskedRows && !onProbs) {
    const Y = B * H * nq * dv;
    ops.push(work('IsNaN', 'fully masked rows', { bytes: E * Y + Y }));
    ops.push(work('Where', 'zero fully masked rows', { bytes: Y + 2 * E * Y }));
  }
  ops.push(...layoutOut(p, x));
  return ops;
}

/**
 * Heads split from the layout, past K/V concatenated, padding K/V out of reach (with kvLength), K/V heads repeated for GQA:
 * every lowered form starts so.
 */
export function presentOps(p: AttentionParams, x: Extent, kvLength = false): OpWork[] {
  const { B, H, Hkv, d, dv, nk, past, E } = x;
  const ops: OpWork[] = [...layoutIn(p, x)];
  if (past > 0) {
    ops.push(work('Concat', 'present key', { bytes: 2 * E * B * Hkv * nk * d }));
    ops.push(work('Concat', 'present value', { bytes: 2 * E * B * Hkv * nk * dv }));
  }
  if (kvLength) {
    // keys and values at or past kvLength[b] replaced by row kvLength[b] - 1 before any part reads them (padding may
    // hold anything): a row index [B, Hkv, nk, 1] and a GatherND over each
    const rows = B * Hkv * nk;
    ops.push(work('Expand', 'padding row index', { bytes: 8 * rows }));
    ops.push(work('GatherND', 'padding keys out of reach', { bytes: 2 * E * rows * d + 8 * rows }));
    ops.push(work('GatherND', 'padding values out of reach', { bytes: 2 * E * rows * dv + 8 * rows }));
  }
  if (H !== Hkv) {
    ops.push(work('Expand', 'repeat K heads (GQA)', { bytes: E * B * (Hkv + H) * nk * d }));
    ops.push(work('Expand', 'repeat V heads (GQA)', { bytes: E * B * (Hkv + H) * nk * dv }));
  }
  return ops;
}

/** Heads split from the layout (Reshape is a view; Transpose and Split copy). */
export function layoutIn(p: AttentionParams, x: Extent): OpWork[] {
  const { B, H, Hkv, d, dv, E } = x;
  const nNew = x.nk - x.past;
  const q = E * B * H * x.nq * d;
  const k = E * B * Hkv * nNew * d;
  const v = E * B * Hkv * nNew * dv;
  const t = (what: string, bytes: number) => work('Transpose', what, { bytes: 2 * bytes });
  switch (p.layout) {
    case 'bhsd':
      return [];
    case 'bshd':
      return [t('Q to bhsd', q), t('K to bhsd', k), t('V to bhsd', v)];
    case 'bsd':
      return [work('Reshape', 'Q heads', {}), work('Reshape', 'K heads', {}), work('Reshape', 'V heads', {}), t('Q to bhsd', q), t('K to bhsd', k), t('V to bhsd', v)];
    case 'packed-qkv':
      return [work('Reshape', 'QKV heads', {}), work('Split', 'Q, K, V', { bytes: 2 * (q + k + v) }), t('Q to bhsd', q), t('K to bhsd', k), t('V to bhsd', v)];
  }
}

/** The output back to the layout. */
export function layoutOut(p: AttentionParams, x: Extent): OpWork[] {
  const y = x.E * x.B * x.H * x.nq * x.dv;
  switch (p.layout) {
    case 'bhsd':
      return [];
    case 'bshd':
      return [work('Transpose', 'Y to bshd', { bytes: 2 * y })];
    default:
      return [work('Transpose', 'Y to bshd', { bytes: 2 * y }), work('Reshape', 'Y merge heads', {})];
  }
}
