// A model as one self-contained ONNX byte array (weights kept in a side file read back and inlined), so
// onnxruntime can load it from memory: verify runs each optimized model of the trade-off curve this way.

import { DataLocation, encodeModel, ExternalDataResolver, exportModel, forEachTensor, isExternal, mapTensors } from '@attnopt/onnx';
import type { AttnoptModel } from '../model.js';

export function selfContainedBytes(model: AttnoptModel): Uint8Array {
  const proto = exportModel(model);
  let external = false;
  forEachTensor(proto, 'ModelProto', (t) => {
    external ||= isExternal(t);
  });
  if (!external) return encodeModel(proto);
  if (model.file === undefined) throw new Error('the model has weights in a side file but no file it was read from');
  const resolver = new ExternalDataResolver(model.file);
  const inlined = mapTensors(proto, 'ModelProto', (t) => {
    if (!isExternal(t)) return t;
    const tensor = { ...t, rawData: resolver.read(t), dataLocation: DataLocation.DEFAULT };
    delete tensor.externalData;
    return tensor;
  });
  return encodeModel(inlined);
}
