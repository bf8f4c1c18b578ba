// The ONNX messages as of onnx.proto for IR version 13 (ONNX 1.20), as data: one table row per field.
// Written from the published schema (onnx/onnx.in.proto); field numbers and packedness are the wire contract.
// The codec (decode.ts, encode.ts), the comparison (equal.ts) and the tensor walk (walk.ts) all read these tables.

/** Scalar field types as they appear on the wire. `enum` fields are int32 on the wire. */
export type ScalarType = 'int32' | 'int64' | 'uint64' | 'float' | 'double' | 'string' | 'bytes';

export type MessageName =
  | 'ModelProto'
  | 'GraphProto'
  | 'NodeProto'
  | 'AttributeProto'
  | 'ValueInfoProto'
  | 'TensorProto'
  | 'TensorProto.Segment'
  | 'SparseTensorProto'
  | 'TensorShapeProto'
  | 'TensorShapeProto.Dimension'
  | 'TypeProto'
  | 'TypeProto.Tensor'
  | 'TypeProto.Sequence'
  | 'TypeProto.Map'
  | 'TypeProto.Optional'
  | 'TypeProto.SparseTensor'
  | 'TypeProto.Opaque'
  | 'OperatorSetIdProto'
  | 'StringStringEntryProto'
  | 'TensorAnnotation'
  | 'TrainingInfoProto'
  | 'FunctionProto'
  | 'DeviceConfigurationProto'
  | 'NodeDeviceConfigurationProto'
  | 'ShardingSpecProto'
  | 'ShardedDimProto'
  | 'SimpleShardedDimProto'
  | 'IntIntListEntryProto';

export interface FieldSpec {
  readonly no: number;
  /** Property name in the decoded object (protobuf's lowerCamelCase of the .proto name). */
  readonly name: string;
  /** A scalar type, or the name of a message type. */
  readonly type: ScalarType | MessageName;
  readonly repeated: boolean;
  /** Declared `[packed = true]` (proto2: repeated numerics are unpacked unless declared packed). */
  readonly packed: boolean;
}

export interface MessageSpec {
  readonly name: MessageName;
  /** Fields sorted by field number: the order the reference serializers write them. */
  readonly fields: readonly FieldSpec[];
  readonly byNumber: ReadonlyMap<number, FieldSpec>;
}

const SCALARS: ReadonlySet<string> = new Set(['int32', 'int64', 'uint64', 'float', 'double', 'string', 'bytes']);

export function isScalar(type: FieldSpec['type']): type is ScalarType {
  return SCALARS.has(type);
}

/** Numeric scalars: the types a repeated field may carry packed. */
export function isPackable(type: FieldSpec['type']): boolean {
  return type !== 'string' && type !== 'bytes' && isScalar(type);
}

// Row shorthand: [number, name, type, 'optional' | 'repeated' | 'packed'].
type Row = readonly [number, string, ScalarType | MessageName, 'opt' | 'rep' | 'packed'];

const TABLES: Readonly<Record<MessageName, readonly Row[]>> = {
  ModelProto: [
    [1, 'irVersion', 'int64', 'opt'],
    [2, 'producerName', 'string', 'opt'],
    [3, 'producerVersion', 'string', 'opt'],
    [4, 'domain', 'string', 'opt'],
    [5, 'modelVersion', 'int64', 'opt'],
    [6, 'docString', 'string', 'opt'],
    [7, 'graph', 'GraphProto', 'opt'],
    [8, 'opsetImport', 'OperatorSetIdProto', 'rep'],
    [14, 'metadataProps', 'StringStringEntryProto', 'rep'],
    [20, 'trainingInfo', 'TrainingInfoProto', 'rep'],
    [25, 'functions', 'FunctionProto', 'rep'],
    [26, 'configuration', 'DeviceConfigurationProto', 'rep'],
  ],
  DeviceConfigurationProto: [
    [1, 'name', 'string', 'opt'],
    [2, 'numDevices', 'int32', 'opt'],
    [3, 'device', 'string', 'rep'],
  ],
  GraphProto: [
    [1, 'node', 'NodeProto', 'rep'],
    [2, 'name', 'string', 'opt'],
    [5, 'initializer', 'TensorProto', 'rep'],
    [10, 'docString', 'string', 'opt'],
    [11, 'input', 'ValueInfoProto', 'rep'],
    [12, 'output', 'ValueInfoProto', 'rep'],
    [13, 'valueInfo', 'ValueInfoProto', 'rep'],
    [14, 'quantizationAnnotation', 'TensorAnnotation', 'rep'],
    [15, 'sparseInitializer', 'SparseTensorProto', 'rep'],
    [16, 'metadataProps', 'StringStringEntryProto', 'rep'],
  ],
  NodeProto: [
    [1, 'input', 'string', 'rep'],
    [2, 'output', 'string', 'rep'],
    [3, 'name', 'string', 'opt'],
    [4, 'opType', 'string', 'opt'],
    [5, 'attribute', 'AttributeProto', 'rep'],
    [6, 'docString', 'string', 'opt'],
    [7, 'domain', 'string', 'opt'],
    [8, 'overload', 'string', 'opt'],
    [9, 'metadataProps', 'StringStringEntryProto', 'rep'],
    [10, 'deviceConfigurations', 'NodeDeviceConfigurationProto', 'rep'],
  ],
  NodeDeviceConfigurationProto: [
    [1, 'configurationId', 'string', 'opt'],
    [2, 'shardingSpec', 'ShardingSpecProto', 'rep'],
    [3, 'pipelineStage', 'int32', 'opt'],
  ],
  ShardingSpecProto: [
    [1, 'tensorName', 'string', 'opt'],
    [2, 'device', 'int64', 'rep'],
    [3, 'indexToDeviceGroupMap', 'IntIntListEntryProto', 'rep'],
    [4, 'shardedDim', 'ShardedDimProto', 'rep'],
  ],
  ShardedDimProto: [
    [1, 'axis', 'int64', 'opt'],
    [2, 'simpleSharding', 'SimpleShardedDimProto', 'rep'],
  ],
  SimpleShardedDimProto: [
    [1, 'dimValue', 'int64', 'opt'],
    [2, 'dimParam', 'string', 'opt'],
    [3, 'numShards', 'int64', 'opt'],
  ],
  IntIntListEntryProto: [
    [1, 'key', 'int64', 'opt'],
    [2, 'value', 'int64', 'rep'],
  ],
  AttributeProto: [
    [1, 'name', 'string', 'opt'],
    [2, 'f', 'float', 'opt'],
    [3, 'i', 'int64', 'opt'],
    [4, 's', 'bytes', 'opt'],
    [5, 't', 'TensorProto', 'opt'],
    [6, 'g', 'GraphProto', 'opt'],
    [7, 'floats', 'float', 'rep'],
    [8, 'ints', 'int64', 'rep'],
    [9, 'strings', 'bytes', 'rep'],
    [10, 'tensors', 'TensorProto', 'rep'],
    [11, 'graphs', 'GraphProto', 'rep'],
    [13, 'docString', 'string', 'opt'],
    [14, 'tp', 'TypeProto', 'opt'],
    [15, 'typeProtos', 'TypeProto', 'rep'],
    [20, 'type', 'int32', 'opt'],
    [21, 'refAttrName', 'string', 'opt'],
    [22, 'sparseTensor', 'SparseTensorProto', 'opt'],
    [23, 'sparseTensors', 'SparseTensorProto', 'rep'],
  ],
  ValueInfoProto: [
    [1, 'name', 'string', 'opt'],
    [2, 'type', 'TypeProto', 'opt'],
    [3, 'docString', 'string', 'opt'],
    [4, 'metadataProps', 'StringStringEntryProto', 'rep'],
  ],
  TensorProto: [
    [1, 'dims', 'int64', 'rep'],
    [2, 'dataType', 'int32', 'opt'],
    [3, 'segment', 'TensorProto.Segment', 'opt'],
    [4, 'floatData', 'float', 'packed'],
    [5, 'int32Data', 'int32', 'packed'],
    [6, 'stringData', 'bytes', 'rep'],
    [7, 'int64Data', 'int64', 'packed'],
    [8, 'name', 'string', 'opt'],
    [9, 'rawData', 'bytes', 'opt'],
    [10, 'doubleData', 'double', 'packed'],
    [11, 'uint64Data', 'uint64', 'packed'],
    [12, 'docString', 'string', 'opt'],
    [13, 'externalData', 'StringStringEntryProto', 'rep'],
    [14, 'dataLocation', 'int32', 'opt'],
    [16, 'metadataProps', 'StringStringEntryProto', 'rep'],
  ],
  'TensorProto.Segment': [
    [1, 'begin', 'int64', 'opt'],
    [2, 'end', 'int64', 'opt'],
  ],
  SparseTensorProto: [
    [1, 'values', 'TensorProto', 'opt'],
    [2, 'indices', 'TensorProto', 'opt'],
    [3, 'dims', 'int64', 'rep'],
  ],
  TensorShapeProto: [[1, 'dim', 'TensorShapeProto.Dimension', 'rep']],
  'TensorShapeProto.Dimension': [
    [1, 'dimValue', 'int64', 'opt'],
    [2, 'dimParam', 'string', 'opt'],
    [3, 'denotation', 'string', 'opt'],
  ],
  TypeProto: [
    [1, 'tensorType', 'TypeProto.Tensor', 'opt'],
    [4, 'sequenceType', 'TypeProto.Sequence', 'opt'],
    [5, 'mapType', 'TypeProto.Map', 'opt'],
    [6, 'denotation', 'string', 'opt'],
    [7, 'opaqueType', 'TypeProto.Opaque', 'opt'],
    [8, 'sparseTensorType', 'TypeProto.SparseTensor', 'opt'],
    [9, 'optionalType', 'TypeProto.Optional', 'opt'],
  ],
  'TypeProto.Tensor': [
    [1, 'elemType', 'int32', 'opt'],
    [2, 'shape', 'TensorShapeProto', 'opt'],
  ],
  'TypeProto.Sequence': [[1, 'elemType', 'TypeProto', 'opt']],
  'TypeProto.Map': [
    [1, 'keyType', 'int32', 'opt'],
    [2, 'valueType', 'TypeProto', 'opt'],
  ],
  'TypeProto.Optional': [[1, 'elemType', 'TypeProto', 'opt']],
  'TypeProto.SparseTensor': [
    [1, 'elemType', 'int32', 'opt'],
    [2, 'shape', 'TensorShapeProto', 'opt'],
  ],
  'TypeProto.Opaque': [
    [1, 'domain', 'string', 'opt'],
    [2, 'name', 'string', 'opt'],
  ],
  OperatorSetIdProto: [
    [1, 'domain', 'string', 'opt'],
    [2, 'version', 'int64', 'opt'],
  ],
  StringStringEntryProto: [
    [1, 'key', 'string', 'opt'],
    [2, 'value', 'string', 'opt'],
  ],
  TensorAnnotation: [
    [1, 'tensorName', 'string', 'opt'],
    [2, 'quantParameterTensorNames', 'StringStringEntryProto', 'rep'],
  ],
  TrainingInfoProto: [
    [1, 'initialization', 'GraphProto', 'opt'],
    [2, 'algorithm', 'GraphProto', 'opt'],
    [3, 'initializationBinding', 'StringStringEntryProto', 'rep'],
    [4, 'updateBinding', 'StringStringEntryProto', 'rep'],
  ],
  FunctionProto: [
    [1, 'name', 'string', 'opt'],
    [4, 'input', 'string', 'rep'],
    [5, 'output', 'string', 'rep'],
    [6, 'attribute', 'string', 'rep'],
    [7, 'node', 'NodeProto', 'rep'],
    [8, 'docString', 'string', 'opt'],
    [9, 'opsetImport', 'OperatorSetIdProto', 'rep'],
    [10, 'domain', 'string', 'opt'],
    [11, 'attributeProto', 'AttributeProto', 'rep'],
    [12, 'valueInfo', 'ValueInfoProto', 'rep'],
    [13, 'overload', 'string', 'opt'],
    [14, 'metadataProps', 'StringStringEntryProto', 'rep'],
  ],
};

function build(name: MessageName, rows: readonly Row[]): MessageSpec {
  const fields = rows
    .map(([no, field, type, mode]): FieldSpec => ({
      no,
      name: field,
      type,
      repeated: mode !== 'opt',
      packed: mode === 'packed',
    }))
    .sort((a, b) => a.no - b.no);
  return { name, fields, byNumber: new Map(fields.map((f) => [f.no, f])) };
}

/** Every ONNX message's spec, by name. */
export const SCHEMA: Readonly<Record<MessageName, MessageSpec>> = Object.fromEntries(
  Object.entries(TABLES).map(([name, rows]) => [name, build(name as MessageName, rows)]),
) as Record<MessageName, MessageSpec>;
