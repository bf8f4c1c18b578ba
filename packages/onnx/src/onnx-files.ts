// Convenience entry points: bytes or a .onnx path in, an OnnxModel out; an OnnxModel out to bytes.

import { decodeModel, encodeModel } from './codec.js';
import { exportModel } from './export.js';
import { importModel } from './import.js';
import { readModel, type ReadModelOptions } from './model-file.js';
import type { OnnxModel } from './onnx-model.js';

/**
 * Imports a model from its bytes or from a file. A file is read with readModel: external data is checked
 * but stays on disk, read only when a tensor's bytes() is called.
 */
export function importOnnx(source: Uint8Array | string, options: ReadModelOptions = {}): OnnxModel {
  if (typeof source === 'string') {
    const loaded = readModel(source, options);
    return importModel(loaded.model, { file: loaded.file, externalData: loaded.externalData });
  }
  return importModel(decodeModel(source));
}

/**
 * The model's bytes. Tensors imported from external data are written as the same external references:
 * to move or inline them, use writeModel(file, exportModel(model), { source: <the original resolver> }).
 */
export function exportOnnx(model: OnnxModel): Uint8Array {
  return encodeModel(exportModel(model));
}
