// The generated flash-attention block kernels: one WebAssembly SIMD128 module and one plain JavaScript
// function per KernelShape, both with the same contract over one (shared) linear memory, so the host
// driver and the worker pool run either.
//
// attend(qPtr, outPtr, blocksPtr, nBlocks, scratchPtr), all byte addresses (16-byte aligned):
//   Q block   at qPtr:      [blockQ][dPad] f32, already multiplied by the scale;
//   Y block   at outPtr:    [blockQ][dvPad] f32 (the P V accumulator, finally the normalized rows);
//   block list at blocksPtr: nBlocks entries of 3 i32: ktPtr ([dPad][blockK] Kᵀ of the key block),
//             vPtr ([blockK][dvPad] V of the key block), tilePtr ([blockQ][blockK] additive mask/bias,
//             0 = none: a Full block, where no mask work is done);
//   scratch   at scratchPtr: S [blockQ][blockK], running max m [blockQ], running sum l [blockQ].
// Online softmax per row: m' = max(m, max_j s_j); O *= e^(m - m'); l = l e^(m - m') + Σ e^(s_j - m');
// O += P V. Masked scores are MASKED (-1e30, finite so that e^(s - m) never sees inf - inf); a row whose
// final max is still below -1e29 kept no key and is written as 0 (ONNX Attention).

import { ModuleBuilder, type FunctionBuilder } from './wasm/emitter.js';

export interface KernelShape {
  /** Query rows per block (a multiple of 4). */
  readonly blockQ: number;
  /** Keys per block (a multiple of 8). */
  readonly blockK: number;
  /** Head dim of Q and K as computed (a multiple of 4, zero-padded). */
  readonly dPad: number;
  /** Head dim of V and Y as computed (a multiple of 8, zero-padded). */
  readonly dvPad: number;
  /** softcap * tanh(s / softcap) on the scaled scores; 0 = none. */
  readonly softcap: number;
}

/** A masked score: finite, so that the online softmax never computes inf - inf. */
export const MASKED = -1e30;
const ROW_UNSET = -3e38;
const ROW_EMPTY = -1e29;

export function kernelCacheKey(kind: 'wasm' | 'js', s: KernelShape): string {
  return `attend-${kind}-q${s.blockQ}-k${s.blockK}-d${s.dPad}-dv${s.dvPad}-cap${s.softcap}`;
}

export function checkKernelShape(s: KernelShape): void {
  if (s.blockQ % 4 !== 0 || s.blockQ < 4) throw new Error(`blockQ must be a positive multiple of 4, got ${s.blockQ}`);
  if (s.blockK % 8 !== 0 || s.blockK < 8) throw new Error(`blockK must be a positive multiple of 8, got ${s.blockK}`);
  if (s.dPad % 4 !== 0 || s.dvPad % 8 !== 0) throw new Error('dPad must be a multiple of 4 and dvPad of 8');
}

// Cephes expf: 2^k · p(r), r = x - k ln2 in [-ln2/2, ln2/2], relative error about 1e-7.
const EXP_POLY = [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1];

/** Pops x (f32x4), pushes e^x per lane (0 below -87.3, clamped above 88.3). */
function emitExp(f: FunctionBuilder): void {
  f.local('ex', 'v128').local('ek', 'v128').local('er', 'v128');
  f.tee('ex').f32x4Const(88.3).f32x4Min().f32x4Const(-87.3).f32x4Max().tee('er');
  f.f32x4Const(Math.LOG2E).f32x4Mul().f32x4Nearest().set('ek');
  f.get('er').get('ek').f32x4Const(0.693359375).f32x4Mul().f32x4Sub();
  f.get('ek').f32x4Const(2.12194440e-4).f32x4Mul().f32x4Add().set('er');
  f.f32x4Const(EXP_POLY[0]!);
  for (const c of EXP_POLY.slice(1)) f.get('er').f32x4Mul().f32x4Const(c).f32x4Add();
  f.get('er').f32x4Mul().get('er').f32x4Mul().get('er').f32x4Add().f32x4Const(1).f32x4Add();
  f.get('ek').i32x4TruncSatF32x4S().i32(127).i32x4Splat().i32x4Add().i32(23).i32x4Shl().f32x4Mul();
  f.get('ex').f32x4Const(-87.3).f32x4Gt().v128And();
}

/** Pops a f32x4, pushes the max of its lanes (f32). */
function emitHorizontalMax(f: FunctionBuilder, tmp: string): void {
  f.set(tmp).get(tmp).f32x4ExtractLane(0).get(tmp).f32x4ExtractLane(1).f32Max();
  f.get(tmp).f32x4ExtractLane(2).get(tmp).f32x4ExtractLane(3).f32Max().f32Max();
}

function emitHorizontalSum(f: FunctionBuilder, tmp: string): void {
  f.set(tmp).get(tmp).f32x4ExtractLane(0).get(tmp).f32x4ExtractLane(1).f32Add();
  f.get(tmp).f32x4ExtractLane(2).get(tmp).f32x4ExtractLane(3).f32Add().f32Add();
}

/** The WebAssembly SIMD128 kernel `attend` for one KernelShape. */
export function wasmAttentionKernel(shape: KernelShape): { readonly cacheKey: string; readonly bytes: Uint8Array<ArrayBuffer> } {
  checkKernelShape(shape);
  const { blockQ: BQ, blockK: BK, dPad: DP, dvPad: DVP, softcap } = shape;
  const cacheKey = kernelCacheKey('wasm', shape);
  const m = new ModuleBuilder(cacheKey);
  const f = m.func('attend', { q: 'i32', out: 'i32', blocks: 'i32', nBlocks: 'i32', scratch: 'i32' });
  const S_BYTES = BQ * BK * 4;
  const NV = BK / 4;
  for (const n of ['kt', 'vp', 'tile', 'ep', 'qrow', 'srow', 'ktj', 'orow', 'vj', 'mp', 'trow']) f.local(n, 'i32');
  for (const n of ['mold', 'mnew', 'alpha']) f.local(n, 'f32');
  for (let r = 0; r < 4; r++) for (let h = 0; h < 2; h++) f.local(`acc${r}${h}`, 'v128');
  for (const n of ['k0', 'k1', 'qs', 'hv', 'sum', 'mv', 'av']) f.local(n, 'v128');
  for (let u = 0; u < NV; u++) f.local(`s${u}`, 'v128');

  // init: m = unset, l = 0, Y = 0
  f.forRange('r', 0, BQ, 1, (g) => {
    g.get('scratch').get('r').i32(4).i32Mul().i32Add().tee('mp').f32(ROW_UNSET).f32Store(S_BYTES);
    g.get('mp').f32(0).f32Store(S_BYTES + BQ * 4);
  });
  f.forRange('x', 0, BQ * DVP * 4, 16, (g) => {
    g.get('out').get('x').i32Add().f32x4Const(0).v128Store();
  });

  f.forRange('b', 0, 'nBlocks', 1, (g) => {
    g.get('blocks').get('b').i32(12).i32Mul().i32Add().tee('ep').i32Load(0).set('kt');
    g.get('ep').i32Load(4).set('vp');
    g.get('ep').i32Load(8).set('tile');

    // S = Q Kᵀ, register tile of 4 rows x 8 keys, SIMD over keys, unrolled over the head dim
    g.forRange('rt', 0, BQ, 4, (h) => {
      h.get('q').get('rt').i32(DP * 4).i32Mul().i32Add().set('qrow');
      h.get('scratch').get('rt').i32(BK * 4).i32Mul().i32Add().set('srow');
      h.forRange('jc', 0, BK, 8, (k) => {
        k.get('kt').get('jc').i32(4).i32Mul().i32Add().set('ktj');
        for (let c = 0; c < DP; c++) {
          k.get('ktj').v128Load(c * BK * 4).set('k0');
          k.get('ktj').v128Load(c * BK * 4 + 16).set('k1');
          for (let r = 0; r < 4; r++) {
            k.get('qrow').v128Load32Splat((r * DP + c) * 4).set('qs');
            for (let hh = 0; hh < 2; hh++) {
              const acc = `acc${r}${hh}`;
              if (c === 0) k.get('qs').get(`k${hh}`).f32x4Mul().set(acc);
              else k.get(acc).get('qs').get(`k${hh}`).f32x4Mul().f32x4Add().set(acc);
            }
          }
        }
        k.get('srow').get('jc').i32(4).i32Mul().i32Add().set('ktj');
        for (let r = 0; r < 4; r++) for (let hh = 0; hh < 2; hh++) k.get('ktj').get(`acc${r}${hh}`).v128Store(r * BK * 4 + hh * 16);
      });
    });

    // per row: softcap, mask tile, online softmax update
    g.forRange('r', 0, BQ, 1, (h) => {
      h.get('scratch').get('r').i32(BK * 4).i32Mul().i32Add().set('srow');
      for (let u = 0; u < NV; u++) {
        h.get('srow').v128Load(16 * u);
        if (softcap > 0) {
          // softcap * tanh(x / softcap) = softcap * (1 - 2 / (e^(2x / softcap) + 1))
          h.f32x4Const(2 / softcap).f32x4Mul();
          emitExp(h);
          h.f32x4Const(1).f32x4Add().set('hv').f32x4Const(2).get('hv').f32x4Div().set('hv');
          h.f32x4Const(1).get('hv').f32x4Sub().f32x4Const(softcap).f32x4Mul();
        }
        h.set(`s${u}`);
      }
      h.get('tile').if((t) => {
        t.get('tile').get('r').i32(BK * 4).i32Mul().i32Add().set('trow');
        for (let u = 0; u < NV; u++) t.get(`s${u}`).get('trow').v128Load(16 * u).f32x4Add().set(`s${u}`);
      });
      h.get('s0');
      for (let u = 1; u < NV; u++) h.get(`s${u}`).f32x4Max();
      emitHorizontalMax(h, 'hv');
      h.set('mnew');
      h.get('scratch').get('r').i32(4).i32Mul().i32Add().tee('mp').f32Load(S_BYTES).set('mold');
      h.get('mnew').get('mold').f32Gt().if((t) => {
        t.get('mold').get('mnew').f32Sub().f32x4Splat();
        emitExp(t);
        t.f32x4ExtractLane(0).set('alpha');
        t.get('mp').get('mnew').f32Store(S_BYTES);
        t.get('mp').get('mp').f32Load(S_BYTES + BQ * 4).get('alpha').f32Mul().f32Store(S_BYTES + BQ * 4);
        t.get('out').get('r').i32(DVP * 4).i32Mul().i32Add().set('orow');
        t.get('alpha').f32x4Splat().set('av');
        for (let u = 0; u < DVP / 4; u++) t.get('orow').get('orow').v128Load(16 * u).get('av').f32x4Mul().v128Store(16 * u);
      });
      h.get('mp').f32Load(S_BYTES).f32x4Splat().set('mv');
      for (let u = 0; u < NV; u++) {
        h.get(`s${u}`).get('mv').f32x4Sub();
        emitExp(h);
        h.set(`s${u}`).get('srow').get(`s${u}`).v128Store(16 * u);
        if (u === 0) h.get('s0').set('sum');
        else h.get('sum').get(`s${u}`).f32x4Add().set('sum');
      }
      h.get('mp').get('mp').f32Load(S_BYTES + BQ * 4).get('sum');
      emitHorizontalSum(h, 'hv');
      h.f32Add().f32Store(S_BYTES + BQ * 4);
    });

    // Y += P V: register tile of 4 rows x 8 value dims, SIMD over the value dim, unrolled over the keys
    g.forRange('rt', 0, BQ, 4, (h) => {
      h.get('scratch').get('rt').i32(BK * 4).i32Mul().i32Add().set('srow');
      h.get('out').get('rt').i32(DVP * 4).i32Mul().i32Add().set('orow');
      h.forRange('dc', 0, DVP, 8, (k) => {
        k.get('vp').get('dc').i32(4).i32Mul().i32Add().set('vj');
        k.get('orow').get('dc').i32(4).i32Mul().i32Add().set('ktj');
        for (let r = 0; r < 4; r++) for (let hh = 0; hh < 2; hh++) k.get('ktj').v128Load(r * DVP * 4 + hh * 16).set(`acc${r}${hh}`);
        for (let j = 0; j < BK; j++) {
          k.get('vj').v128Load(j * DVP * 4).set('k0');
          k.get('vj').v128Load(j * DVP * 4 + 16).set('k1');
          for (let r = 0; r < 4; r++) {
            k.get('srow').v128Load32Splat((r * BK + j) * 4).set('qs');
            for (let hh = 0; hh < 2; hh++) {
              const acc = `acc${r}${hh}`;
              k.get(acc).get('qs').get(`k${hh}`).f32x4Mul().f32x4Add().set(acc);
            }
          }
        }
        for (let r = 0; r < 4; r++) for (let hh = 0; hh < 2; hh++) k.get('ktj').get(`acc${r}${hh}`).v128Store(r * DVP * 4 + hh * 16);
      });
    });
  });

  // finish rows: Y /= l, or 0 where no key was kept
  f.forRange('r', 0, BQ, 1, (g) => {
    g.get('scratch').get('r').i32(4).i32Mul().i32Add().set('mp');
    g.get('out').get('r').i32(DVP * 4).i32Mul().i32Add().set('orow');
    g.get('mp').f32Load(S_BYTES).f32(ROW_EMPTY).f32Lt().if(
      (t) => {
        for (let u = 0; u < DVP / 4; u++) t.get('orow').f32x4Const(0).v128Store(16 * u);
      },
      (t) => {
        t.f32(1).get('mp').f32Load(S_BYTES + BQ * 4).f32Div().f32x4Splat().set('av');
        for (let u = 0; u < DVP / 4; u++) t.get('orow').get('orow').v128Load(16 * u).get('av').f32x4Mul().v128Store(16 * u);
      },
    );
  });
  return { cacheKey, bytes: m.build() };
}

/** The JavaScript source of `attend` for one KernelShape: `(F, I, q, out, blocks, nBlocks, scratch) => void`. */
export function jsAttentionKernelSource(shape: KernelShape, d: number, dv: number): string {
  checkKernelShape(shape);
  const { blockQ: BQ, blockK: BK, dPad: DP, dvPad: DVP, softcap } = shape;
  const qLoads = Array.from({ length: d }, (_, c) => `const q${c} = F[qr + ${c}];`).join(' ');
  const dot = Array.from({ length: d }, (_, c) => `q${c} * F[kj + ${c * BK}]`).join(' + ');
  const pv = Array.from({ length: dv }, (_, c) => `F[o + ${c}] += p * F[vj + ${c}];`).join(' ');
  return `"use strict";
// ${kernelCacheKey('js', shape)} d=${d} dv=${dv}
return function attend(F, I, q, out, blocks, nBlocks, scratch) {
  const S = scratch >> 2, M = S + ${BQ * BK}, L = M + ${BQ}, Q = q >> 2, O = out >> 2;
  for (let r = 0; r < ${BQ}; r++) { F[M + r] = ${ROW_UNSET}; F[L + r] = 0; }
  F.fill(0, O, O + ${BQ * DVP});
  for (let b = 0; b < nBlocks; b++) {
    const e = (blocks >> 2) + 3 * b;
    const KT = I[e] >> 2, V = I[e + 1] >> 2, T = I[e + 2] >> 2;
    for (let r = 0; r < ${BQ}; r++) {
      const qr = Q + r * ${DP}; ${qLoads}
      const sr = S + r * ${BK};
      let mx = ${ROW_UNSET};
      for (let j = 0; j < ${BK}; j++) {
        const kj = KT + j;
        let s = ${dot};
        ${softcap > 0 ? `s = ${softcap} * Math.tanh(s / ${softcap});` : ''}
        if (T !== 0) s += F[T + r * ${BK} + j];
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
    for (let r = 0; r < ${BQ}; r++) {
      const o = O + r * ${DVP}, sr = S + r * ${BK};
      for (let j = 0; j < ${BK}; j++) {
        const p = F[sr + j];
        if (p === 0) continue;
        const vj = V + j * ${DVP};
        ${pv}
      }
    }
  }
  for (let r = 0; r < ${BQ}; r++) {
    const o = O + r * ${DVP};
    if (F[M + r] < ${ROW_EMPTY}) { for (let c = 0; c < ${DVP}; c++) F[o + c] = 0; continue; }
    const inv = 1 / F[L + r];
    for (let c = 0; c < ${dv}; c++) F[o + c] *= inv;
  }
};`;
}

export type AttendFn = (F: Float32Array, I: Int32Array, q: number, out: number, blocks: number, nBlocks: number, scratch: number) => void;

export function jsAttentionKernel(shape: KernelShape, d: number, dv: number): AttendFn {
  return new Function(jsAttentionKernelSource(shape, d, dv))() as AttendFn;
}
