// The generated flash-attention block kernels: one WebAssembly SIMD128 module and one plain JavaScript
// function per KernelShape, both with the same contract over one (shared) linear memory, so the host
// driver and the worker pool run either.
//
// attend(qPtr, outPtr, blocksPtr, nBlocks, scratchPtr, rows), all byte addresses (16-byte aligned):
//   Q rows    at qPtr + r · qStride · 4: blockQ rows of dPad f32 (unscaled; the kernel applies the scale);
//   block list at blocksPtr: nBlocks entries of 3 i32: kPtr (blockK rows of K, row j at kPtr + j · kStride · 4),
//             vPtr (blockK rows of V, stride vStride), tilePtr ([blockQ][blockK] f32 additive mask/bias in
//             natural units, values at or below -1e29 mask; 0 = none: a Full block, no mask work);
//   Y rows    at outPtr + r · oStride · 4 for r < rows (1..blockQ; rows past it are not computed):
//             the normalized output rows (dvOut f32 each);
//   scratch   at scratchPtr (scratchBytes): the P V accumulator O [blockQ][dvPad], scores, running max, sum.
// Online softmax per row: m' = max(m, max_j s_j); O = O e^(m - m') + Σ_j e^(s_j - m') v_j; l likewise.
// Masked scores are MASKED (-1e30, finite so that e^(s - m) never sees inf - inf), whatever the key read held (a
// NaN there stays out of the row); a row whose final max
// is still below -1e29 kept no key and is written as 0 (ONNX Attention).
//
// The WebAssembly kernel works on strips of 4 query rows per key block (see wasm/wasm-attention.ts): S = Q Kᵀ
// by 2-row x 4-key dot-product tiles over the head dim, the softmax of the strip in base 2 (one fast
// exp2 per score), then O = α O + P V by 4-row x 8-column tiles over the keys.

import { checkKernelShape, fullKernelShape, kernelCacheKey, type KernelShape, MASKED, ROW_EMPTY, ROW_UNSET, scratchBytes } from './wasm/kernel-shape.js';
import { wasmAttentionModule } from './wasm/wasm-attention.js';
import { wasmGuardedModule } from './wasm/wasm-guard.js';
import type { MaskSpec } from '@attnopt/ir';
import { checkGuard, ENTRY_WORDS, GUARD_ITEM, GUARD_ITEM_WORDS, GUARD_SUMMARIES, type GuardOptions, guardScratch, segmentFloats } from './guard/guard-shape.js';

export {
  checkKernelShape,
  type FullKernelShape,
  fullKernelShape,
  kernelCacheKey,
  type KernelShape,
  MASKED,
  ROW_EMPTY,
  ROW_UNSET,
  scratchBytes,
} from './wasm/kernel-shape.js';

/** The WebAssembly SIMD128 kernel `attend` for one KernelShape. */
export function wasmAttentionKernel(shape: KernelShape): { readonly cacheKey: string; readonly bytes: Uint8Array<ArrayBuffer> } {
  checkKernelShape(shape);
  const cacheKey = kernelCacheKey('wasm', shape);
  return { cacheKey, bytes: wasmAttentionModule(fullKernelShape(shape), cacheKey) };
}

/** The JavaScript source of `attend` for one KernelShape: `(F, I, q, out, blocks, nBlocks, scratch, rows) => void`. */
export function jsAttentionKernelSource(shape: KernelShape, d: number, dv: number): string {
  checkKernelShape(shape);
  const { blockQ: BQ, blockK: BK, dvPad: DVP, softcap, scale, qStride: QS, kStride: KS, vStride: VS, oStride: OS } = fullKernelShape(shape);
  const qLoads = Array.from({ length: d }, (_, c) => `const q${c} = F[qr + ${c}];`).join(' ');
  const dot = Array.from({ length: d }, (_, c) => `q${c} * F[kj + ${c}]`).join(' + ');
  const pv = Array.from({ length: dv }, (_, c) => `F[o + ${c}] += p * F[vj + ${c}];`).join(' ');
  return `"use strict";
// ${kernelCacheKey('js', shape)} d=${d} dv=${dv}
return function attend(F, I, q, out, blocks, nBlocks, scratch, rows) {
  const O = scratch >> 2, S = O + ${BQ * DVP}, M = S + ${BQ * BK}, L = M + ${BQ}, Q = q >> 2, Y = out >> 2;
  for (let r = 0; r < ${BQ}; r++) { F[M + r] = ${ROW_UNSET}; F[L + r] = 0; }
  F.fill(0, O, O + ${BQ * DVP});
  for (let b = 0; b < nBlocks; b++) {
    const e = (blocks >> 2) + 3 * b;
    const K = I[e] >> 2, V = I[e + 1] >> 2, T = I[e + 2] >> 2;
    for (let r = 0; r < rows; r++) {
      const qr = Q + r * ${QS}; ${qLoads}
      const sr = S + r * ${BK};
      let mx = ${ROW_UNSET};
      for (let j = 0; j < ${BK}; j++) {
        const kj = K + j * ${KS};
        let s = (${dot}) * ${scale};
        ${softcap > 0 ? `s = ${softcap} * Math.tanh(s / ${softcap});` : ''}
        // a masked key's score is MASKED whatever it read (a NaN padding key plus the mask would be NaN)
        if (T !== 0) { const t = F[T + r * ${BK} + j]; s = t <= ${ROW_EMPTY} ? ${MASKED} : s + t; }
        F[sr + j] = s;
        if (s > mx) mx = s;
      }
      const mold = F[M + r];
      if (mx > mold) {
        const alpha = Math.exp(mold - mx);
        F[M + r] = mx; F[L + r] *= alpha;
        const o = O + r * ${DVP};
        for (let c = 0; c < ${dv}; c++) F[o + c] *= alpha;
      }
      const m = F[M + r];
      let sum = 0;
      for (let j = 0; j < ${BK}; j++) { const p = Math.exp(F[sr + j] - m); F[sr + j] = p; sum += p; }
      F[L + r] += sum;
    }
    for (let r = 0; r < rows; r++) {
      const o = O + r * ${DVP}, sr = S + r * ${BK};
      for (let j = 0; j < ${BK}; j++) {
        const p = F[sr + j];
        if (p === 0) continue;
        const vj = V + j * ${VS};
        ${pv}
      }
    }
  }
  for (let r = 0; r < rows; r++) {
    const o = O + r * ${DVP}, y = Y + r * ${OS};
    if (F[M + r] < ${ROW_EMPTY}) { for (let c = 0; c < ${dv}; c++) F[y + c] = 0; continue; }
    const inv = 1 / F[L + r];
    for (let c = 0; c < ${dv}; c++) F[y + c] = F[o + c] * inv;
  }
};`;
}

/** What each argument of `attend` is, for a shape (for manifests that describe a generated kernel). */
export function kernelBindings(shape: KernelShape): readonly { readonly name: string; readonly description: string }[] {
  const s = fullKernelShape(shape);
  const { blockQ: BQ, blockK: BK, dPad: DP, dvPad: DVP } = s;
  return [
    { name: 'q', description: `Q rows: ${BQ} rows of ${DP} f32 (zero-padded past the head dim), row stride ${s.qStride} f32, not scaled (the kernel multiplies Q Kᵀ by ${s.scale})` },
    { name: 'out', description: `Y rows: the first \`rows\` of ${BQ} rows, ${s.dvOut} f32 each, row stride ${s.oStride} f32: the normalized outputs` },
    {
      name: 'blocks',
      description:
        `key-block list: nBlocks entries of 3 i32: K block (${BK} rows of ${DP} f32, stride ${s.kStride}), V block (${BK} rows of ${DVP} f32 read, stride ${s.vStride}), ` +
        `mask tile (0: a full block; else [${BQ}][${BK}] f32 added to the scores, values at or below -1e29 mask)`,
    },
    { name: 'nBlocks', description: 'entries in the list: the non-empty key blocks of this query block under the spec' },
    { name: 'scratch', description: `${scratchBytes(s)} bytes per thread: P V accumulator, scores, running max and sum` },
    { name: 'rows', description: `query rows of this block that exist (1..${BQ}); only they are computed and written` },
  ];
}

export type AttendFn = (F: Float32Array, I: Int32Array, q: number, out: number, blocks: number, nBlocks: number, scratch: number, rows: number) => void;

export function jsAttentionKernel(shape: KernelShape, d: number, dv: number): AttendFn {
  return new Function(jsAttentionKernelSource(shape, d, dv))() as AttendFn;
}

/**
 * The guarded WebAssembly module for one KernelShape and budget (contract in guard/guard-shape.ts): exports
 * attend, certify, attendGuarded(item, scratch), summarize(k, n, out) and valueRange(v, n).
 */
export function wasmGuardedAttentionKernel(shape: KernelShape, epsilon: number): { readonly cacheKey: string; readonly bytes: Uint8Array<ArrayBuffer> } {
  checkKernelShape(shape);
  checkGuard({ epsilon });
  const cacheKey = `${kernelCacheKey('wasm', shape)}-guard${epsilon}`;
  return { cacheKey, bytes: wasmGuardedModule(fullKernelShape(shape), epsilon, cacheKey) };
}

/** What a guarded kernel's metadata records: tier, budget, summary segment, model mask, summaries used. */
export function guardMetadata(guard: GuardOptions, blockK: number): { tier: 'guarded'; epsilon: number; block: number; modelMask: MaskSpec; summaries: readonly string[] } {
  checkGuard(guard);
  return { tier: 'guarded', epsilon: guard.epsilon, block: guard.block ?? blockK, modelMask: guard.modelMask ?? { kind: 'dense' }, summaries: GUARD_SUMMARIES };
}

/** What each argument and record of `attendGuarded` is, for manifests. */
export function guardedKernelBindings(shape: KernelShape, nkBlocks: number): readonly { readonly name: string; readonly description: string }[] {
  const s = fullKernelShape(shape);
  const words = Object.entries(GUARD_ITEM).map(([k, v]) => `${v}: ${k}`).join(', ');
  return [
    { name: 'item', description: `byte address of one work item: ${GUARD_ITEM_WORDS} i32 words (${words}); the kernel writes flagged and recomputed` },
    { name: 'scratch', description: `${guardScratch(s, nkBlocks).bytes} bytes per thread: the plain kernel's scratch, row flags, lane offsets, one strip's fallback list` },
    { name: 'entries', description: `dropped segments of the query block: ${ENTRY_WORDS} words each (segment record address, count, rowLo, rowHi, max bias)` },
    { name: 'segments', description: `summary records of ${segmentFloats(s.dPad)} f32: per channel box centre, then half-width, then radius and largest key norm (built by summarize, or on the workers by summarizeItems before the items run)` },
    { name: 'cert', description: `${s.blockQ} f32 per item: m_hat per row, an upper bound on the row's dropped softmax mass` },
  ];
}
