// Schema-driven decoding: bytes -> plain message objects, keeping unknown fields and the wire layout
// (packedness, non-canonical scalars) so that encode gives the same bytes back.
import { OnnxDecodeError } from './errors.js';
import { SCHEMA, isPackable, isScalar, type FieldSpec, type MessageName, type MessageSpec, type ScalarType } from './schema.js';
import { WireType, wireForm, type Message, type UnknownField, type WireForm } from './types.js';
import { bitsToBigInt, bitsToInt64, createReader, readVarint64, varintLength, type Reader } from './wire.js';

export interface DecodeOptions {
  /** Named in error messages. */
  file?: string;
  /** Deepest message nesting accepted (protobuf's own default is 100). */
  maxDepth?: number;
}

const DEFAULT_MAX_DEPTH = 100;

const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Lenient = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/** A problem found while decoding; turned into an OnnxDecodeError with the path where it happened. */
class Problem extends Error {}

interface Ctx {
  readonly reader: Reader;
  readonly buf: Uint8Array;
  readonly maxDepth: number;
  /** Path segments below the root: field name, then index (-1 for a singular field). */
  readonly path: (string | number)[];
  /** Offset of the field being read, for error messages. */
  offset: number;
}

/** Decodes one message of the given type (ModelProto for a .onnx file, TensorProto for a test-data .pb). */
export function decodeMessage<T extends Message = Message>(
  bytes: Uint8Array,
  type: MessageName,
  options: DecodeOptions = {},
): T {
  // A plain Uint8Array view (not a Node Buffer), so decoded bytes fields are plain Uint8Arrays too.
  bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ctx: Ctx = {
    reader: createReader(bytes),
    buf: bytes,
    maxDepth: options.maxDepth ?? DEFAULT_MAX_DEPTH,
    path: [],
    offset: 0,
  };
  try {
    return decodeInto(ctx, SCHEMA[type], bytes.length, {}, 0) as T;
  } catch (error) {
    const problem =
      error instanceof Problem
        ? error.message
        : error instanceof RangeError && /index out of range/.test(error.message)
          ? 'truncated: a value runs past the end of the input'
          : error instanceof RangeError && /call stack/.test(error.message)
            ? 'recursion too deep: the call stack ran out'
            : error instanceof Error && /invalid varint/.test(error.message)
              ? 'invalid varint (more than 10 bytes)'
              : undefined;
    if (problem === undefined) throw error;
    throw new OnnxDecodeError(problem, formatPath(type, ctx.path), ctx.offset, options.file);
  }
}

function formatPath(root: string, path: readonly (string | number)[]): string {
  let out = root;
  for (let i = 0; i < path.length; i += 2) {
    out += `.${String(path[i])}`;
    const index = path[i + 1] as number;
    if (index >= 0) out += `[${index}]`;
  }
  return out;
}

const expectedWireType = (type: FieldSpec['type']): number =>
  type === 'int32' || type === 'int64' || type === 'uint64'
    ? WireType.VARINT
    : type === 'float'
      ? WireType.I32
      : type === 'double'
        ? WireType.I64
        : WireType.LEN;

type Obj = Record<string, unknown> & Message;

/** A fresh copy (Buffer's own slice() would return a view into Node's shared pool). */
const copyOf = (buf: Uint8Array, start: number, end: number): Uint8Array => Uint8Array.prototype.slice.call(buf, start, end);

function formOf(msg: Obj): WireForm {
  return (msg[wireForm] ??= {});
}

function decodeInto(ctx: Ctx, spec: MessageSpec, end: number, msg: Obj, depth: number): Obj {
  if (depth > ctx.maxDepth) throw new Problem(`recursion too deep: messages nested more than ${ctx.maxDepth} levels`);
  const { reader } = ctx;
  // Unpacked elements of repeated numeric fields, gathered until the field's next packed chunk or the end.
  let pending: Map<FieldSpec, (number | bigint)[]> | undefined;
  while (reader.pos < end) {
    ctx.offset = reader.pos;
    const tag = readVarint64(reader);
    if (tag.hi !== 0 || tag.lo > 0xffffffff) throw new Problem('invalid tag (field number too large)');
    const no = tag.lo >>> 3;
    const wt = tag.lo & 7;
    if (no === 0) throw new Problem('invalid tag: field number 0');
    const field = spec.byNumber.get(no);
    if (field === undefined) {
      readUnknown(ctx, msg, no, wt, end);
    } else if (!isScalar(field.type)) {
      if (wt !== WireType.LEN) throw wrongWireType(field, wt);
      readSubMessage(ctx, field, msg, end, depth);
    } else if (field.repeated && isPackable(field.type)) {
      if (wt === WireType.LEN) {
        if (pending?.has(field)) flushPending(msg, field, pending);
        readPacked(ctx, field, msg, end);
        if (!field.packed) (formOf(msg).packing ??= {})[no] = true;
      } else if (wt === expectedWireType(field.type)) {
        pending ??= new Map();
        let list = pending.get(field);
        if (list === undefined) pending.set(field, (list = []));
        const start = reader.pos;
        const index = ((msg[field.name] as NumericArray | undefined)?.length ?? 0) + list.length;
        list.push(readNumber(ctx, field, field.type, msg, index, end, start));
        if (field.packed) (formOf(msg).packing ??= {})[no] = false;
      } else {
        throw wrongWireType(field, wt);
      }
    } else {
      if (wt !== expectedWireType(field.type)) throw wrongWireType(field, wt);
      const start = reader.pos;
      if (field.repeated) {
        const list = ((msg[field.name] as unknown[] | undefined) ??= []);
        list.push(readScalar(ctx, field, msg, list.length, end, start));
      } else {
        msg[field.name] = readScalar(ctx, field, msg, 0, end, start);
      }
    }
    if (reader.pos > end) throw new Problem(`field ${no} runs past the end of its message (byte ${end})`);
  }
  if (pending !== undefined) for (const field of pending.keys()) flushPending(msg, field, pending);
  return msg;
}

function wrongWireType(field: FieldSpec, wt: number): Problem {
  return new Problem(
    `wrong wire type ${wt} for field ${field.no} '${field.name}' (${field.repeated ? 'repeated ' : ''}${field.type})`,
  );
}

function readLength(ctx: Ctx, end: number): number {
  const len = readVarint64(ctx.reader);
  const at = ctx.reader.pos;
  if (len.hi !== 0 || at + len.lo > end) {
    throw new Problem(`length ${bitsToBigInt(len)} runs past the end of the ${end === ctx.buf.length ? 'input' : 'enclosing message'} (byte ${end})`);
  }
  return len.lo;
}

function readSubMessage(ctx: Ctx, field: FieldSpec, msg: Obj, end: number, depth: number): void {
  const len = readLength(ctx, end);
  const subEnd = ctx.reader.pos + len;
  const subSpec = SCHEMA[field.type as MessageName];
  let target: Obj;
  let index = -1;
  if (field.repeated) {
    const list = ((msg[field.name] as Obj[] | undefined) ??= []);
    index = list.length;
    list.push((target = {}));
  } else {
    // A singular message seen twice merges, as protobuf parsers do.
    target = ((msg[field.name] as Obj | undefined) ??= {});
  }
  ctx.path.push(field.name, index);
  decodeInto(ctx, subSpec, subEnd, target, depth + 1);
  ctx.path.length -= 2;
  if (ctx.reader.pos !== subEnd) throw new Problem(`message field ${field.no} ends at ${ctx.reader.pos}, not ${subEnd}`);
}

function recordVerbatim(ctx: Ctx, msg: Obj, no: number, index: number, value: unknown, start: number): void {
  (formOf(msg).verbatim ??= []).push({ no, index, value, data: copyOf(ctx.buf, start, ctx.reader.pos) });
}

function readScalar(ctx: Ctx, field: FieldSpec, msg: Obj, index: number, end: number, start: number): unknown {
  const type = field.type as ScalarType;
  if (type === 'string' || type === 'bytes') {
    const len = readLength(ctx, end);
    const pos = ctx.reader.pos;
    const bytes = ctx.buf.subarray(pos, pos + len);
    ctx.reader.pos = pos + len;
    if (type === 'bytes') return bytes;
    try {
      return utf8Strict.decode(bytes);
    } catch {
      // Not UTF-8 (proto2 parsers accept it): keep the bytes so encode writes them back unchanged.
      const text = utf8Lenient.decode(bytes);
      recordVerbatim(ctx, msg, field.no, index, text, start);
      return text;
    }
  }
  return readNumber(ctx, field, type, msg, index, end, start);
}

function readNumber(
  ctx: Ctx,
  field: FieldSpec,
  type: FieldSpec['type'],
  msg: Obj,
  index: number,
  end: number,
  start: number,
): number | bigint {
  const { reader } = ctx;
  switch (type) {
    case 'float': {
      if (reader.pos + 4 > end) throw new Problem('truncated float');
      const v = reader.float();
      if (Number.isNaN(v)) recordVerbatim(ctx, msg, field.no, index, v, start);
      return v;
    }
    case 'double': {
      if (reader.pos + 8 > end) throw new Problem('truncated double');
      const v = reader.double();
      if (Number.isNaN(v)) recordVerbatim(ctx, msg, field.no, index, v, start);
      return v;
    }
    case 'int32': {
      const bits = readVarint64(reader);
      const v = bits.lo | 0;
      const canonical = v < 0 ? bits.hi === 0xffffffff && reader.pos - start === 10 : bits.hi === 0 && reader.pos - start === varintLength(bits);
      if (!canonical) recordVerbatim(ctx, msg, field.no, index, v, start);
      return v;
    }
    default: {
      const bits = readVarint64(reader);
      const v = type === 'uint64' ? bitsToBigInt(bits) : bitsToInt64(bits);
      if (reader.pos - start !== varintLength(bits)) recordVerbatim(ctx, msg, field.no, index, v, start);
      return v;
    }
  }
}

type NumericArray = Int32Array | BigInt64Array | BigUint64Array | Float32Array | Float64Array;

function emptyArray(type: FieldSpec['type'], length: number): NumericArray {
  switch (type) {
    case 'int32':
      return new Int32Array(length);
    case 'int64':
      return new BigInt64Array(length);
    case 'uint64':
      return new BigUint64Array(length);
    case 'float':
      return new Float32Array(length);
    default:
      return new Float64Array(length);
  }
}

function appendArray(msg: Obj, field: FieldSpec, more: NumericArray): void {
  const existing = msg[field.name] as NumericArray | undefined;
  if (existing === undefined || existing.length === 0) {
    msg[field.name] = more;
    return;
  }
  const joined = emptyArray(field.type, existing.length + more.length);
  joined.set(existing as never);
  joined.set(more as never, existing.length);
  msg[field.name] = joined;
}

function flushPending(msg: Obj, field: FieldSpec, pending: Map<FieldSpec, (number | bigint)[]>): void {
  const list = pending.get(field);
  pending.delete(field);
  if (list === undefined) return;
  const arr = emptyArray(field.type, list.length);
  for (let i = 0; i < list.length; i++) (arr as unknown as (number | bigint)[])[i] = list[i] as never;
  appendArray(msg, field, arr);
}

function readPacked(ctx: Ctx, field: FieldSpec, msg: Obj, end: number): void {
  const len = readLength(ctx, end);
  const { reader, buf } = ctx;
  const pos = reader.pos;
  const chunkEnd = pos + len;
  if (field.type === 'float' || field.type === 'double') {
    const width = field.type === 'float' ? 4 : 8;
    if (len % width !== 0) throw new Problem(`packed ${field.type} field ${field.no} has ${len} bytes, not a multiple of ${width}`);
    const copy = copyOf(buf, pos, chunkEnd);
    appendArray(msg, field, field.type === 'float' ? new Float32Array(copy.buffer) : new Float64Array(copy.buffer));
    reader.pos = chunkEnd;
    return;
  }
  // Each varint ends with exactly one byte below 0x80: count them to size the array.
  let count = 0;
  for (let i = pos; i < chunkEnd; i++) if (buf[i]! < 0x80) count++;
  if (len > 0 && buf[chunkEnd - 1]! >= 0x80) throw new Problem(`packed field ${field.no} ends inside a varint`);
  const arr = emptyArray(field.type, count);
  for (let i = 0; i < count; i++) {
    const bits = readVarint64(reader);
    if (field.type === 'int32') (arr as Int32Array)[i] = bits.lo | 0;
    else (arr as BigInt64Array)[i] = bitsToBigInt(bits);
  }
  if (reader.pos !== chunkEnd) throw new Problem(`packed field ${field.no} does not end at byte ${chunkEnd}`);
  appendArray(msg, field, arr);
}

function readUnknown(ctx: Ctx, msg: Obj, no: number, wt: number, end: number): void {
  const { reader, buf } = ctx;
  const start = reader.pos;
  switch (wt) {
    case WireType.VARINT:
      readVarint64(reader);
      break;
    case WireType.I64:
      if (start + 8 > end) throw new Problem(`truncated fixed64 in unknown field ${no}`);
      reader.pos = start + 8;
      break;
    case WireType.I32:
      if (start + 4 > end) throw new Problem(`truncated fixed32 in unknown field ${no}`);
      reader.pos = start + 4;
      break;
    case WireType.LEN: {
      const len = readLength(ctx, end);
      reader.pos += len;
      break;
    }
    case WireType.SGROUP:
      skipGroup(ctx, no, end);
      break;
    case WireType.EGROUP:
      throw new Problem(`unexpected end-group tag for field ${no}`);
    default:
      throw new Problem(`bad wire type ${wt} (field ${no})`);
  }
  if (reader.pos > end) throw new Problem(`unknown field ${no} runs past the end of its message (byte ${end})`);
  const field: UnknownField = { no, wireType: wt, data: copyOf(buf, start, reader.pos) };
  (msg.unknownFields ??= []).push(field);
}

/** Skips a (deprecated) group iteratively, up to its matching end-group tag. */
function skipGroup(ctx: Ctx, no: number, end: number): void {
  const { reader } = ctx;
  const open: number[] = [no];
  while (open.length > 0) {
    if (open.length > ctx.maxDepth) throw new Problem(`recursion too deep: groups nested more than ${ctx.maxDepth} levels`);
    if (reader.pos >= end) throw new Problem(`group ${no} has no end-group tag`);
    const tag = readVarint64(reader);
    if (tag.hi !== 0) throw new Problem('invalid tag inside group');
    const inner = tag.lo >>> 3;
    const wt = tag.lo & 7;
    if (inner === 0) throw new Problem('invalid tag inside group: field number 0');
    if (wt === WireType.EGROUP) {
      if (open.pop() !== inner) throw new Problem(`end-group tag ${inner} does not match the open group`);
    } else if (wt === WireType.SGROUP) {
      open.push(inner);
    } else if (wt === WireType.VARINT) {
      readVarint64(reader);
    } else if (wt === WireType.I64 || wt === WireType.I32) {
      reader.pos += wt === WireType.I64 ? 8 : 4;
    } else if (wt === WireType.LEN) {
      reader.pos += readLength(ctx, end);
    } else {
      throw new Problem(`bad wire type ${wt} inside group`);
    }
    if (reader.pos > end) throw new Problem(`group ${no} runs past the end of its message`);
  }
}
