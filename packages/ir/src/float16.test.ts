import { describe, expect, test } from 'vitest';
import { bfloat16ToFloat, floatToBfloat16, floatToHalf, halfToFloat } from './float16.js';

describe('binary16', () => {
  test('known bit patterns (IEEE 754-2008 table values)', () => {
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc000)).toBe(-2);
    expect(halfToFloat(0x7bff)).toBe(65504);
    expect(halfToFloat(0x0001)).toBe(2 ** -24);
    expect(halfToFloat(0x7c00)).toBe(Infinity);
    expect(halfToFloat(0xfc00)).toBe(-Infinity);
    expect(Number.isNaN(halfToFloat(0x7e00))).toBe(true);
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
  });

  test('every one of the 65536 patterns round-trips through encode (NaNs stay NaN)', () => {
    for (let h = 0; h < 0x10000; h++) {
      const x = halfToFloat(h);
      if (Number.isNaN(x)) expect(Number.isNaN(halfToFloat(floatToHalf(x)))).toBe(true);
      else expect(floatToHalf(x)).toBe(h);
    }
  });

  test('rounds to nearest, ties to even, and overflows to infinity', () => {
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00); // tie: 1.0 is even
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie: rounds up to even mantissa
    expect(floatToHalf(65520)).toBe(0x7c00);
    expect(floatToHalf(2 ** -25)).toBe(0x0000); // tie between 0 and the smallest subnormal: 0 is even
  });
});

describe('bfloat16', () => {
  test('known values and round-to-nearest-even', () => {
    expect(bfloat16ToFloat(0x3f80)).toBe(1);
    expect(floatToBfloat16(1)).toBe(0x3f80);
    expect(floatToBfloat16(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(floatToBfloat16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(Number.isNaN(bfloat16ToFloat(floatToBfloat16(NaN)))).toBe(true);
  });
});
