// The quantization ops deployed models carry around attention: QDQ pairs (QuantizeLinear / DequantizeLinear per
// tensor, per axis or in blocks, in the ONNX and com.microsoft domains), dynamic quantization (DynamicQuantizeLinear,
// MatMulInteger) and onnxruntime's MatMulNBits (4- or 8-bit weights in blocks along K). 8-bit integers only.
// Quantizing computes in float32 as onnxruntime does (x / scale rounded to float32, then to the nearest integer,
// ties to even); integer products are exact; float products accumulate in float64 as MatMul does.

import { elementCount } from '@attnopt/ir';
import { attrInt } from '../attrs.js';
import { input, type OpKernel, type OpTable } from '../kernel.js';
import { type ExecDType, type ExecTensor, execDTypeFromOnnx, execTensor, fromFloats, isFloat, shapeString, toNumbers } from '../tensor.js';
import { matmul } from './matmul.js';

const RANGE: Partial<Record<ExecDType, readonly [number, number]>> = { u8: [0, 255], i8: [-128, 127] };

/** Round half to even, as std::nearbyint in the default rounding mode. */
function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const saturate = (x: number, [lo, hi]: readonly [number, number]) => Math.min(hi, Math.max(lo, x));

/**
 * For each element of x, the index of its scale (and zero point): one for all (a scalar or a 1-element
 * tensor), one per index along `axis` (a 1-D scale), or one per block of `block` indices along `axis` (a scale of
 * x's rank, blocked, opset 21).
 */
function paramIndex(xShape: readonly number[], scale: ExecTensor, axisAttr: number, block: number): (i: number) => number {
  const count = elementCount(scale.shape);
  if (count === 1) return () => 0;
  const rank = xShape.length;
  const axis = axisAttr < 0 ? axisAttr + rank : axisAttr;
  if (axis < 0 || axis >= rank) throw new Error(`axis ${axisAttr} is out of range for rank ${rank}`);
  const inner = elementCount(xShape.slice(axis + 1));
  const n = xShape[axis]!;
  if (block === 0) {
    if (scale.shape.length !== 1 || count !== n) throw new Error(`a per-axis scale ${shapeString(scale.shape)} must be 1-D of ${n} (axis ${axis} of ${shapeString(xShape)})`);
    return (i) => Math.floor(i / inner) % n;
  }
  const blocks = Math.ceil(n / block);
  const want = xShape.map((d, k) => (k === axis ? blocks : d));
  if (scale.shape.length !== rank || scale.shape.some((d, k) => d !== want[k])) throw new Error(`a blocked scale ${shapeString(scale.shape)} must be ${shapeString(want)} (block ${block} along axis ${axis})`);
  return (i) => {
    const outer = Math.floor(i / (inner * n));
    const c = Math.floor(i / inner) % n;
    return (outer * blocks + Math.floor(c / block)) * inner + (i % inner);
  };
}

/** y = saturate(round(x / scale) + zero point): the zero point's type, else output_dtype, else uint8. */
const quantizeLinear: OpKernel = {
  minInputs: 2,
  run: (ctx) => {
    const [x, scale, zp] = [input(ctx, 0), input(ctx, 1), ctx.inputs[2]];
    const to = attrInt(ctx.node, 'output_dtype');
    const dtype = zp?.dtype ?? (to ? execDTypeFromOnnx(to) : 'u8');
    const range = dtype && RANGE[dtype];
    if (!dtype || !range) throw new Error(`QuantizeLinear to ${dtype ?? `type ${to}`} is not supported (8-bit integers only)`);
    const at = paramIndex(x.shape, scale, attrInt(ctx.node, 'axis', 1), attrInt(ctx.node, 'block_size', 0));
    const [xs, ss, zs] = [toNumbers(x), toNumbers(scale), zp ? toNumbers(zp) : undefined];
    const out = dtype === 'u8' ? new Uint8Array(xs.length) : new Int8Array(xs.length);
    for (let i = 0; i < xs.length; i++) out[i] = saturate(roundEven(Math.fround(xs[i]! / ss[at(i)]!)) + (zs ? zs[at(i)]! : 0), range);
    return [execTensor(dtype, x.shape, out)];
  },
};

/** y = (x - zero point) · scale, in the scale's type. */
const dequantizeLinear: OpKernel = {
  minInputs: 2,
  run: (ctx) => {
    const [x, scale, zp] = [input(ctx, 0), input(ctx, 1), ctx.inputs[2]];
    if (!isFloat(scale.dtype)) throw new Error(`DequantizeLinear with a ${scale.dtype} scale is not supported`);
    if (isFloat(x.dtype)) throw new Error(`DequantizeLinear of ${x.dtype} (float 8) is not supported`);
    const at = paramIndex(x.shape, scale, attrInt(ctx.node, 'axis', 1), attrInt(ctx.node, 'block_size', 0));
    const [xs, ss, zs] = [toNumbers(x), toNumbers(scale), zp ? toNumbers(zp) : undefined];
    const out = new Float64Array(xs.length);
    for (let i = 0; i < xs.length; i++) out[i] = (xs[i]! - (zs ? zs[at(i)]! : 0)) * ss[at(i)]!;
    return [fromFloats(scale.dtype, x.shape, out)];
  },
};

/** uint8 y with the scale and zero point that map [min(x, 0), max(x, 0)] onto [0, 255]. */
const dynamicQuantizeLinear: OpKernel = {
  minInputs: 1,
  run: (ctx) => {
    const x = input(ctx, 0);
    if (x.dtype !== 'f32') throw new Error(`DynamicQuantizeLinear of ${x.dtype} is not supported (float32 only)`);
    const xs = toNumbers(x);
    let [lo, hi] = [0, 0];
    for (const v of xs) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    const scale = Math.fround((hi - lo) / 255);
    const zp = scale === 0 ? 0 : saturate(roundEven(Math.fround(0 - Math.fround(lo / scale))), [0, 255]);
    const y = new Uint8Array(xs.length);
    if (scale !== 0) for (let i = 0; i < xs.length; i++) y[i] = saturate(roundEven(Math.fround(xs[i]! / scale)) + zp, [0, 255]);
    return [execTensor('u8', x.shape, y), execTensor('f32', [], Float32Array.of(scale)), execTensor('u8', [], Uint8Array.of(zp))];
  },
};

/** (A - a_zp) · (B - b_zp) in int32; a_zp per tensor or per row of A, b_zp per tensor or per column of B. */
const matmulInteger: OpKernel = {
  minInputs: 2,
  run: (ctx) => {
    const [a, b, az, bz] = [input(ctx, 0), input(ctx, 1), ctx.inputs[2], ctx.inputs[3]];
    const shifted = (t: ExecTensor, zp: ExecTensor | undefined, along: 'row' | 'column') => {
      const xs = toNumbers(t);
      const zs = zp ? toNumbers(zp) : undefined;
      const cols = t.shape[t.shape.length - 1] ?? 1;
      const rows = t.shape[t.shape.length - 2] ?? 1;
      const zAt = !zs || zs.length === 1 ? () => 0 : along === 'column' ? (i: number) => i % cols : (i: number) => Math.floor(i / cols) % rows;
      const out = new Float64Array(xs.length);
      for (let i = 0; i < xs.length; i++) out[i] = xs[i]! - (zs ? zs[zAt(i)]! : 0);
      return execTensor('f64', t.shape, out);
    };
    const y = matmul(shifted(a, az, 'row'), shifted(b, bz, 'column'));
    return [execTensor('i32', y.shape, Int32Array.from(toNumbers(y)))];
  },
};

/**
 * onnxruntime's MatMulNBits: A [..., K] times the weight W [K, N] stored per column as blocks of `block_size`
 * `bits`-bit integers (low bits first), W[k, n] = (q - zero point) · scale of (n, block); the zero point defaults
 * to 2^(bits - 1), or comes packed like the weights. An optional bias [N] is added.
 */
const matmulNBits: OpKernel = {
  minInputs: 3,
  check: (node) => (node.inputs[4] ? 'MatMulNBits with g_idx is not supported' : undefined),
  run: (ctx) => {
    const [a, packed, scales, zp, , bias] = [input(ctx, 0), input(ctx, 1), input(ctx, 2), ctx.inputs[3], ctx.inputs[4], ctx.inputs[5]];
    const [K, N, bits, block] = ['K', 'N', 'bits', 'block_size'].map((n) => attrInt(ctx.node, n)) as (number | undefined)[];
    if (K === undefined || N === undefined || block === undefined) throw new Error('MatMulNBits needs the K, N and block_size attributes');
    const b = bits ?? 4;
    if (b !== 4 && b !== 8) throw new Error(`MatMulNBits with ${b}-bit weights is not supported (4 or 8)`);
    if (zp && isFloat(zp.dtype)) throw new Error('MatMulNBits with float zero points is not supported');
    const blocks = Math.ceil(K / block);
    const blob = (block * b) / 8;
    if (elementCount(packed.shape) !== N * blocks * blob) throw new Error(`MatMulNBits weights ${shapeString(packed.shape)} do not hold N ${N} x ${blocks} blocks of ${blob} bytes`);
    const [q, s, z] = [toNumbers(packed), toNumbers(scales), zp ? toNumbers(zp) : undefined];
    const perByte = 8 / b;
    const mask = (1 << b) - 1;
    const zpBytesPerColumn = Math.ceil(blocks / perByte);
    const w = new Float64Array(K * N);
    for (let n = 0; n < N; n++) {
      for (let blk = 0; blk < blocks; blk++) {
        const zero = z ? (z[n * zpBytesPerColumn + Math.floor(blk / perByte)]! >> ((blk % perByte) * b)) & mask : 1 << (b - 1);
        const scale = s[n * blocks + blk]!;
        for (let r = 0; r < block && blk * block + r < K; r++) {
          const byte = q[(n * blocks + blk) * blob + Math.floor(r / perByte)]!;
          w[(blk * block + r) * N + n] = (((byte >> ((r % perByte) * b)) & mask) - zero) * scale;
        }
      }
    }
    const y = matmul(a, fromFloats(a.dtype, [K, N], w));
    if (!bias) return [y];
    const ys = toNumbers(y);
    const bs = toNumbers(bias);
    return [fromFloats(a.dtype, y.shape, ys.map((v, i) => v + bs[i % N]!))];
  },
};

export const QUANTIZE_OPS: OpTable = {
  '::QuantizeLinear': quantizeLinear,
  '::DequantizeLinear': dequantizeLinear,
  'com.microsoft::QuantizeLinear': quantizeLinear,
  'com.microsoft::DequantizeLinear': dequantizeLinear,
  '::DynamicQuantizeLinear': dynamicQuantizeLinear,
  '::MatMulInteger': matmulInteger,
  'com.microsoft::MatMulNBits': matmulNBits,
};
