// ONNX TensorProto <-> IR Tensor. raw_data is used in place; the typed fields (float_data, int32_data...) are
// decoded to the little-endian bytes raw_data would hold; external data becomes a lazy tensor read through
// the resolver on first use. Every imported tensor remembers its proto, so export writes that proto back
// (external references included) until the tensor is replaced.

import { type DType, onnxDataType, storageBytes, Tensor, dtypeBits } from '@attnopt/ir';
import type { ExternalDataResolver } from './external-data.js';
import { isExternal } from './external-data.js';
import { MAX_RANK } from './limits.js';
import { dtypeOf } from './value-types.js';
import type { SparseTensorProto, TensorProto } from './types.js';

/** The proto each imported tensor came from. */
const ORIGIN = new WeakMap<Tensor, TensorProto>();

const utf8 = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

function numbersToBytes(n: number, bytesPer: number, set: (view: DataView, k: number) => void): Uint8Array {
  const out = new Uint8Array(n * bytesPer);
  const view = new DataView(out.buffer);
  for (let k = 0; k < n; k++) set(view, k);
  return out;
}

/** Bytes of the typed field ONNX uses for `dtype`, laid out as raw_data; undefined when that field is absent. */
function typedFieldBytes(t: TensorProto, dtype: DType, fail: (problem: string) => never): Uint8Array | undefined {
  const expect = <A extends ArrayLike<unknown>>(field: string, data: A | undefined, n: number): A | undefined => {
    if (data === undefined) return undefined;
    if (data.length !== n) fail(`${field} holds ${data.length} values, ${dtype}[${(t.dims ?? []).join(', ')}] needs ${n}`);
    return data;
  };
  let count = 1;
  for (const d of t.dims ?? []) count *= Number(d);
  switch (dtype) {
    case 'f32':
    case 'c64': {
      const d = expect('float_data', t.floatData, dtype === 'c64' ? 2 * count : count);
      return d && numbersToBytes(d.length, 4, (v, k) => v.setFloat32(4 * k, d[k]!, true));
    }
    case 'f64':
    case 'c128': {
      const d = expect('double_data', t.doubleData, dtype === 'c128' ? 2 * count : count);
      return d && numbersToBytes(d.length, 8, (v, k) => v.setFloat64(8 * k, d[k]!, true));
    }
    case 'i64': {
      const d = expect('int64_data', t.int64Data, count);
      return d && numbersToBytes(d.length, 8, (v, k) => v.setBigInt64(8 * k, d[k]!, true));
    }
    case 'u32':
    case 'u64': {
      const d = expect('uint64_data', t.uint64Data, count);
      const size = dtype === 'u32' ? 4 : 8;
      return d && numbersToBytes(d.length, size, (v, k) => (size === 4 ? v.setUint32(4 * k, Number(d[k]!), true) : v.setBigUint64(8 * k, d[k]!, true)));
    }
    case 'string':
      return undefined;
    default: {
      // int32_data: one element per entry for 8- and 16-bit types (float16/float8 as their bits),
      // one packed byte per entry for 4- and 2-bit types.
      const bits = dtypeBits(dtype);
      const size = bits >= 8 ? bits / 8 : 1;
      const d = expect('int32_data', t.int32Data, bits >= 8 ? count : storageBytes(dtype, count));
      return d && numbersToBytes(d.length, size, (v, k) => {
        if (size === 4) v.setInt32(4 * k, d[k]!, true);
        else if (size === 2) v.setUint16(2 * k, d[k]! & 0xffff, true);
        else v.setUint8(k, d[k]! & 0xff);
      });
    }
  }
}

export interface TensorImport {
  readonly externalData?: ExternalDataResolver;
  /** Throws an error naming the model, the tensor's place and the problem. */
  readonly fail: (problem: string) => never;
}

/** The IR tensor of a TensorProto (external data: lazy, read through the resolver on first bytes()). */
export function tensorFromProto(t: TensorProto, ctx: TensorImport): Tensor {
  const { fail } = ctx;
  if (t.segment !== undefined) fail('segmented tensors are not supported');
  const dtype = dtypeOf(t.dataType ?? 0, fail);
  const rank = t.dims?.length ?? 0;
  if (rank > MAX_RANK) fail(`the tensor has ${rank} dims, more than the ${MAX_RANK} attnopt reads`);
  const shape = [...(t.dims ?? [])].map((d) => {
    if (d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER)) fail(`invalid dimension ${d}`);
    return Number(d);
  });
  let tensor: Tensor;
  try {
    if (dtype === 'string') {
      tensor = Tensor.fromStrings(shape, (t.stringData ?? []).map((s) => utf8.decode(s)));
    } else if (isExternal(t)) {
      const resolver = ctx.externalData;
      tensor = Tensor.lazy(dtype, shape, () => {
        if (resolver === undefined) return fail('its data is external but no model file was given to resolve it');
        return resolver.read(t);
      });
    } else {
      const bytes = t.rawData ?? typedFieldBytes(t, dtype, fail) ?? new Uint8Array(0);
      tensor = Tensor.fromBytes(dtype, shape, bytes);
    }
  } catch (e) {
    if (e instanceof Error && e.name === 'OnnxImportError') throw e;
    return fail((e as Error).message);
  }
  ORIGIN.set(tensor, t);
  return tensor;
}

/**
 * A sparse initializer as a lazy dense tensor: the IR holds dense constants only, so its bytes are not
 * available (bytes() throws); export writes the SparseTensorProto back unchanged.
 */
export function sparseTensorFromProto(s: SparseTensorProto, ctx: TensorImport): Tensor {
  const dtype = dtypeOf(s.values?.dataType ?? 0, ctx.fail);
  const shape = [...(s.dims ?? [])].map(Number);
  if (dtype === 'string') ctx.fail('sparse string tensors are not supported');
  return Tensor.lazy(dtype, shape, () => ctx.fail('densifying a sparse initializer is not supported'));
}

/** The TensorProto for `tensor` named `name`: the imported proto when there is one, else raw_data (or string_data). */
export function tensorToProto(tensor: Tensor, name: string | undefined): TensorProto {
  const origin = ORIGIN.get(tensor);
  if (origin !== undefined) {
    if (origin.name === name || (name === undefined && origin.name === undefined)) return origin;
    const renamed: TensorProto = { ...origin };
    if (name === undefined) delete renamed.name;
    else renamed.name = name;
    return renamed;
  }
  const proto: TensorProto = { dims: BigInt64Array.from(tensor.shape, (d) => BigInt(d)), dataType: onnxDataType(tensor.dtype) };
  if (name !== undefined) proto.name = name;
  if (tensor.dtype === 'string') proto.stringData = tensor.strings().map((s) => utf8Encoder.encode(s));
  else proto.rawData = tensor.bytes();
  return proto;
}

/** The TensorProto of an attribute tensor: the imported proto as it was (its own name included), else a fresh one. */
export const attributeTensorProto = (tensor: Tensor): TensorProto => ORIGIN.get(tensor) ?? tensorToProto(tensor, undefined);

/** The proto an imported tensor came from (undefined for tensors made in the IR). */
export const tensorOrigin = (tensor: Tensor): TensorProto | undefined => ORIGIN.get(tensor);
