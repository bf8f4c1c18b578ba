// A model as the library holds it: the IR graph plus what ONNX carries beside it (kept for lossless export).

import { exportOnnx, importOnnx, type OnnxModel } from '@attnopt/onnx';

export type AttnoptModel = OnnxModel;

/**
 * Imports an ONNX model from its bytes or a file path (external data beside the file is read lazily,
 * and a location escaping the model's folder is refused). Throws an error naming the file, node and
 * problem on bad input.
 */
export function loadOnnx(source: Uint8Array | string): AttnoptModel {
  return importOnnx(source);
}

/** The model as ONNX bytes; parts the passes did not change come back exactly as they were read. */
export function saveOnnx(model: AttnoptModel): Uint8Array {
  return exportOnnx(model);
}
