// A calibration tensor as plain data: dtype, shape and a typed array (no onnxruntime types), plus the checks
// every calibration source runs (dtype, shape against the model's input type, finite floats).

import { bfloat16ToFloat, type DType, halfToFloat, type Shape } from '@attnopt/ir';

/** Element storage per dtype; f16 and bf16 are kept as their 16-bit patterns. */
export type HostData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

export interface HostTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: HostData;
}

/** One calibration sample: a tensor per model input name. */
export type CalibrationSample = Readonly<Record<string, HostTensor>>;

const ARRAYS: Partial<Record<DType, new (buffer: ArrayBuffer, offset: number, length: number) => HostData>> = {
  f32: Float32Array,
  f64: Float64Array,
  f16: Uint16Array,
  bf16: Uint16Array,
  i8: Int8Array,
  u8: Uint8Array,
  bool: Uint8Array,
  i16: Int16Array,
  u16: Uint16Array,
  i32: Int32Array,
  u32: Uint32Array,
  i64: BigInt64Array,
  u64: BigUint64Array,
};

export const elementCount = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Whether a dtype can be held as a HostTensor. */
export const isHostDType = (dtype: DType): boolean => ARRAYS[dtype] !== undefined;

/** A HostTensor over little-endian element bytes (copied, so the result is aligned and owns its memory). */
export function hostTensorFromBytes(dtype: DType, shape: readonly number[], bytes: Uint8Array): HostTensor {
  const Ctor = ARRAYS[dtype];
  if (Ctor === undefined) throw new Error(`dtype ${dtype} is not supported for calibration tensors`);
  const n = elementCount(shape);
  const size = (Ctor as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
  if (bytes.byteLength !== n * size) {
    throw new Error(`${dtype}[${shape.join(', ')}] needs ${n * size} bytes, got ${bytes.byteLength}`);
  }
  const copy = bytes.slice();
  return { dtype, shape: [...shape], data: new Ctor(copy.buffer, 0, n) };
}

/** Element k as a number (f16/bf16 decoded from their bits). */
export function elementAt(t: HostTensor, k: number): number {
  const x = t.data[k]!;
  if (t.dtype === 'f16') return halfToFloat(x as number);
  if (t.dtype === 'bf16') return bfloat16ToFloat(x as number);
  return Number(x);
}

/** The values as float64 (f16/bf16 decoded). */
export function hostToFloat64(t: HostTensor): Float64Array {
  const out = new Float64Array(t.data.length);
  for (let k = 0; k < out.length; k++) out[k] = elementAt(t, k);
  return out;
}

/** Index of the first NaN or infinite element of a float tensor, or -1. */
export function firstNonFinite(t: HostTensor): number {
  if (t.dtype !== 'f32' && t.dtype !== 'f64' && t.dtype !== 'f16' && t.dtype !== 'bf16') return -1;
  for (let k = 0; k < t.data.length; k++) if (!Number.isFinite(elementAt(t, k))) return k;
  return -1;
}

/** Where a tensor came from, for messages: `file "x.npy"` or `generated`. */
export interface TensorSource {
  readonly input: string;
  readonly file?: string;
}

export class CalibrationInputError extends Error {
  override name = 'CalibrationInputError';
  constructor(
    readonly source: TensorSource,
    readonly problem: string,
  ) {
    super(`${source.file !== undefined ? `${source.file}: ` : ''}input "${source.input}": ${problem}`);
  }
}

const shapeText = (s: readonly (number | string)[]): string => `[${s.join(', ')}]`;

/**
 * Checks a tensor against the model input it feeds: same dtype, same rank, fixed dims equal; a symbolic dim
 * must take the same size everywhere in one sample (`bindings` carries the sizes seen so far). Floats must be
 * finite.
 */
export function checkCalibrationTensor(
  t: HostTensor,
  expected: { dtype: DType; shape?: Shape },
  source: TensorSource,
  bindings: Map<string, number> = new Map(),
): void {
  const fail = (problem: string): never => {
    throw new CalibrationInputError(source, problem);
  };
  if (t.dtype !== expected.dtype) fail(`dtype ${t.dtype} does not match the model input's ${expected.dtype}`);
  const want = expected.shape;
  if (want !== undefined) {
    if (want.length !== t.shape.length) {
      fail(`shape ${shapeText(t.shape)} has rank ${t.shape.length}, the model input ${shapeText(want)} has rank ${want.length}`);
    }
    want.forEach((d, axis) => {
      const got = t.shape[axis]!;
      if (typeof d === 'number') {
        if (d !== got) fail(`shape ${shapeText(t.shape)} does not match the model input ${shapeText(want)} at axis ${axis}`);
      } else if (d !== '' && d !== '?') {
        const seen = bindings.get(d);
        if (seen !== undefined && seen !== got) {
          fail(`shape ${shapeText(t.shape)}: dim "${d}" at axis ${axis} is ${got}, another input of this sample has ${seen}`);
        }
        bindings.set(d, got);
      }
    });
  }
  const bad = firstNonFinite(t);
  if (bad >= 0) fail(`element ${bad} is ${elementAt(t, bad)} (calibration tensors must be finite)`);
}
