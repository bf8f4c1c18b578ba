// The guarded JavaScript kernel (contract in guard-shape.ts): the generated `attend` of kernels.ts inside a
// function `attendGuarded(F, I, item, scratch)` that runs it on the sparse list, computes the certificate of
// every row (natural units: the JavaScript kernel's running max and sum are e-based) and recomputes the
// flagged rows over the model's own key-block list, as the WebAssembly kernel does (wasm/wasm-guard.ts).
// A row flags when m_hat · R > epsilon, or when it keeps no key but drops one (guard-shape.ts).

import { jsAttentionKernelSource } from '../kernels.js';
import { fullKernelShape, type KernelShape, ROW_EMPTY } from '../wasm/kernel-shape.js';
import { CERTIFICATE_SLACK, ENTRY_WORDS, EXPONENT_CLAMP, GUARD_ITEM as IT, guardScratch, segmentOffsets } from './guard-shape.js';

export type GuardedAttendFn = (F: Float32Array, I: Int32Array, item: number, scratch: number) => void;

/** The JavaScript source of `attendGuarded` for one KernelShape and budget. */
export function jsGuardedKernelSource(shape: KernelShape, d: number, dv: number, epsilon: number): string {
  const s = fullKernelShape(shape);
  const { blockQ: BQ, blockK: BK, dPad: DP, dvPad: DVP, softcap, scale, qStride: QS, oStride: OS } = s;
  const g = guardScratch(s, 0);
  const at = segmentOffsets(DP);
  const M_AT = BQ * DVP + BQ * BK; // f32 index of the running max in scratch
  const L_AT = M_AT + BQ;
  const attendBody = jsAttentionKernelSource(shape, d, dv).replace(/^"use strict";\n/, '').replace('return function attend', 'function attend');
  const capped = softcap > 0 ? `u = ${softcap} * Math.tanh(u / ${softcap});` : '';
  const capped0 = softcap > 0 ? `u0 = ${softcap} * Math.tanh(u0 / ${softcap});` : '';
  return `"use strict";
${attendBody}
// count · e^(U scale (+ softcap) + max bias - m) for a bound U on the raw scores
function term(u, bias, count, m) {
  u *= ${scale};
  ${capped}
  return count * Math.exp(Math.min(u + bias - m, ${EXPONENT_CLAMP * Math.LN2}));
}
function certify(F, I, item, scratch) {
  const X = item >> 2, Q = I[X + ${IT.q}] >> 2, rows = I[X + ${IT.rows}], E = I[X + ${IT.entries}] >> 2, nE = I[X + ${IT.nEntries}];
  const C = I[X + ${IT.cert}] >> 2, R = F[I[X + ${IT.vRange}] >> 2], S = scratch >> 2, FL = (scratch + ${g.flags}) >> 2;
  const questAt = Math.fround(Math.fround(${epsilon / 4} / nE) / R);
  // the largest key norm over the entries' segments (a NaN stays), for the pre-check
  let coarseNorm = 0;
  for (let e = 0; e < nE; e++) coarseNorm = Math.max(coarseNorm, F[(I[E + e * ${ENTRY_WORDS}] >> 2) + ${at.norm}]);
  let flagged = 0;
  for (let r = 0; r < rows; r++) {
    const qr = Q + r * ${QS};
    let qn = 0;
    for (let c = 0; c < ${d}; c++) qn += F[qr + c] * F[qr + c];
    qn = Math.sqrt(qn);
    const m = F[S + ${M_AT} + r];
    const l = m < ${ROW_EMPTY} ? 0 : F[S + ${L_AT} + r];
    // pre-check: Cauchy-Schwarz over all the block's dropped keys at once
    let u0 = qn * coarseNorm * ${scale};
    ${capped0}
    u0 += F[X + ${IT.coarseBias}];
    let B = F[X + ${IT.coarseCount}] * Math.exp(Math.min(u0 - m, ${EXPONENT_CLAMP * Math.LN2})) * ${CERTIFICATE_SLACK};
    let mh = B / Math.max(l + B, 1e-30);
    // a row that kept no key (l = 0) but may drop one: the exact B decides (see the flag below)
    if (!(${epsilon} >= mh * R) || (l === 0 && B > 0)) {
      // per segment the ball; Quest too where the ball's term exceeds l · epsilon / (4 nEntries R)
      B = 0;
      const thr = l * questAt;
      for (let e = 0; e < nE; e++) {
        const ep = E + e * ${ENTRY_WORDS};
        if (!(F[ep + 2] < r + 0.5 && r + 0.5 < F[ep + 3])) continue;
        const seg = I[ep] >> 2;
        let dot = 0;
        for (let c = 0; c < ${d}; c++) dot += F[qr + c] * F[seg + ${at.center} + c];
        const ball = qn * F[seg + ${at.radius}];
        let t = term(dot + ball, F[ep + 4], F[ep + 1], m);
        if (t > thr) {
          let width = 0;
          for (let c = 0; c < ${d}; c++) width += Math.abs(F[qr + c]) * F[seg + ${at.half} + c];
          // a NaN width gives NaN
          t = term(dot + (ball < width ? ball : width), F[ep + 4], F[ep + 1], m);
        }
        B += t;
      }
      B *= ${CERTIFICATE_SLACK};
      mh = B / Math.max(l + B, 1e-30);
    }
    F[C + r] = mh;
    // the exact row when the bound exceeds the budget, or when the row keeps no key but drops one: its sparse
    // output, 0, is then no convex combination of V and m_hat · R bounds nothing
    const flag = !(${epsilon} >= mh * R) || (l === 0 && B > 0);
    I[FL + r] = flag ? -1 : 0;
    if (flag) flagged++;
  }
  for (let r = rows; r < ${Math.ceil(BQ / 4) * 4}; r++) I[FL + r] = 0;
  return flagged;
}
return function attendGuarded(F, I, item, scratch) {
  const X = item >> 2, q = I[X + ${IT.q}], out = I[X + ${IT.out}], rows = I[X + ${IT.rows}];
  const base = I[X + ${IT.base}], nBase = I[X + ${IT.nBase}], FL = (scratch + ${g.flags}) >> 2;
  attend(F, I, q, out, I[X + ${IT.blocks}], I[X + ${IT.nBlocks}], scratch, rows);
  const flagged = certify(F, I, item, scratch);
  I[X + ${IT.flagged}] = flagged;
  let redo = 0;
  if (flagged > 0) {
    const strips = Math.ceil(rows / 4);
    let hit = 0;
    for (let rs = 0; rs < rows; rs += 4) if (I[FL + rs] | I[FL + rs + 1] | I[FL + rs + 2] | I[FL + rs + 3]) hit++;
    if (2 * hit >= strips) {
      attend(F, I, q, out, base, nBase, scratch, rows);
      redo = rows;
    } else {
      const list = scratch + ${g.list}, Lw = list >> 2, Bw = base >> 2;
      for (let rs = 0; rs < rows; rs += 4) {
        if (!(I[FL + rs] | I[FL + rs + 1] | I[FL + rs + 2] | I[FL + rs + 3])) continue;
        for (let k = 0; k < nBase; k++) {
          I[Lw + 3 * k] = I[Bw + 3 * k];
          I[Lw + 3 * k + 1] = I[Bw + 3 * k + 1];
          const t = I[Bw + 3 * k + 2];
          I[Lw + 3 * k + 2] = t === 0 ? 0 : t + rs * ${BK * 4};
        }
        const n = Math.min(4, rows - rs);
        attend(F, I, q + rs * ${QS * 4}, out + rs * ${OS * 4}, list, nBase, scratch, n);
        redo += n;
      }
    }
  }
  I[X + ${IT.recomputed}] = redo;
};`;
}

export function jsGuardedKernel(shape: KernelShape, d: number, dv: number, epsilon: number): GuardedAttendFn {
  return new Function(jsGuardedKernelSource(shape, d, dv, epsilon))() as GuardedAttendFn;
}
