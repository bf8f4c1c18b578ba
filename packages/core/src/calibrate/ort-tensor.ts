// A calibration tensor as an onnxruntime tensor (shared by calibration and verification).

import ort from 'onnxruntime-node';
import type { HostTensor } from './tensor.js';

const ORT_TYPES: Record<string, ort.Tensor.Type> = {
  f32: 'float32', f64: 'float64', f16: 'float16', i8: 'int8', u8: 'uint8', bool: 'bool',
  i16: 'int16', u16: 'uint16', i32: 'int32', u32: 'uint32', i64: 'int64', u64: 'uint64',
};

export function toOrt(t: HostTensor, name: string): ort.Tensor {
  const type = ORT_TYPES[t.dtype];
  if (type === undefined) throw new Error(`input "${name}": onnxruntime-node has no ${t.dtype} tensors`);
  return new ort.Tensor(type, t.data as never, [...t.shape]);
}

