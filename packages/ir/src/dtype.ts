// Element types, named as in the field (f32, bf16, f8e4m3fn...) and numbered as ONNX's TensorProto.DataType.

export const DTYPES = {
  f32: { onnx: 1, bits: 32, kind: 'float' },
  u8: { onnx: 2, bits: 8, kind: 'uint' },
  i8: { onnx: 3, bits: 8, kind: 'int' },
  u16: { onnx: 4, bits: 16, kind: 'uint' },
  i16: { onnx: 5, bits: 16, kind: 'int' },
  i32: { onnx: 6, bits: 32, kind: 'int' },
  i64: { onnx: 7, bits: 64, kind: 'int' },
  string: { onnx: 8, bits: 0, kind: 'string' },
  bool: { onnx: 9, bits: 8, kind: 'bool' },
  f16: { onnx: 10, bits: 16, kind: 'float' },
  f64: { onnx: 11, bits: 64, kind: 'float' },
  u32: { onnx: 12, bits: 32, kind: 'uint' },
  u64: { onnx: 13, bits: 64, kind: 'uint' },
  c64: { onnx: 14, bits: 64, kind: 'complex' },
  c128: { onnx: 15, bits: 128, kind: 'complex' },
  bf16: { onnx: 16, bits: 16, kind: 'float' },
  f8e4m3fn: { onnx: 17, bits: 8, kind: 'float' },
  f8e4m3fnuz: { onnx: 18, bits: 8, kind: 'float' },
  f8e5m2: { onnx: 19, bits: 8, kind: 'float' },
  f8e5m2fnuz: { onnx: 20, bits: 8, kind: 'float' },
  u4: { onnx: 21, bits: 4, kind: 'uint' },
  i4: { onnx: 22, bits: 4, kind: 'int' },
  f4e2m1: { onnx: 23, bits: 4, kind: 'float' },
  f8e8m0: { onnx: 24, bits: 8, kind: 'float' },
  u2: { onnx: 25, bits: 2, kind: 'uint' },
  i2: { onnx: 26, bits: 2, kind: 'int' },
} as const satisfies Record<string, { onnx: number; bits: number; kind: string }>;

export type DType = keyof typeof DTYPES;
export type DTypeKind = (typeof DTYPES)[DType]['kind'];

const byOnnx = new Map<number, DType>(
  (Object.keys(DTYPES) as DType[]).map((name) => [DTYPES[name].onnx, name]),
);

export const ALL_DTYPES = Object.keys(DTYPES) as readonly DType[];

export function isDType(name: string): name is DType {
  return Object.prototype.hasOwnProperty.call(DTYPES, name);
}

/** The IR dtype for an ONNX TensorProto.DataType number, or undefined when ONNX defines none. */
export function dtypeFromOnnx(code: number): DType | undefined {
  return byOnnx.get(code);
}

export function onnxDataType(dtype: DType): number {
  return DTYPES[dtype].onnx;
}

export function dtypeBits(dtype: DType): number {
  return DTYPES[dtype].bits;
}

export function isFloatDType(dtype: DType): boolean {
  return DTYPES[dtype].kind === 'float';
}

/** Bytes needed to store `count` elements densely (sub-byte types pack, rounding up). */
export function storageBytes(dtype: DType, count: number): number {
  if (dtype === 'string') throw new Error('storageBytes: string tensors have no fixed-size storage');
  return Math.ceil((count * dtypeBits(dtype)) / 8);
}
