import { describe, expect, test } from 'vitest';
import { Tensor } from './tensor.js';

describe('Tensor', () => {
  test('values round-trip through bytes for every encodable dtype', () => {
    const vals = [0, 1, -2, 3, 100, -7];
    for (const dtype of ['f32', 'f64', 'f16', 'bf16', 'i8', 'i16', 'i32', 'i64'] as const) {
      const t = Tensor.fromValues(dtype, [2, 3], vals);
      expect([...t.toFloat64()]).toEqual(vals);
      expect(Tensor.fromBytes(dtype, [2, 3], t.bytes()).equals(t)).toBe(true);
    }
  });

  test('int64 beyond 2^53 is exact through bigints()', () => {
    const big = 2n ** 62n + 1n;
    expect(Tensor.fromValues('i64', [1], [big]).bigints()[0]).toBe(big);
  });

  test('a byte count that does not fit the shape is an error naming both', () => {
    expect(() => Tensor.fromBytes('f32', [3], new Uint8Array(8))).toThrow(/f32\[3\] needs 12 bytes, got 8/);
  });

  test('lazy tensors read once and check the length they get', () => {
    let reads = 0;
    const t = Tensor.lazy('f32', [2], () => {
      reads++;
      return new Uint8Array(8);
    });
    expect(t.isLazy).toBe(true);
    t.bytes();
    t.bytes();
    expect(reads).toBe(1);
    expect(() => Tensor.lazy('f32', [2], () => new Uint8Array(4)).bytes()).toThrow(/external data has 4 bytes, expected 8/);
  });

  test('sub-byte types pack two per byte', () => {
    expect(Tensor.fromBytes('i4', [3], new Uint8Array(2)).byteLength).toBe(2);
  });
});

test('integers outside the dtype range, or not integers, are refused rather than wrapped', () => {
  expect(() => Tensor.fromValues('i8', [1], [300])).toThrow(/element 0 = 300 is not an integer in the i8 range/);
  expect(() => Tensor.fromValues('i32', [1], [1.5])).toThrow(/not an integer/);
  expect(() => Tensor.fromValues('u64', [1], [-1n])).toThrow(/u64 range/);
  expect([...Tensor.fromValues('u8', [2], [0, 255]).toFloat64()]).toEqual([0, 255]);
});
