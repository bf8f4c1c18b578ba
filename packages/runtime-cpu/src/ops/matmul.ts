// MatMul (numpy matmul: batched, broadcast batch dims, 1-D operands promoted and their axis dropped),
// onnxruntime's FusedMatMul (alpha · op(A) · op(B), transA / transB swapping an operand's last two axes) and
// Gemm (Y = alpha A' B' + beta C, A' and B' optionally transposed, C broadcast to [M, N]). Float inputs;
// each output row accumulates in float64 and rounds once to the output dtype.

import { elementCount } from '@attnopt/ir';
import { attrFloat, attrInt } from '../attrs.js';
import { broadcastIndex, broadcastShapes } from '../broadcast.js';
import { input, type OpKernel, type OpTable } from '../kernel.js';
import { computeArray, type ExecTensor, fromFloats, isFloat, numberData, shapeString } from '../tensor.js';

/**
 * out[m, n] += alpha sum_k a[m, k] b[k, n] over one matrix pair, b row-major [K, N]; (aRow, aCol) read a
 * directly or transposed. A row at a time: acc[n] gathers four rows of b per pass, so the inner loop runs
 * contiguously over b and the float64 accumulator.
 */
function gemmInto(
  a: ArrayLike<number>, aOff: number, aRow: number, aCol: number,
  b: ArrayLike<number>, bOff: number,
  out: Float32Array | Float64Array, oOff: number,
  M: number, K: number, N: number, alpha: number, acc: Float64Array,
): void {
  for (let m = 0; m < M; m++) {
    acc.fill(0);
    const ar = aOff + m * aRow;
    let k = 0;
    for (; k + 4 <= K; k += 4) {
      const x0 = a[ar + k * aCol]!;
      const x1 = a[ar + (k + 1) * aCol]!;
      const x2 = a[ar + (k + 2) * aCol]!;
      const x3 = a[ar + (k + 3) * aCol]!;
      const b0 = bOff + k * N;
      const b1 = b0 + N;
      const b2 = b1 + N;
      const b3 = b2 + N;
      for (let n = 0; n < N; n++) acc[n] += x0 * b[b0 + n]! + x1 * b[b1 + n]! + x2 * b[b2 + n]! + x3 * b[b3 + n]!;
    }
    for (; k < K; k++) {
      const x = a[ar + k * aCol]!;
      const base = bOff + k * N;
      for (let n = 0; n < N; n++) acc[n] += x * b[base + n]!;
    }
    const o = oOff + m * N;
    for (let n = 0; n < N; n++) out[o + n] += alpha * acc[n]!;
  }
}

/** The [cols, rows] transpose of a row-major [rows, cols] matrix. */
function transpose2d(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c]!;
  return out;
}

export function matmul(a: ExecTensor, b: ExecTensor, alpha = 1): ExecTensor {
  if (a.dtype !== b.dtype) throw new Error(`inputs have different dtypes ${a.dtype} and ${b.dtype}`);
  if (!isFloat(a.dtype)) throw new Error(`MatMul of ${a.dtype} tensors is not supported (float only)`);
  if (a.shape.length === 0 || b.shape.length === 0) throw new Error('MatMul inputs must have rank >= 1');
  const aShape = a.shape.length === 1 ? [1, a.shape[0]!] : a.shape;
  const bShape = b.shape.length === 1 ? [b.shape[0]!, 1] : b.shape;
  const M = aShape[aShape.length - 2]!;
  const K = aShape[aShape.length - 1]!;
  const K2 = bShape[bShape.length - 2]!;
  const N = bShape[bShape.length - 1]!;
  if (K !== K2) throw new Error(`MatMul ${shapeString(a.shape)} x ${shapeString(b.shape)}: inner dimensions ${K} and ${K2} differ`);
  const aBatch = aShape.slice(0, -2);
  const bBatch = bShape.slice(0, -2);
  const batch = broadcastShapes([aBatch, bBatch]);
  const nb = elementCount(batch);
  const ia = broadcastIndex(aBatch, batch);
  const ib = broadcastIndex(bBatch, batch);
  const out = computeArray(a.dtype, nb * M * N);
  const ad = numberData(a);
  const bd = numberData(b);
  const acc = new Float64Array(N);
  for (let t = 0; t < nb; t++) {
    const at = (ia ? ia[t]! : t) * M * K;
    const bt = (ib ? ib[t]! : t) * K * N;
    gemmInto(ad, at, K, 1, bd, bt, out, t * M * N, M, K, N, alpha, acc);
  }
  const shape = [...batch, ...(a.shape.length === 1 ? [] : [M]), ...(b.shape.length === 1 ? [] : [N])];
  return fromFloats(a.dtype, shape, out);
}

const gemm: OpKernel = {
  minInputs: 2,
  run: (ctx) => {
    const a = input(ctx, 0);
    const b = input(ctx, 1);
    const c = ctx.inputs[2];
    if (a.dtype !== b.dtype) throw new Error(`inputs have different dtypes ${a.dtype} and ${b.dtype}`);
    if (!isFloat(a.dtype)) throw new Error(`Gemm of ${a.dtype} tensors is not supported (float only)`);
    if (a.shape.length !== 2 || b.shape.length !== 2) throw new Error(`Gemm needs 2-D A and B, got ${shapeString(a.shape)} and ${shapeString(b.shape)}`);
    const transA = attrInt(ctx.node, 'transA', 0) !== 0;
    const transB = attrInt(ctx.node, 'transB', 0) !== 0;
    const alpha = attrFloat(ctx.node, 'alpha', 1);
    const beta = attrFloat(ctx.node, 'beta', 1);
    const [M, K] = transA ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
    const [K2, N] = transB ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
    if (K !== K2) throw new Error(`Gemm A ${shapeString(a.shape)} (transA=${+transA}) and B ${shapeString(b.shape)} (transB=${+transB}): inner dimensions ${K} and ${K2} differ`);
    // beta C, then alpha A'B' accumulated on top in float64, rounded once
    const exact = new Float64Array(M * N);
    if (c !== undefined && beta !== 0) {
      if (broadcastShapes([c.shape, [M, N]]).join() !== [M, N].join()) throw new Error(`Gemm C ${shapeString(c.shape)} does not broadcast to [${M}, ${N}]`);
      const ic = broadcastIndex(c.shape, [M, N]);
      const cd = numberData(c);
      for (let k = 0; k < M * N; k++) exact[k] = beta * cd[ic ? ic[k]! : k]!;
    }
    const ad = numberData(a);
    const [aRow, aCol] = transA ? [1, M] : [K, 1];
    // B' made contiguous so the inner loop runs along a row
    const bd = transB ? transpose2d(numberData(b), N, K) : numberData(b);
    gemmInto(ad, 0, aRow, aCol, bd, 0, exact, 0, M, K, N, alpha, new Float64Array(N));
    return [fromFloats(a.dtype, [M, N], exact)];
  },
};

/** `x` with its last two axes swapped (a copy; rank >= 2). */
function swapLastAxes(x: ExecTensor): ExecTensor {
  const r = x.shape.length;
  const [rows, cols] = [x.shape[r - 2]!, x.shape[r - 1]!];
  const d = numberData(x);
  const out = new Float64Array(d.length);
  for (let base = 0; base < d.length; base += rows * cols) {
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[base + j * rows + i] = d[base + i * cols + j]!;
  }
  return fromFloats(x.dtype, [...x.shape.slice(0, -2), cols, rows], out);
}

const fusedMatmul: OpKernel = {
  minInputs: 2,
  run: (ctx) => {
    for (const name of ['transBatchA', 'transBatchB']) {
      if (attrInt(ctx.node, name, 0) !== 0) throw new Error(`FusedMatMul with ${name} is not supported`);
    }
    const operand = (k: 0 | 1, flag: string) => {
      const x = input(ctx, k);
      if (attrInt(ctx.node, flag, 0) === 0) return x;
      if (x.shape.length < 2) throw new Error(`FusedMatMul ${flag} needs an operand of rank >= 2, got ${shapeString(x.shape)}`);
      return swapLastAxes(x);
    };
    return [matmul(operand(0, 'transA'), operand(1, 'transB'), attrFloat(ctx.node, 'alpha', 1))];
  },
};

export const MATMUL_OPS: OpTable = {
  '::MatMul': { minInputs: 2, run: (ctx) => [matmul(input(ctx, 0), input(ctx, 1))] },
  'com.microsoft::FusedMatMul': fusedMatmul,
  '::Gemm': gemm,
};

