// ONNX TypeProto <-> IR ValueType. A dim is its dim_value, its dim_param, or '?' when it has neither.
// What the IR does not model (denotations, opaque types, negative dims) makes the type lossy or undefined;
// export then reuses the original ValueInfoProto as long as the value's type is unchanged.

import { type DType, dtypeFromOnnx, type Dim, onnxDataType, type Shape, UNKNOWN_DIM, type ValueType } from '@attnopt/ir';
import { MAX_RANK } from './limits.js';
import type { TensorShapeDimension, TensorShapeProto, TypeProto, TypeProtoTensor } from './types.js';

/** The IR dtype of an ONNX element type; `fail` is called for a number ONNX does not define. */
export function dtypeOf(code: number, fail: (problem: string) => never): DType {
  const dtype = dtypeFromOnnx(code);
  return dtype ?? fail(`unknown data type ${code}`);
}

function shapeFromProto(shape: TensorShapeProto | undefined, fail: (problem: string) => never): Shape | undefined {
  if (shape === undefined) return undefined;
  const rank = shape.dim?.length ?? 0;
  if (rank > MAX_RANK) fail(`the type has ${rank} dims, more than the ${MAX_RANK} attnopt reads`);
  return (shape.dim ?? []).map((d): Dim => {
    if (d.dimValue !== undefined && d.dimValue >= 0n && d.dimValue <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(d.dimValue);
    if (d.dimParam !== undefined && d.dimParam !== '') return d.dimParam;
    return UNKNOWN_DIM;
  });
}

function tensorFromProto(t: TypeProtoTensor, fail: (problem: string) => never): { dtype: DType; shape?: Shape } | undefined {
  if (t.elemType === undefined || t.elemType === 0) return undefined;
  const dtype = dtypeOf(t.elemType, fail);
  const shape = shapeFromProto(t.shape, fail);
  return shape === undefined ? { dtype } : { dtype, shape };
}

/** The IR type of a TypeProto, or undefined when the IR cannot say it (no element type, opaque types). */
export function typeFromProto(tp: TypeProto | undefined, fail: (problem: string) => never): ValueType | undefined {
  if (tp === undefined) return undefined;
  if (tp.tensorType) {
    const t = tensorFromProto(tp.tensorType, fail);
    return t && { kind: 'tensor', ...t };
  }
  if (tp.sparseTensorType) {
    const t = tensorFromProto(tp.sparseTensorType, fail);
    return t && { kind: 'sparse', ...t };
  }
  if (tp.sequenceType) {
    const elem = typeFromProto(tp.sequenceType.elemType, fail);
    return elem && { kind: 'sequence', elem };
  }
  if (tp.optionalType) {
    const elem = typeFromProto(tp.optionalType.elemType, fail);
    return elem && { kind: 'optional', elem };
  }
  if (tp.mapType) {
    const value = typeFromProto(tp.mapType.valueType, fail);
    if (tp.mapType.keyType === undefined || value === undefined) return undefined;
    return { kind: 'map', key: dtypeOf(tp.mapType.keyType, fail), value };
  }
  return undefined;
}

function dimToProto(d: Dim): TensorShapeDimension {
  if (typeof d === 'number') return { dimValue: BigInt(d) };
  return d === UNKNOWN_DIM ? {} : { dimParam: d };
}

function tensorToProto(dtype: DType, shape: Shape | undefined): TypeProtoTensor {
  const t: TypeProtoTensor = { elemType: onnxDataType(dtype) };
  if (shape !== undefined) t.shape = { dim: shape.map(dimToProto) };
  return t;
}

/** The TypeProto of an IR type. */
export function typeToProto(type: ValueType): TypeProto {
  switch (type.kind) {
    case 'tensor':
      return { tensorType: tensorToProto(type.dtype, type.shape) };
    case 'sparse':
      return { sparseTensorType: tensorToProto(type.dtype, type.shape) };
    case 'sequence':
      return { sequenceType: { elemType: typeToProto(type.elem) } };
    case 'optional':
      return { optionalType: { elemType: typeToProto(type.elem) } };
    case 'map':
      return { mapType: { keyType: onnxDataType(type.key), valueType: typeToProto(type.value) } };
  }
}
