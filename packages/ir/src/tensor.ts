// Constant tensors (initializers, attribute values): dtype, static shape and little-endian bytes,
// held in memory or read lazily (weights in external data files).

import { type DType, isFloatDType, storageBytes } from './dtype.js';
import { bfloat16ToFloat, floatToBfloat16, floatToHalf, halfToFloat } from './float16.js';
import { elementCount } from './shape.js';

/** Inclusive ranges of the integer dtypes fromValues encodes; values outside are refused, never wrapped. */
const INT_RANGE: Partial<Record<DType, readonly [bigint | number, bigint | number]>> = {
  i8: [-128, 127],
  u8: [0, 255],
  i16: [-32768, 32767],
  u16: [0, 65535],
  i32: [-(2 ** 31), 2 ** 31 - 1],
  u32: [0, 2 ** 32 - 1],
  i64: [-(2n ** 63n), 2n ** 63n - 1n],
  u64: [0n, 2n ** 64n - 1n],
};

type Source = { bytes: Uint8Array } | { load: () => Uint8Array; byteLength: number } | { strings: readonly string[] };

export class Tensor {
  private cached: Uint8Array | undefined;

  private constructor(
    readonly dtype: DType,
    readonly shape: readonly number[],
    private readonly source: Source,
  ) {
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw new Error(`tensor shape [${shape.join(', ')}]: invalid dimension ${d}`);
    }
  }

  /** A tensor over little-endian bytes, laid out as ONNX raw_data (sub-byte types packed low nibble first). */
  static fromBytes(dtype: DType, shape: readonly number[], bytes: Uint8Array): Tensor {
    const want = storageBytes(dtype, elementCount(shape));
    if (bytes.byteLength !== want) {
      throw new Error(`tensor ${dtype}[${shape.join(', ')}] needs ${want} bytes, got ${bytes.byteLength}`);
    }
    return new Tensor(dtype, shape, { bytes });
  }

  /** A tensor whose bytes are read on first use (external data). `load` must return byteLength bytes. */
  static lazy(dtype: DType, shape: readonly number[], load: () => Uint8Array): Tensor {
    return new Tensor(dtype, shape, { load, byteLength: storageBytes(dtype, elementCount(shape)) });
  }

  static fromStrings(shape: readonly number[], strings: readonly string[]): Tensor {
    if (strings.length !== elementCount(shape)) {
      throw new Error(`string tensor [${shape.join(', ')}] needs ${elementCount(shape)} strings, got ${strings.length}`);
    }
    return new Tensor('string', shape, { strings });
  }

  /** Encodes numbers (or bigints for 64-bit integers) into a tensor of the given dtype. */
  static fromValues(dtype: DType, shape: readonly number[], values: ArrayLike<number | bigint>): Tensor {
    const n = elementCount(shape);
    if (values.length !== n) throw new Error(`tensor ${dtype}[${shape.join(', ')}] needs ${n} values, got ${values.length}`);
    const bytes = new Uint8Array(storageBytes(dtype, n));
    const view = new DataView(bytes.buffer);
    const num = (k: number) => Number(values[k]);
    const range = INT_RANGE[dtype];
    if (range) {
      for (let k = 0; k < n; k++) {
        const v = values[k]!;
        const ok = typeof v === 'bigint' ? v >= range[0] && v <= range[1] : Number.isInteger(v) && v >= range[0] && v <= range[1];
        if (!ok) throw new Error(`tensor ${dtype}[${shape.join(', ')}]: element ${k} = ${v} is not an integer in the ${dtype} range`);
      }
    }
    const big = (k: number) => {
      const v = values[k]!;
      return typeof v === 'bigint' ? v : BigInt(Math.trunc(v));
    };
    for (let k = 0; k < n; k++) {
      switch (dtype) {
        case 'f32': view.setFloat32(4 * k, num(k), true); break;
        case 'f64': view.setFloat64(8 * k, num(k), true); break;
        case 'f16': view.setUint16(2 * k, floatToHalf(num(k)), true); break;
        case 'bf16': view.setUint16(2 * k, floatToBfloat16(num(k)), true); break;
        case 'i8': view.setInt8(k, num(k)); break;
        case 'u8': view.setUint8(k, num(k)); break;
        case 'bool': view.setUint8(k, num(k) ? 1 : 0); break;
        case 'i16': view.setInt16(2 * k, num(k), true); break;
        case 'u16': view.setUint16(2 * k, num(k), true); break;
        case 'i32': view.setInt32(4 * k, num(k), true); break;
        case 'u32': view.setUint32(4 * k, num(k), true); break;
        case 'i64': view.setBigInt64(8 * k, big(k), true); break;
        case 'u64': view.setBigUint64(8 * k, big(k), true); break;
        default: throw new Error(`Tensor.fromValues: encoding ${dtype} from numbers is not supported; use fromBytes`);
      }
    }
    return new Tensor(dtype, shape, { bytes });
  }

  get size(): number {
    return elementCount(this.shape);
  }

  get byteLength(): number {
    if ('bytes' in this.source) return this.source.bytes.byteLength;
    if ('load' in this.source) return this.source.byteLength;
    throw new Error('string tensors have no byte storage');
  }

  get isLazy(): boolean {
    return 'load' in this.source;
  }

  /** The raw little-endian bytes (reads external data on first call). */
  bytes(): Uint8Array {
    if ('bytes' in this.source) return this.source.bytes;
    if ('strings' in this.source) throw new Error('string tensors have no byte storage; use strings()');
    if (!this.cached) {
      const got = this.source.load();
      if (got.byteLength !== this.source.byteLength) {
        throw new Error(`tensor ${this.dtype}[${this.shape.join(', ')}]: external data has ${got.byteLength} bytes, expected ${this.source.byteLength}`);
      }
      this.cached = got;
    }
    return this.cached;
  }

  strings(): readonly string[] {
    if ('strings' in this.source) return this.source.strings;
    throw new Error(`tensor of ${this.dtype} holds no strings`);
  }

  /** Every element as a float64 (64-bit integers beyond 2^53 lose precision: use bigints()). */
  toFloat64(): Float64Array {
    const n = this.size;
    const out = new Float64Array(n);
    const b = this.bytes();
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let k = 0; k < n; k++) {
      switch (this.dtype) {
        case 'f32': out[k] = view.getFloat32(4 * k, true); break;
        case 'f64': out[k] = view.getFloat64(8 * k, true); break;
        case 'f16': out[k] = halfToFloat(view.getUint16(2 * k, true)); break;
        case 'bf16': out[k] = bfloat16ToFloat(view.getUint16(2 * k, true)); break;
        case 'i8': out[k] = view.getInt8(k); break;
        case 'u8': out[k] = view.getUint8(k); break;
        case 'bool': out[k] = view.getUint8(k) ? 1 : 0; break;
        case 'i16': out[k] = view.getInt16(2 * k, true); break;
        case 'u16': out[k] = view.getUint16(2 * k, true); break;
        case 'i32': out[k] = view.getInt32(4 * k, true); break;
        case 'u32': out[k] = view.getUint32(4 * k, true); break;
        case 'i64': out[k] = Number(view.getBigInt64(8 * k, true)); break;
        case 'u64': out[k] = Number(view.getBigUint64(8 * k, true)); break;
        default: throw new Error(`Tensor.toFloat64: decoding ${this.dtype} is not supported`);
      }
    }
    return out;
  }

  /** 64-bit integer elements exactly. */
  bigints(): BigInt64Array | BigUint64Array {
    const b = this.bytes();
    const copy = b.slice().buffer;
    if (this.dtype === 'i64') return new BigInt64Array(copy);
    if (this.dtype === 'u64') return new BigUint64Array(copy);
    throw new Error(`Tensor.bigints: ${this.dtype} is not a 64-bit integer type`);
  }

  get isFloat(): boolean {
    return isFloatDType(this.dtype);
  }

  /** Same dtype, shape and bytes (or strings). */
  equals(other: Tensor): boolean {
    if (this.dtype !== other.dtype || this.shape.length !== other.shape.length) return false;
    if (!this.shape.every((d, k) => d === other.shape[k])) return false;
    if (this.dtype === 'string') {
      const a = this.strings();
      const b = other.strings();
      return a.every((s, k) => s === b[k]);
    }
    const a = this.bytes();
    const b = other.bytes();
    if (a.byteLength !== b.byteLength) return false;
    for (let k = 0; k < a.byteLength; k++) if (a[k] !== b[k]) return false;
    return true;
  }
}
