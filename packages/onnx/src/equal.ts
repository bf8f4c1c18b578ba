// Field-by-field comparison of two decoded messages, driven by the schema: what "the same model" means
// when bytes may legitimately differ (packed vs unpacked, non-canonical varints). An absent repeated field
// equals an empty one (both encode to nothing); unknown fields compare by number, wire type and bytes.
import { SCHEMA, isScalar, type MessageName, type MessageSpec } from './schema.js';
import type { Message, UnknownField } from './types.js';

type Obj = Record<string, unknown> & Message;

/** The path and reason of the first difference between two messages, or undefined when they are equal. */
export function diffMessages(a: Message, b: Message, type: MessageName = 'ModelProto'): string | undefined {
  return diff(SCHEMA[type], a as Obj, b as Obj, type);
}

/** True when two messages hold the same known fields with the same values and the same unknown fields. */
export function messagesEqual(a: Message, b: Message, type: MessageName = 'ModelProto'): boolean {
  return diffMessages(a, b, type) === undefined;
}

function diff(spec: MessageSpec, a: Obj, b: Obj, path: string): string | undefined {
  for (const field of spec.fields) {
    const x = a[field.name];
    const y = b[field.name];
    const here = `${path}.${field.name}`;
    if (field.repeated) {
      const xs = (x ?? []) as ArrayLike<unknown>;
      const ys = (y ?? []) as ArrayLike<unknown>;
      if (xs.length !== ys.length) return `${here}: ${xs.length} vs ${ys.length} elements`;
      if (ArrayBuffer.isView(xs) && ArrayBuffer.isView(ys) && xs.constructor === ys.constructor) {
        // Typed arrays: compare the bits, so NaN payloads count too.
        if (!bytesEqual(asBytes(xs), asBytes(ys))) return `${here}: elements differ`;
        continue;
      }
      for (let i = 0; i < xs.length; i++) {
        const d = isScalar(field.type)
          ? diffScalar(xs[i], ys[i], `${here}[${i}]`)
          : diff(SCHEMA[field.type as MessageName], xs[i] as Obj, ys[i] as Obj, `${here}[${i}]`);
        if (d !== undefined) return d;
      }
    } else if (x === undefined || y === undefined) {
      if (x !== y) return `${here}: ${x === undefined ? 'absent' : 'present'} vs ${y === undefined ? 'absent' : 'present'}`;
    } else {
      const d = isScalar(field.type)
        ? diffScalar(x, y, here)
        : diff(SCHEMA[field.type as MessageName], x as Obj, y as Obj, here);
      if (d !== undefined) return d;
    }
  }
  return diffUnknown(a.unknownFields ?? [], b.unknownFields ?? [], path);
}

function diffScalar(x: unknown, y: unknown, path: string): string | undefined {
  if (x instanceof Uint8Array && y instanceof Uint8Array) return bytesEqual(x, y) ? undefined : `${path}: bytes differ`;
  // Object.is: NaN equals NaN, 0 differs from -0 (they are different bits on the wire).
  return Object.is(x, y) ? undefined : `${path}: ${String(x)} vs ${String(y)}`;
}

/** Protobuf gives meaning to the order of values within one field number only: compare stably sorted by number. */
function diffUnknown(xsIn: readonly UnknownField[], ysIn: readonly UnknownField[], path: string): string | undefined {
  const byNumber = (a: UnknownField, b: UnknownField): number => a.no - b.no;
  const xs = [...xsIn].sort(byNumber);
  const ys = [...ysIn].sort(byNumber);
  if (xs.length !== ys.length) return `${path}: ${xs.length} vs ${ys.length} unknown fields`;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i]!;
    const y = ys[i]!;
    if (x.no !== y.no || x.wireType !== y.wireType || !bytesEqual(x.data, y.data)) {
      return `${path}: unknown field #${i} differs (field ${x.no} vs ${y.no})`;
    }
  }
  return undefined;
}

const asBytes = (v: ArrayBufferView): Uint8Array => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return Buffer.compare(
    Buffer.from(a.buffer, a.byteOffset, a.byteLength),
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  ) === 0;
}
