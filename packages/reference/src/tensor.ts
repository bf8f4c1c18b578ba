// Small float64 tensors, row-major: the only data type of the reference package.

/** A row-major float64 tensor. */
export interface Tensor64 {
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

/** A row-major boolean tensor (1 = true, 0 = false), e.g. an ONNX boolean keep-mask. */
export interface BoolTensor {
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Row-major strides of a shape. */
export function strides(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  let s = 1;
  for (let k = shape.length - 1; k >= 0; k--) {
    out[k] = s;
    s *= shape[k]!;
  }
  return out;
}

/** A tensor over `data` (copied from a plain array; a Float64Array is used as is). Throws on a size mismatch. */
export function tensor64(shape: readonly number[], data?: ArrayLike<number>): Tensor64 {
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new Error(`tensor shape [${shape.join(', ')}]: invalid dimension ${d}`);
  }
  const n = elementCount(shape);
  const buf = data === undefined ? new Float64Array(n) : data instanceof Float64Array ? data : Float64Array.from(data);
  if (buf.length !== n) throw new Error(`tensor [${shape.join(', ')}] needs ${n} values, got ${buf.length}`);
  return { shape: [...shape], data: buf };
}

/** A boolean tensor over 0/1 (or truthy) values. */
export function boolTensor(shape: readonly number[], data: ArrayLike<number | boolean>): BoolTensor {
  const n = elementCount(shape);
  if (data.length !== n) throw new Error(`bool tensor [${shape.join(', ')}] needs ${n} values, got ${data.length}`);
  const out = new Uint8Array(n);
  for (let k = 0; k < n; k++) out[k] = data[k] ? 1 : 0;
  return { shape: [...shape], data: out };
}

export function isBoolTensor(t: Tensor64 | BoolTensor): t is BoolTensor {
  return t.data instanceof Uint8Array;
}

/** The element at a multi-index. */
export function at(t: Tensor64, ...index: number[]): number {
  if (index.length !== t.shape.length) throw new Error(`index of rank ${index.length} into a tensor of rank ${t.shape.length}`);
  const st = strides(t.shape);
  let off = 0;
  index.forEach((x, k) => {
    if (!(x >= 0 && x < t.shape[k]!)) throw new Error(`index ${x} out of range for dimension ${k} of size ${t.shape[k]}`);
    off += x * st[k]!;
  });
  return t.data[off]!;
}

/** Same data, new shape with the same element count. */
export function reshape(t: Tensor64, shape: readonly number[]): Tensor64 {
  if (elementCount(shape) !== t.data.length) {
    throw new Error(`cannot reshape [${t.shape.join(', ')}] to [${shape.join(', ')}]`);
  }
  return { shape: [...shape], data: t.data };
}

/** Permutes the axes: result axis k is input axis perm[k]. */
export function transpose(t: Tensor64, perm: readonly number[]): Tensor64 {
  if (perm.length !== t.shape.length || [...perm].sort((a, b) => a - b).some((p, k) => p !== k)) {
    throw new Error(`transpose: [${perm.join(', ')}] is not a permutation of rank ${t.shape.length}`);
  }
  const shape = perm.map((p) => t.shape[p]!);
  const inStrides = strides(t.shape);
  const out = new Float64Array(t.data.length);
  const idx = new Array<number>(shape.length).fill(0);
  for (let o = 0; o < out.length; o++) {
    let off = 0;
    for (let k = 0; k < shape.length; k++) off += idx[k]! * inStrides[perm[k]!]!;
    out[o] = t.data[off]!;
    for (let k = shape.length - 1; k >= 0; k--) {
      if (++idx[k]! < shape[k]!) break;
      idx[k] = 0;
    }
  }
  return { shape, data: out };
}
