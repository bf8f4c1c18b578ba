// ONNX TensorProto files (the .pb files of ONNX test data sets): decoded with the codec, converted with the
// bridge's tensorFromProto (raw_data or the typed fields; external data is refused).

import { decodeMessage, tensorFromProto, type TensorProto } from '@attnopt/onnx';
import { type HostTensor, hostTensorFromBytes } from './tensor.js';

export interface NamedHostTensor {
  /** The TensorProto's name (ONNX test data sets name the model input it feeds), if set. */
  readonly name?: string;
  readonly tensor: HostTensor;
}

/** Parses a serialized TensorProto; `file` names it in errors. */
export function readTensorProto(bytes: Uint8Array, file = '<TensorProto bytes>'): NamedHostTensor {
  const fail = (problem: string): never => {
    throw new Error(`${file}: ${problem}`);
  };
  let proto: TensorProto;
  try {
    proto = decodeMessage<TensorProto>(bytes, 'TensorProto');
  } catch (e) {
    return fail(`not a TensorProto: ${(e as Error).message}`);
  }
  const t = tensorFromProto(proto, { fail: (problem) => fail(problem) });
  if (t.dtype === 'string') fail('string tensors cannot be calibration inputs');
  let tensor: HostTensor;
  try {
    tensor = hostTensorFromBytes(t.dtype, t.shape, t.bytes());
  } catch (e) {
    return fail((e as Error).message);
  }
  return proto.name !== undefined && proto.name !== '' ? { name: proto.name, tensor } : { tensor };
}
