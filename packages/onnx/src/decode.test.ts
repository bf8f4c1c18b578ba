// Malformed input gives an OnnxDecodeError naming the file, the message path, the byte offset and the problem.
import { describe, expect, it } from 'vitest';
import { decodeModel, encodeModel } from './codec.js';
import { decodeMessage } from './decode.js';
import { OnnxDecodeError } from './errors.js';
import type { ModelProto } from './types.js';

function decodeError(bytes: Uint8Array, file = 'model.onnx'): OnnxDecodeError {
  try {
    decodeModel(bytes, { file });
  } catch (error) {
    if (error instanceof OnnxDecodeError) return error;
    throw error;
  }
  throw new Error('decoded without error');
}

const twoNodes = (attr: object): ModelProto => ({
  irVersion: 8n,
  graph: { node: [{ opType: 'A' }, { opType: 'B', attribute: [attr] }] },
});

describe('decode errors', () => {
  it('names the message path, the offset and a wrong wire type for a known field', () => {
    // AttributeProto.i (field 3, varint) written with wire type 2.
    const bytes = encodeModel(twoNodes({ name: 'x', unknownFields: [{ no: 3, wireType: 2, data: Uint8Array.of(1, 0) }] }));
    const e = decodeError(bytes);
    expect(e.path).toBe('ModelProto.graph.node[1].attribute[0]');
    expect(e.problem).toMatch(/wrong wire type 2 for field 3 'i'/);
    expect(e.message).toMatch(/^model\.onnx: ModelProto\.graph\.node\[1\]\.attribute\[0\] at byte \d+: /);
    expect(bytes[e.offset]).toBe((3 << 3) | 2);
  });

  it('refuses a bad wire type', () => {
    const e = decodeError(encodeModel(twoNodes({ unknownFields: [{ no: 5000, wireType: 7, data: new Uint8Array() }] })));
    expect(e.problem).toMatch(/bad wire type 7/);
  });

  it('refuses a length past the end, truncated input and an over-long varint', () => {
    const bytes = encodeModel(twoNodes({ name: 'alpha', i: 3n }));
    expect(decodeError(bytes.subarray(0, bytes.length - 3)).problem).toMatch(/runs past the end/);
    expect(decodeError(Uint8Array.of(0x08)).problem).toMatch(/truncated/);
    expect(decodeError(Uint8Array.of(0x08, ...new Array<number>(11).fill(0xff), 0x01)).problem).toMatch(/invalid varint/);
    expect(decodeError(Uint8Array.of(0x00)).problem).toMatch(/field number 0/);
  });

  it('stops at 100 nested messages instead of overflowing the stack', () => {
    expect(() => decodeMessage(nestedTypes(2000), 'TypeProto')).toThrow(/recursion too deep/);
    expect(() => decodeMessage(nestedTypes(49), 'TypeProto')).not.toThrow(); // 98 levels
    // Even with the limit lifted, a stack overflow surfaces as a decode error.
    expect(() => decodeMessage(nestedTypes(2000), 'TypeProto', { maxDepth: 1e9 })).toThrow(OnnxDecodeError);
  });
});

/** TypeProto{sequence_type: {elem_type: TypeProto{...}}}, `levels` deep (two messages per level). */
function nestedTypes(levels: number): Uint8Array {
  let inner: number[] = [];
  for (let k = 0; k < levels; k++) {
    const seq = [0x0a, ...varint(inner.length), ...inner];
    inner = [0x22, ...varint(seq.length), ...seq];
  }
  return Uint8Array.from(inner);
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}
