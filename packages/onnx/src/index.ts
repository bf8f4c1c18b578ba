// @attnopt/onnx: a lossless ONNX ModelProto codec (IR version 13 schema, unknown fields kept), external data,
// and the bridge to the attnopt IR (import, lossless export).
export { decodeModel, encodeModel } from './codec.js';
export { decodeMessage, type DecodeOptions } from './decode.js';
export { encodeMessage, MAX_MESSAGE_BYTES } from './encode.js';
export { diffMessages, messagesEqual, bytesEqual } from './equal.js';
export { ExternalDataError, OnnxDecodeError, OnnxEncodeError } from './errors.js';
export {
  ExternalDataResolver,
  isExternal,
  nodeReadFiles,
  parseExternalData,
  type ExternalDataRef,
  type ReadFiles,
  type ResolvedExternalData,
} from './external-data.js';
export { AtomicFile, nodeWriteFiles, type WriteFiles } from './atomic-write.js';
export { MAX_MODEL_BYTES, MAX_NAME_CHARS, MAX_NODES, MAX_RANK, quoteName } from './limits.js';
export { readModel, readModelBytes, writeModel, type LoadedModel, type ReadModelOptions, type WriteModelOptions } from './model-file.js';
export { SCHEMA, type FieldSpec, type MessageName, type MessageSpec, type ScalarType } from './schema.js';
export { forEachTensor, mapTensors } from './walk.js';
export * from './types.js';
// IR bridge
export { importModel, type ImportOptions } from './import.js';
export { calledFunction, inlineLocalFunctions, inlineProblem, type InlinedCall, localFunction, localFunctions, rerollLocalFunctions } from './local-functions.js';
export { exportModel, exportGraph, ATTNOPT_OPSET } from './export.js';
export { importOnnx, exportOnnx } from './onnx-files.js';
export { newOnnxModel, type NewModelOptions, type OnnxModel } from './onnx-model.js';
export { OnnxImportError } from './import-error.js';
export { tensorFromProto, tensorToProto, tensorOrigin } from './tensors.js';
export { typeFromProto, typeToProto } from './value-types.js';
export {
  ANNOTATION,
  graphOrigin,
  nodeOrigin,
  type AttributeEntry,
  type GraphOrigin,
  type LocalFunctions,
  type SparseOrigin,
  type ValueInfoEntry,
} from './annotations.js';
