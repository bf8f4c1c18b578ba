// The model-level entry points of the codec.
import { decodeMessage, type DecodeOptions } from './decode.js';
import { encodeMessage } from './encode.js';
import type { ModelProto } from './types.js';

/** Decodes a .onnx file's bytes. Bytes fields (raw_data...) are views into `bytes`: do not reuse that buffer. */
export function decodeModel(bytes: Uint8Array, options: DecodeOptions = {}): ModelProto {
  return decodeMessage<ModelProto>(bytes, 'ModelProto', options);
}

/** Encodes a model; decode -> encode gives back the bytes the reference serializers wrote. */
export function encodeModel(model: ModelProto): Uint8Array {
  return encodeMessage(model, 'ModelProto');
}
