// The files a model is read from: the .onnx file and every external data file its tensors name. A command
// that writes must never write over one of them.

import { ExternalDataResolver, forEachTensor, isExternal } from '@attnopt/onnx';
import type { AttnoptModel } from './model.js';

/** The model's own file (when it was read from one) and the real paths of its external data files. */
export function modelFiles(model: AttnoptModel): string[] {
  if (model.file === undefined) return [];
  const files = new Set<string>([model.file]);
  const resolver = new ExternalDataResolver(model.file);
  forEachTensor(model.proto, 'ModelProto', (t) => {
    if (isExternal(t)) files.add(resolver.resolve(t).file);
  });
  return [...files];
}
