// Wire primitives: protobufjs's minimal Reader and Writer, plus the few conversions they lack
// (64-bit varints to and from bigint, canonical varint lengths, writing bytes verbatim).
import protobuf from 'protobufjs/minimal.js';

export type Reader = protobuf.Reader;
export type Writer = protobuf.Writer;

export const createReader = (bytes: Uint8Array): Reader => protobuf.Reader.create(bytes);
export const createWriter = (): Writer => protobuf.Writer.create();

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('@attnopt/onnx assumes a little-endian host (typed-array views of packed fixed-width fields)');
}

/** A 64-bit varint as two unsigned 32-bit halves. */
export interface Bits64 {
  lo: number;
  hi: number;
}

interface LongLike {
  low: number;
  high: number;
}

/** Reads one varint of up to 10 bytes; protobufjs throws on a longer one or on running past the buffer. */
export function readVarint64(reader: Reader): Bits64 {
  const long = reader.uint64() as unknown;
  if (typeof long !== 'object' || long === null) {
    // protobufjs falls back to lossy JS numbers when the 'long' package is missing: refuse, never round.
    throw new Error('protobufjs has no Long support: 64-bit varints cannot be read exactly');
  }
  const { low, high } = long as LongLike;
  return { lo: low >>> 0, hi: high >>> 0 };
}

export const bitsToBigInt = (b: Bits64): bigint => (BigInt(b.hi) << 32n) | BigInt(b.lo);

export const bitsToInt64 = (b: Bits64): bigint => BigInt.asIntN(64, bitsToBigInt(b));

/** bigint (int64 or uint64 range) -> the object protobufjs's Writer.int64/uint64 accept. */
export function bigIntToLong(value: bigint): LongLike & { unsigned: boolean } {
  const u = BigInt.asUintN(64, value);
  return { low: Number(u & 0xffffffffn) | 0, high: Number(u >> 32n) | 0, unsigned: false };
}

/** Length in bytes of the minimal varint for an unsigned 64-bit value. */
export function varintLength(b: Bits64): number {
  if (b.hi === 0) {
    const lo = b.lo;
    return lo < 0x80 ? 1 : lo < 0x4000 ? 2 : lo < 0x200000 ? 3 : lo < 0x10000000 ? 4 : 5;
  }
  const bits = 32 + (32 - Math.clz32(b.hi));
  return Math.ceil(bits / 7);
}

type RawWriterOp = (value: Uint8Array, buf: Uint8Array, pos: number) => void;
const copyBytes: RawWriterOp = (value, buf, pos) => buf.set(value, pos);

/**
 * Appends bytes with no length prefix. protobufjs's Writer exposes this only through its internal `_push`
 * (the operation list every public write method uses; stable across protobufjs 6.x, pinned at 6.11.6).
 */
export function writeRaw(writer: Writer, bytes: Uint8Array): void {
  if (bytes.length === 0) return;
  (writer as unknown as { _push(fn: RawWriterOp, len: number, val: Uint8Array): Writer })._push(
    copyBytes,
    bytes.length,
    bytes,
  );
}

/** Bytes a Writer has accumulated so far (before finish). */
export const writerLength = (writer: Writer): number => (writer as unknown as { len: number }).len;
