// Runtime tensors of the executor: a dtype, a static shape and a typed array, row-major. float16 is held as
// its bit patterns and computed in float32; int64 as BigInt64Array so shape arithmetic stays exact.
// Tensors are never written after they are made: ops allocate their outputs, Reshape shares its input's data.

import { type DType, dtypeFromOnnx, elementCount, floatToHalf, halfToFloat, type Tensor } from '@attnopt/ir';

export type ExecDType = 'f32' | 'f64' | 'f16' | 'i64' | 'i32' | 'i8' | 'u8' | 'bool';
export const EXEC_DTYPES: readonly ExecDType[] = ['f32', 'f64', 'f16', 'i64', 'i32', 'i8', 'u8', 'bool'];

export interface ExecDataOf {
  f32: Float32Array;
  f64: Float64Array;
  f16: Uint16Array;
  i64: BigInt64Array;
  i32: Int32Array;
  i8: Int8Array;
  u8: Uint8Array;
  bool: Uint8Array;
}
export type ExecData = ExecDataOf[ExecDType];

/** A tensor the executor reads and writes. */
export interface ExecTensor {
  readonly dtype: ExecDType;
  readonly shape: readonly number[];
  readonly data: ExecData;
}

/** Element arrays that hold numbers (every dtype but int64). */
export type NumberArray = Float32Array | Float64Array | Int32Array | Int8Array | Uint8Array;

export function isExecDType(d: DType | string): d is ExecDType {
  return (EXEC_DTYPES as readonly string[]).includes(d);
}

export const isFloat = (d: ExecDType): boolean => d === 'f32' || d === 'f64' || d === 'f16';

const ARRAYS = {
  f32: Float32Array,
  f64: Float64Array,
  f16: Uint16Array,
  i64: BigInt64Array,
  i32: Int32Array,
  i8: Int8Array,
  u8: Uint8Array,
  bool: Uint8Array,
} as const;

const BYTES: Record<ExecDType, number> = { f32: 4, f64: 8, f16: 2, i64: 8, i32: 4, i8: 1, u8: 1, bool: 1 };

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** A zero-filled tensor. */
export function allocTensor<D extends ExecDType>(dtype: D, shape: readonly number[]): { readonly dtype: D; readonly shape: readonly number[]; readonly data: ExecDataOf[D] } {
  const data = new ARRAYS[dtype](elementCount(shape)) as ExecDataOf[D];
  return { dtype, shape: [...shape], data };
}

/** A tensor over `data`, checked against the shape. */
export function execTensor(dtype: ExecDType, shape: readonly number[], data: ExecData): ExecTensor {
  const n = elementCount(shape);
  if (data.length !== n) throw new Error(`tensor ${dtype}${shapeString(shape)} needs ${n} elements, got ${data.length}`);
  if (!(data instanceof ARRAYS[dtype])) throw new Error(`tensor ${dtype}${shapeString(shape)}: data is a ${data.constructor.name}, expected ${ARRAYS[dtype].name}`);
  return { dtype, shape: [...shape], data };
}

export function byteSize(t: ExecTensor): number {
  return t.data.length * BYTES[t.dtype];
}

let halfTable: Float32Array | undefined;
function halfToFloatTable(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}

/** The elements of a float tensor as float32/float64 (float16 widened to float32). */
export function floatData(t: ExecTensor): Float32Array | Float64Array {
  if (t.data instanceof Float32Array || t.data instanceof Float64Array) return t.data;
  if (t.dtype === 'f16') {
    const table = halfToFloatTable();
    const bits = t.data as Uint16Array;
    const out = new Float32Array(bits.length);
    for (let k = 0; k < out.length; k++) out[k] = table[bits[k]!]!;
    return out;
  }
  throw new Error(`expected a float tensor, got ${t.dtype}`);
}

/** The elements of any non-int64 tensor as numbers; int64 converted (exact up to 2^53). */
export function numberData(t: ExecTensor): NumberArray {
  if (t.dtype === 'f16') return floatData(t);
  if (t.data instanceof BigInt64Array) return Float64Array.from(t.data, Number);
  return t.data as NumberArray;
}

/** The elements as float64 numbers, whatever the dtype. */
export function toNumbers(t: ExecTensor): Float64Array {
  const d = numberData(t);
  return d instanceof Float64Array ? d : Float64Array.from(d);
}

/** Integer elements (index/shape tensors) as numbers; int64 beyond 2^53 saturates to +-Infinity-safe bounds. */
export function intValues(t: ExecTensor): number[] {
  if (t.data instanceof BigInt64Array) {
    return Array.from(t.data, (v) => (v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : v < -BigInt(Number.MAX_SAFE_INTEGER) ? -Number.MAX_SAFE_INTEGER : Number(v)));
  }
  if (isFloat(t.dtype)) throw new Error(`expected an integer tensor, got ${t.dtype}`);
  return Array.from(t.data as NumberArray);
}

/** A float tensor of `dtype` from computed values (float16 rounded to nearest even). */
export function fromFloats(dtype: ExecDType, shape: readonly number[], values: Float32Array | Float64Array): ExecTensor {
  switch (dtype) {
    case 'f32':
      return execTensor('f32', shape, values instanceof Float32Array ? values : Float32Array.from(values));
    case 'f64':
      return execTensor('f64', shape, values instanceof Float64Array ? values : Float64Array.from(values));
    case 'f16': {
      const bits = new Uint16Array(values.length);
      for (let k = 0; k < bits.length; k++) bits[k] = floatToHalf(values[k]!);
      return execTensor('f16', shape, bits);
    }
    default:
      throw new Error(`fromFloats: ${dtype} is not a float dtype`);
  }
}

/** Where a float op computes: float64 for f64, float32 for f32 and f16. */
export function computeArray(dtype: ExecDType, n: number): Float32Array | Float64Array {
  return dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
}

/** A tensor with new shape over the same elements (Reshape, Squeeze...). */
export function withShape(t: ExecTensor, shape: readonly number[]): ExecTensor {
  if (elementCount(shape) !== t.data.length) throw new Error(`cannot view ${t.dtype}${shapeString(t.shape)} as ${shapeString(shape)}`);
  return { dtype: t.dtype, shape: [...shape], data: t.data };
}

/** An int64 tensor from numbers. */
export function int64Tensor(shape: readonly number[], values: ArrayLike<number | bigint>): ExecTensor {
  return execTensor('i64', shape, BigInt64Array.from({ length: values.length }, (_, k) => BigInt(values[k]!)));
}

/** A constant of the IR (initializer, attribute) as an executor tensor: a view over its bytes when aligned. */
export function fromIrTensor(t: Tensor, where: string): ExecTensor {
  if (!isExecDType(t.dtype)) throw new Error(`${where}: tensors of dtype ${t.dtype} are not supported by the CPU executor`);
  const dtype = t.dtype;
  const bytes = t.bytes();
  const n = t.size;
  const Ctor = ARRAYS[dtype];
  const width = BYTES[dtype];
  const aligned = bytes.byteOffset % width === 0;
  const data = aligned
    ? new Ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, n)
    : new Ctor(bytes.slice(0, n * width).buffer as ArrayBuffer);
  return { dtype, shape: [...t.shape], data };
}

/** The executor dtype of an ONNX TensorProto.DataType number (Cast's `to`), or undefined. */
export function execDTypeFromOnnx(code: number): ExecDType | undefined {
  const d = dtypeFromOnnx(code);
  return d !== undefined && isExecDType(d) ? d : undefined;
}
