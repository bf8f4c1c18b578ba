import { describe, expect, test } from 'vitest';
import { differenceSets, fromPoints, fromRanges, intersectSets, members, range, size, unionSets } from './interval-set.js';

describe('interval sets', () => {
  test('normalize overlapping and touching ranges', () => {
    expect(fromRanges([[5, 7], [0, 2], [2, 3], [6, 9], [4, 4]])).toEqual([0, 3, 5, 9]);
    expect(fromPoints([3, 1, 2, 7])).toEqual([1, 4, 7, 8]);
  });

  test('range clips to [0, n)', () => {
    expect(range(-3, 2, 10)).toEqual([0, 2]);
    expect(range(8, 20, 10)).toEqual([8, 10]);
    expect(range(5, 5, 10)).toEqual([]);
  });

  test('union, intersection and difference agree with member sets', () => {
    const a = fromRanges([[0, 4], [6, 10], [12, 13]]);
    const b = fromRanges([[2, 7], [9, 12]]);
    const A = new Set(members(a));
    const B = new Set(members(b));
    expect(members(unionSets(a, b))).toEqual([...new Set([...A, ...B])].sort((x, y) => x - y));
    expect(members(intersectSets(a, b))).toEqual([...A].filter((x) => B.has(x)));
    expect(members(differenceSets(a, b))).toEqual([...A].filter((x) => !B.has(x)));
    expect(size(a)).toBe(A.size);
  });
});
