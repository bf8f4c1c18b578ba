// Anchor cases for each leaf of the spec algebra, written out by hand as 0/1 masks.

import { describe, expect, test } from 'vitest';
import { BlockClass, classifyBlockRow, keeps, keptPairs, type MaskDims, rowCount } from './mask-query.js';
import {
  blockSparse,
  causal,
  dense,
  dilatedWindow,
  globalTokens,
  type MaskSpec,
  sinks,
  slidingWindow,
  topkBlocks,
  union,
} from './spec.js';

function picture(spec: MaskSpec, dims: MaskDims): string[] {
  const rows: string[] = [];
  for (let i = 0; i < dims.nq; i++) {
    let row = '';
    for (let j = 0; j < dims.nk; j++) row += keeps(spec, i, j, dims) ? '1' : '.';
    rows.push(row);
  }
  return rows;
}

describe('leaves, drawn', () => {
  test('causal top-left and bottom-right on 3 queries x 5 keys', () => {
    expect(picture(causal(), { nq: 3, nk: 5 })).toEqual(['1....', '11...', '111..']);
    expect(picture(causal('bottom-right'), { nq: 3, nk: 5 })).toEqual(['111..', '1111.', '11111']);
  });

  test('causal aligned to the past offset (ONNX Attention with past_key)', () => {
    expect(picture(causal('past'), { nq: 2, nk: 5, past: 1 })).toEqual(['11...', '111..']);
  });

  test('sliding window of 1 left, 1 right', () => {
    expect(picture(slidingWindow(1, 1), { nq: 4, nk: 4 })).toEqual(['11..', '111.', '.111', '..11']);
  });

  test('dilated window: left 4, dilation 2', () => {
    expect(picture(dilatedWindow(4, 0, 2), { nq: 6, nk: 6 })).toEqual([
      '1.....',
      '.1....',
      '1.1...',
      '.1.1..',
      '1.1.1.',
      '.1.1.1',
    ]);
  });

  test('sinks and global tokens', () => {
    expect(picture(sinks(2), { nq: 2, nk: 4 })).toEqual(['11..', '11..']);
    expect(picture(globalTokens([2]), { nq: 4, nk: 4 })).toEqual(['..1.', '..1.', '1111', '..1.']);
    // decoding the token at position 3: the query's position is its index plus the offset
    expect(picture(globalTokens([0, 3], 'bottom-right'), { nq: 1, nk: 4 })).toEqual(['1111']);
    expect(picture(globalTokens([0, 2], 'bottom-right'), { nq: 1, nk: 4 })).toEqual(['1.1.']);
  });

  test('block-sparse with 2x2 blocks; rows past the layout see nothing', () => {
    expect(picture(blockSparse(2, 2, [[0], [1]]), { nq: 6, nk: 4 })).toEqual([
      '11..',
      '11..',
      '..11',
      '..11',
      '....',
      '....',
    ]);
  });

  test('streaming attention: sinks + causal window', () => {
    const spec = union(sinks(1), slidingWindow(1, 0));
    expect(picture(spec, { nq: 5, nk: 5 })).toEqual(['1....', '11...', '111..', '1.11.', '1..11']);
    expect(rowCount(spec, 4, { nq: 5, nk: 5 })).toBe(3);
  });
});

describe('block classification', () => {
  test('causal with 2x2 blocks: diagonal blocks are partial, below full, above empty', () => {
    const dims = { nq: 6, nk: 6 };
    expect([...classifyBlockRow(causal(), 0, 2, 2, dims)]).toEqual([BlockClass.Partial, BlockClass.Empty, BlockClass.Empty]);
    expect([...classifyBlockRow(causal(), 2, 2, 2, dims)]).toEqual([BlockClass.Full, BlockClass.Full, BlockClass.Partial]);
  });

  test('edge blocks are judged on their clipped extent', () => {
    expect([...classifyBlockRow(dense, 1, 4, 4, { nq: 5, nk: 6 })]).toEqual([BlockClass.Full, BlockClass.Full]);
  });
});

test('a data-dependent leaf needs a resolver', () => {
  expect(() => keeps(topkBlocks(4, 1), 0, 0, { nq: 4, nk: 4 })).toThrow(/data-dependent/);
});

describe('keptPairs with a row stride', () => {
  test('stride 1 is the exact count; stride s counts rows 0, s, 2s, ... each for itself and the s - 1 rows after it', () => {
    const dims = { nq: 1001, nk: 1001 };
    // causal: row i keeps i + 1 keys
    expect(keptPairs(causal(), dims)).toBe((1001 * 1002) / 2);
    let estimate = 0;
    for (let i = 0; i < 1001; i += 4) estimate += (i + 1) * Math.min(4, 1001 - i);
    expect(keptPairs(causal(), dims, undefined, 4)).toBe(estimate);
    // a window keeps the same count on every row past its start: the estimate is exact there
    const band = slidingWindow(7, 0);
    expect(Math.abs(keptPairs(band, dims, undefined, 4) - keptPairs(band, dims))).toBeLessThanOrEqual(4 * 8);
  });
});
