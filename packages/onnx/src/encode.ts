// Schema-driven encoding: message objects -> bytes, fields in field-number order as the reference protobuf
// serializers write them, unknown fields merged back in at their field number, and the wire layout a
// decode recorded (packedness, verbatim scalars) honoured so decode -> encode gives the same bytes.
import { OnnxEncodeError } from './errors.js';
import { SCHEMA, isPackable, isScalar, type FieldSpec, type MessageName, type MessageSpec } from './schema.js';
import { WireType, wireForm, type Message, type UnknownField, type VerbatimScalar } from './types.js';
import { bigIntToLong, createWriter, writeRaw, writerLength, type Writer } from './wire.js';

/** Protobuf refuses messages of 2 GiB and more; larger models keep their weights as external data. */
export const MAX_MESSAGE_BYTES = 2 ** 31 - 1;

const MAX_DEPTH = 100;

type Obj = Record<string, unknown> & Message;

interface Ctx {
  readonly path: (string | number)[];
  readonly root: MessageName;
}

export function encodeMessage(message: Message, type: MessageName): Uint8Array {
  const writer = createWriter();
  const ctx: Ctx = { path: [], root: type };
  writeMessage(writer, ctx, SCHEMA[type], message as Obj, 0);
  if (writerLength(writer) > MAX_MESSAGE_BYTES) {
    throw new OnnxEncodeError(
      `${writerLength(writer)} bytes is over protobuf's 2 GiB limit: store large tensors as external data`,
      type,
    );
  }
  const out = writer.finish();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

function fail(ctx: Ctx, problem: string): never {
  let path: string = ctx.root;
  for (let i = 0; i < ctx.path.length; i += 2) {
    path += `.${String(ctx.path[i])}`;
    const index = ctx.path[i + 1] as number;
    if (index >= 0) path += `[${index}]`;
  }
  throw new OnnxEncodeError(problem, path);
}

const tagOf = (no: number, wt: number): number => ((no << 3) | wt) >>> 0;

function sortedUnknowns(list: readonly UnknownField[] | undefined): readonly UnknownField[] {
  if (list === undefined || list.length === 0) return [];
  for (let i = 1; i < list.length; i++) {
    if (list[i]!.no < list[i - 1]!.no) return [...list].sort((a, b) => a.no - b.no); // stable
  }
  return list;
}

function writeMessage(writer: Writer, ctx: Ctx, spec: MessageSpec, msg: Obj, depth: number): void {
  if (typeof msg !== 'object' || msg === null) fail(ctx, `expected a ${spec.name} object`);
  if (depth > MAX_DEPTH) fail(ctx, `messages nested more than ${MAX_DEPTH} levels (a cycle?)`);
  const unknowns = sortedUnknowns(msg.unknownFields);
  const form = msg[wireForm];
  let verbatim: Map<string, VerbatimScalar> | undefined;
  if (form?.verbatim !== undefined && form.verbatim.length > 0) {
    verbatim = new Map(form.verbatim.map((v) => [`${v.no}:${v.index}`, v]));
  }
  let u = 0;
  for (const field of spec.fields) {
    while (u < unknowns.length && unknowns[u]!.no < field.no) writeUnknown(writer, unknowns[u++]!);
    const value = msg[field.name];
    if (value === undefined) continue;
    ctx.path.push(field.name, -1);
    if (!isScalar(field.type)) {
      writeMessageField(writer, ctx, field, value, depth);
    } else if (field.repeated) {
      const packed = form?.packing?.[field.no] ?? field.packed;
      writeRepeatedScalar(writer, ctx, field, value, packed && isPackable(field.type), verbatim);
    } else {
      writeScalarField(writer, ctx, field, value, 0, verbatim);
    }
    ctx.path.length -= 2;
  }
  while (u < unknowns.length) writeUnknown(writer, unknowns[u++]!);
}

function writeUnknown(writer: Writer, field: UnknownField): void {
  writer.uint32(tagOf(field.no, field.wireType));
  writeRaw(writer, field.data);
}

function writeMessageField(writer: Writer, ctx: Ctx, field: FieldSpec, value: unknown, depth: number): void {
  const spec = SCHEMA[field.type as MessageName];
  const tag = tagOf(field.no, WireType.LEN);
  if (!field.repeated) {
    writer.uint32(tag).fork();
    writeMessage(writer, ctx, spec, value as Obj, depth + 1);
    writer.ldelim();
    return;
  }
  if (!Array.isArray(value)) fail(ctx, `expected an array of ${field.type}`);
  for (let i = 0; i < value.length; i++) {
    ctx.path[ctx.path.length - 1] = i;
    writer.uint32(tag).fork();
    writeMessage(writer, ctx, spec, value[i] as Obj, depth + 1);
    writer.ldelim();
  }
}

function writeScalarField(
  writer: Writer,
  ctx: Ctx,
  field: FieldSpec,
  value: unknown,
  index: number,
  verbatim: Map<string, VerbatimScalar> | undefined,
): void {
  const kept = verbatim?.get(`${field.no}:${index}`);
  if (kept !== undefined && Object.is(kept.value, value)) {
    writer.uint32(tagOf(field.no, wireTypeOf(field)));
    writeRaw(writer, kept.data);
    return;
  }
  writer.uint32(tagOf(field.no, wireTypeOf(field)));
  writeScalar(writer, ctx, field, value);
}

function wireTypeOf(field: FieldSpec): number {
  switch (field.type) {
    case 'int32':
    case 'int64':
    case 'uint64':
      return WireType.VARINT;
    case 'float':
      return WireType.I32;
    case 'double':
      return WireType.I64;
    default:
      return WireType.LEN;
  }
}

function writeScalar(writer: Writer, ctx: Ctx, field: FieldSpec, value: unknown): void {
  switch (field.type) {
    case 'int32':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31) {
        fail(ctx, `expected an int32, got ${describe(value)}`);
      }
      writer.int32(value);
      return;
    case 'int64':
    case 'uint64': {
      let v: bigint;
      if (typeof value === 'bigint') v = value;
      else if (typeof value === 'number' && Number.isSafeInteger(value)) v = BigInt(value);
      else fail(ctx, `expected a bigint, got ${describe(value)}`);
      const [lo, hi] = field.type === 'int64' ? [-(2n ** 63n), 2n ** 63n] : [0n, 2n ** 64n];
      if (v < lo || v >= hi) fail(ctx, `${v} is out of ${field.type} range`);
      writer.int64(bigIntToLong(v));
      return;
    }
    case 'float':
    case 'double':
      if (typeof value !== 'number') fail(ctx, `expected a number, got ${describe(value)}`);
      if (field.type === 'float') writer.float(value);
      else writer.double(value);
      return;
    case 'string':
      if (typeof value !== 'string') fail(ctx, `expected a string, got ${describe(value)}`);
      writer.string(value);
      return;
    default:
      if (!(value instanceof Uint8Array)) fail(ctx, `expected a Uint8Array, got ${describe(value)}`);
      writer.bytes(value);
  }
}

function describe(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
}

function writeRepeatedScalar(
  writer: Writer,
  ctx: Ctx,
  field: FieldSpec,
  value: unknown,
  packed: boolean,
  verbatim: Map<string, VerbatimScalar> | undefined,
): void {
  const isList = Array.isArray(value) || ArrayBuffer.isView(value);
  if (!isList || value instanceof DataView) fail(ctx, `expected an array of ${field.type}`);
  const list = value as ArrayLike<unknown>;
  if (list.length === 0) return;
  if (!packed) {
    for (let i = 0; i < list.length; i++) {
      ctx.path[ctx.path.length - 1] = i;
      writeScalarField(writer, ctx, field, list[i], i, verbatim);
    }
    return;
  }
  writer.uint32(tagOf(field.no, WireType.LEN));
  if (field.type === 'float' && value instanceof Float32Array) {
    writer.bytes(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  } else if (field.type === 'double' && value instanceof Float64Array) {
    writer.bytes(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  } else {
    writer.fork();
    for (let i = 0; i < list.length; i++) {
      ctx.path[ctx.path.length - 1] = i;
      writeScalar(writer, ctx, field, list[i]);
    }
    writer.ldelim();
  }
}
