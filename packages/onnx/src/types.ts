// Decoded ONNX messages: plain objects. A field absent from the bytes is absent (undefined) here, a field
// present with its default value is present (proto2 presence), so encode writes back exactly what came in.
// int64/uint64 are bigint; bytes are Uint8Array; repeated numeric fields are typed arrays (exact bits, also for
// NaN payloads in float_data); fields unknown to the schema are kept raw in `unknownFields`.

/** Protobuf wire types. 3 and 4 (groups) are only accepted inside unknown fields. */
export const WireType = { VARINT: 0, I64: 1, LEN: 2, SGROUP: 3, EGROUP: 4, I32: 5 } as const;

/** A field the schema does not know, kept as it was read: `data` is every byte after the tag. */
export interface UnknownField {
  readonly no: number;
  readonly wireType: number;
  readonly data: Uint8Array;
}

/** How a message was laid out on the wire where the schema leaves a choice; see wireForm. */
export interface WireForm {
  /** Field number -> seen packed (true) or unpacked (false), for repeated numeric fields. */
  packing?: Record<number, boolean>;
  /** Scalars whose bytes a canonical encoder would not reproduce (invalid UTF-8, non-minimal varint, NaN bits). */
  verbatim?: VerbatimScalar[];
}

export interface VerbatimScalar {
  readonly no: number;
  /** Index in a repeated field, 0 for a singular one. */
  readonly index: number;
  /** The decoded value: the bytes are re-emitted only while the field still holds this value. */
  readonly value: unknown;
  /** Every byte after the tag. */
  readonly data: Uint8Array;
}

/** Key of the wire-layout record on decoded messages; a symbol, so it stays out of JSON and key listings. */
export const wireForm: unique symbol = Symbol('onnx.wireForm');

export interface Message {
  unknownFields?: UnknownField[];
  [wireForm]?: WireForm;
}

export interface StringStringEntryProto extends Message {
  key?: string;
  value?: string;
}

export interface OperatorSetIdProto extends Message {
  domain?: string;
  version?: bigint;
}

export interface DeviceConfigurationProto extends Message {
  name?: string;
  numDevices?: number;
  device?: string[];
}

export interface ModelProto extends Message {
  irVersion?: bigint;
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: bigint;
  docString?: string;
  graph?: GraphProto;
  opsetImport?: OperatorSetIdProto[];
  metadataProps?: StringStringEntryProto[];
  trainingInfo?: TrainingInfoProto[];
  functions?: FunctionProto[];
  configuration?: DeviceConfigurationProto[];
}

export interface GraphProto extends Message {
  node?: NodeProto[];
  name?: string;
  initializer?: TensorProto[];
  docString?: string;
  input?: ValueInfoProto[];
  output?: ValueInfoProto[];
  valueInfo?: ValueInfoProto[];
  quantizationAnnotation?: TensorAnnotation[];
  sparseInitializer?: SparseTensorProto[];
  metadataProps?: StringStringEntryProto[];
}

export interface NodeProto extends Message {
  input?: string[];
  output?: string[];
  name?: string;
  opType?: string;
  attribute?: AttributeProto[];
  docString?: string;
  domain?: string;
  overload?: string;
  metadataProps?: StringStringEntryProto[];
  deviceConfigurations?: NodeDeviceConfigurationProto[];
}

export interface NodeDeviceConfigurationProto extends Message {
  configurationId?: string;
  shardingSpec?: ShardingSpecProto[];
  pipelineStage?: number;
}

export interface ShardingSpecProto extends Message {
  tensorName?: string;
  device?: BigInt64Array;
  indexToDeviceGroupMap?: IntIntListEntryProto[];
  shardedDim?: ShardedDimProto[];
}

export interface ShardedDimProto extends Message {
  axis?: bigint;
  simpleSharding?: SimpleShardedDimProto[];
}

export interface SimpleShardedDimProto extends Message {
  dimValue?: bigint;
  dimParam?: string;
  numShards?: bigint;
}

export interface IntIntListEntryProto extends Message {
  key?: bigint;
  value?: BigInt64Array;
}

export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
  SPARSE_TENSOR: 11,
  SPARSE_TENSORS: 12,
  TYPE_PROTO: 13,
  TYPE_PROTOS: 14,
} as const;

export interface AttributeProto extends Message {
  name?: string;
  f?: number;
  i?: bigint;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats?: Float32Array;
  ints?: BigInt64Array;
  strings?: Uint8Array[];
  tensors?: TensorProto[];
  graphs?: GraphProto[];
  docString?: string;
  tp?: TypeProto;
  typeProtos?: TypeProto[];
  type?: number;
  refAttrName?: string;
  sparseTensor?: SparseTensorProto;
  sparseTensors?: SparseTensorProto[];
}

export interface ValueInfoProto extends Message {
  name?: string;
  type?: TypeProto;
  docString?: string;
  metadataProps?: StringStringEntryProto[];
}

/** TensorProto.DataType, through IR version 13 (ONNX 1.20). */
export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
  FLOAT8E8M0: 24,
  UINT2: 25,
  INT2: 26,
} as const;

export const DataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const;

export interface TensorSegment extends Message {
  begin?: bigint;
  end?: bigint;
}

export interface TensorProto extends Message {
  dims?: BigInt64Array;
  dataType?: number;
  segment?: TensorSegment;
  floatData?: Float32Array;
  int32Data?: Int32Array;
  stringData?: Uint8Array[];
  int64Data?: BigInt64Array;
  name?: string;
  rawData?: Uint8Array;
  doubleData?: Float64Array;
  uint64Data?: BigUint64Array;
  docString?: string;
  externalData?: StringStringEntryProto[];
  dataLocation?: number;
  metadataProps?: StringStringEntryProto[];
}

export interface SparseTensorProto extends Message {
  values?: TensorProto;
  indices?: TensorProto;
  dims?: BigInt64Array;
}

export interface TensorShapeProto extends Message {
  dim?: TensorShapeDimension[];
}

export interface TensorShapeDimension extends Message {
  dimValue?: bigint;
  dimParam?: string;
  denotation?: string;
}

export interface TypeProto extends Message {
  tensorType?: TypeProtoTensor;
  sequenceType?: { elemType?: TypeProto } & Message;
  mapType?: { keyType?: number; valueType?: TypeProto } & Message;
  denotation?: string;
  opaqueType?: { domain?: string; name?: string } & Message;
  sparseTensorType?: TypeProtoTensor;
  optionalType?: { elemType?: TypeProto } & Message;
}

export interface TypeProtoTensor extends Message {
  elemType?: number;
  shape?: TensorShapeProto;
}

export interface TensorAnnotation extends Message {
  tensorName?: string;
  quantParameterTensorNames?: StringStringEntryProto[];
}

export interface TrainingInfoProto extends Message {
  initialization?: GraphProto;
  algorithm?: GraphProto;
  initializationBinding?: StringStringEntryProto[];
  updateBinding?: StringStringEntryProto[];
}

export interface FunctionProto extends Message {
  name?: string;
  input?: string[];
  output?: string[];
  attribute?: string[];
  node?: NodeProto[];
  docString?: string;
  opsetImport?: OperatorSetIdProto[];
  domain?: string;
  attributeProto?: AttributeProto[];
  valueInfo?: ValueInfoProto[];
  overload?: string;
  metadataProps?: StringStringEntryProto[];
}
