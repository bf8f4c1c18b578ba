// Cast (to: an ONNX TensorProto.DataType) and CastLike. Float to integer truncates toward zero (NaN and
// out-of-range give the integer minimum, as x86 conversions do), to bool is x != 0, float16 rounds to
// nearest even.

import type { Node } from '@attnopt/ir';
import { attrInt } from '../attrs.js';
import { input, type OpKernel, type OpTable } from '../kernel.js';
import { allocTensor, type ExecDType, execDTypeFromOnnx, type ExecTensor, fromFloats, isFloat, numberData } from '../tensor.js';

const INT_MIN: Partial<Record<ExecDType, number>> = { i32: -(2 ** 31), i8: -128, u8: 0 };

export function cast(x: ExecTensor, to: ExecDType): ExecTensor {
  if (x.dtype === to) return x;
  if (isFloat(to)) {
    const values = x.dtype === 'i64' ? Float64Array.from(x.data as BigInt64Array, Number) : numberData(x);
    return fromFloats(to, x.shape, values instanceof Float64Array || values instanceof Float32Array ? values : Float64Array.from(values));
  }
  const out = allocTensor(to, x.shape);
  if (to === 'bool') {
    const s: ArrayLike<number | bigint> = x.dtype === 'i64' ? (x.data as BigInt64Array) : numberData(x);
    for (let k = 0; k < s.length; k++) out.data[k] = s[k] ? 1 : 0;
    return out;
  }
  if (to === 'i64') {
    const o = out.data as BigInt64Array;
    const s = numberData(x);
    for (let k = 0; k < s.length; k++) {
      const v = s[k]!;
      o[k] = Number.isFinite(v) && Math.abs(v) < 2 ** 63 ? BigInt(Math.trunc(v)) : -(2n ** 63n);
    }
    return out;
  }
  const o = out.data as Int32Array;
  if (x.dtype === 'i64') {
    const s = x.data as BigInt64Array;
    const bits = to === 'i32' ? 32 : 8;
    for (let k = 0; k < s.length; k++) o[k] = Number(to === 'u8' ? BigInt.asUintN(bits, s[k]!) : BigInt.asIntN(bits, s[k]!));
    return out;
  }
  const s = numberData(x);
  const floatSource = isFloat(x.dtype);
  for (let k = 0; k < s.length; k++) {
    const v = s[k]!;
    o[k] = floatSource && !Number.isFinite(v) ? INT_MIN[to]! : Math.trunc(v);
  }
  return out;
}

function castTarget(node: Node): ExecDType | undefined {
  const to = attrInt(node, 'to');
  return to === undefined ? undefined : execDTypeFromOnnx(to);
}

export const CAST_OPS: OpTable = {
  '::Cast': {
    minInputs: 1,
    check: (node) => (castTarget(node) === undefined ? `Cast to ONNX type ${attrInt(node, 'to') ?? '(none)'} is not supported` : undefined),
    run: (ctx) => [cast(input(ctx, 0), castTarget(ctx.node)!)],
  },
  '::CastLike': { minInputs: 2, run: (ctx) => [cast(input(ctx, 0), input(ctx, 1).dtype)] },
};
