// A model as the library holds it: the IR graph plus what ONNX carries beside it (kept for lossless export).

import {
  ExternalDataResolver,
  exportModel,
  exportOnnx,
  forEachTensor,
  importOnnx,
  isExternal,
  type OnnxModel,
  writeModel as writeModelProto,
} from '@attnopt/onnx';

export type AttnoptModel = OnnxModel;

/**
 * Imports an ONNX model from its bytes or a file path (external data beside the file is read lazily,
 * and a location escaping the model's folder is refused). Throws an error naming the file, node and
 * problem on bad input.
 */
export function loadModel(source: Uint8Array | string): AttnoptModel {
  return importOnnx(source);
}

/** The model as ONNX bytes; parts the passes did not change come back exactly as they were read. */
export function saveModel(model: AttnoptModel): Uint8Array {
  return exportOnnx(model);
}

/**
 * Writes the model to `file` atomically (temp file, fsync, rename; nothing is left on failure). Weights the
 * model read from a side file are copied to `<file>.data`; a model read without one is written inline.
 */
export function writeModel(file: string, model: AttnoptModel): void {
  const proto = exportModel(model);
  let external = false;
  forEachTensor(proto, 'ModelProto', (t) => {
    external ||= isExternal(t);
  });
  if (!external) {
    writeModelProto(file, proto, { externalData: false });
    return;
  }
  if (model.file === undefined) throw new Error('the model has external data but no file it was read from');
  writeModelProto(file, proto, { source: new ExternalDataResolver(model.file) });
}

/**
 * The model's default-domain opset. A model that imports none has no default-domain op to read; what the
 * passes add to it is written for opset 17.
 */
export function modelOpset(model: AttnoptModel): number {
  const d = model.proto.opsetImport?.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx');
  return Number(d?.version ?? 17n);
}
