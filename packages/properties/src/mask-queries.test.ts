// For every spec, the predicate, the per-row key sets and counts, and the block classification agree
// with a mask materialized from the predicate, for sequence lengths up to 256; union, intersection and
// difference obey the set laws.

import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  BlockClass,
  classifyBlockRow,
  dense,
  difference,
  empty,
  intersect,
  intervals,
  keeps,
  type LeafResolver,
  type MaskDims,
  type MaskSpec,
  rowCount,
  rowKeys,
  union,
} from '@attnopt/ir';
import { maskSpecArbitrary } from './arbitraries/spec.js';

/** A deterministic stand-in for Q/K-driven selection: a pseudo-random key set per (leaf, row). */
const fakeResolver: LeafResolver = (leaf, row, dims) => {
  let h = 2166136261 ^ row ^ (leaf.kind === 'lsh' ? leaf.seed * 31 : leaf.k * 131 + leaf.block);
  const points: number[] = [];
  for (let j = 0; j < dims.nk; j++) {
    h = Math.imul(h ^ j, 16777619) >>> 0;
    if (h % 3 === 0) points.push(j);
  }
  return intervals.fromPoints(points);
};

const dimsArbitrary: fc.Arbitrary<MaskDims> = fc
  .tuple(
    fc.oneof(fc.integer({ min: 1, max: 24 }), fc.integer({ min: 1, max: 256 })),
    fc.oneof(fc.integer({ min: 1, max: 24 }), fc.integer({ min: 1, max: 256 })),
  )
  .chain(([nq, nk]) => fc.integer({ min: 0, max: nk }).map((past) => ({ nq, nk, past })));

function materialize(spec: MaskSpec, dims: MaskDims): Uint8Array {
  const m = new Uint8Array(dims.nq * dims.nk);
  for (let i = 0; i < dims.nq; i++) {
    for (let j = 0; j < dims.nk; j++) m[i * dims.nk + j] = keeps(spec, i, j, dims, fakeResolver) ? 1 : 0;
  }
  return m;
}

function classifyFromMask(mask: Uint8Array, dims: MaskDims, r: number, bq: number, bk: number): number[] {
  const out: number[] = [];
  for (let c = 0; c * bk < dims.nk; c++) {
    let kept = 0;
    let total = 0;
    for (let i = r * bq; i < Math.min(dims.nq, (r + 1) * bq); i++) {
      for (let j = c * bk; j < Math.min(dims.nk, (c + 1) * bk); j++) {
        total++;
        kept += mask[i * dims.nk + j]!;
      }
    }
    out.push(kept === 0 ? BlockClass.Empty : kept === total ? BlockClass.Full : BlockClass.Partial);
  }
  return out;
}

const specs = maskSpecArbitrary({ maxLen: 256, maxDepth: 2 });
const runs = { seed: 20261125, numRuns: 300 };

describe('mask queries agree with the materialized mask (n <= 256)', () => {
  test('rowKeys and rowCount match each row of the predicate', () => {
    fc.assert(
      fc.property(specs, dimsArbitrary, (spec, dims) => {
        const mask = materialize(spec, dims);
        for (let i = 0; i < dims.nq; i++) {
          const expected: number[] = [];
          for (let j = 0; j < dims.nk; j++) if (mask[i * dims.nk + j]) expected.push(j);
          expect(intervals.members(rowKeys(spec, i, dims, fakeResolver))).toEqual(expected);
          expect(rowCount(spec, i, dims, fakeResolver)).toBe(expected.length);
        }
      }),
      runs,
    );
  });

  test('block classification (empty / partial / full) matches the materialized blocks', () => {
    fc.assert(
      fc.property(
        specs,
        dimsArbitrary,
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 64 }),
        (spec, dims, bq, bk) => {
          const mask = materialize(spec, dims);
          for (let r = 0; r * bq < dims.nq; r++) {
            expect([...classifyBlockRow(spec, r, bq, bk, dims, fakeResolver)]).toEqual(
              classifyFromMask(mask, dims, r, bq, bk),
            );
          }
        },
      ),
      runs,
    );
  });

  test('a data-dependent spec without a resolver is refused, not guessed', () => {
    fc.assert(
      fc.property(specs, dimsArbitrary, (spec, dims) => {
        const usesData = JSON.stringify(spec).match(/"kind":"(topkBlocks|lsh)"/) !== null;
        const ask = () => {
          for (let i = 0; i < dims.nq; i++) rowKeys(spec, i, dims);
        };
        if (usesData) expect(ask).toThrow(/data-dependent/);
        else expect(ask).not.toThrow();
      }),
      { seed: 7, numRuns: 200 },
    );
  });
});

describe('set laws of union, intersection and difference (checked on materialized masks)', () => {
  const small = maskSpecArbitrary({ maxLen: 48, maxDepth: 1 });
  const smallDims: fc.Arbitrary<MaskDims> = fc
    .tuple(fc.integer({ min: 1, max: 48 }), fc.integer({ min: 1, max: 48 }))
    .chain(([nq, nk]) => fc.integer({ min: 0, max: nk }).map((past) => ({ nq, nk, past })));
  const same = (a: MaskSpec, b: MaskSpec, dims: MaskDims) => expect(materialize(a, dims)).toEqual(materialize(b, dims));
  const laws: [string, (a: MaskSpec, b: MaskSpec, c: MaskSpec) => [MaskSpec, MaskSpec]][] = [
    ['union is commutative', (a, b) => [union(a, b), union(b, a)]],
    ['intersection is commutative', (a, b) => [intersect(a, b), intersect(b, a)]],
    ['union is associative', (a, b, c) => [union(union(a, b), c), union(a, union(b, c))]],
    ['intersection is associative', (a, b, c) => [intersect(intersect(a, b), c), intersect(a, intersect(b, c))]],
    ['union is idempotent', (a) => [union(a, a), a]],
    ['intersection is idempotent', (a) => [intersect(a, a), a]],
    ['empty is the identity of union', (a) => [union(a, empty), a]],
    ['dense is the identity of intersection', (a) => [intersect(a, dense), a]],
    ['intersection distributes over union', (a, b, c) => [intersect(a, union(b, c)), union(intersect(a, b), intersect(a, c))]],
    ['union distributes over intersection', (a, b, c) => [union(a, intersect(b, c)), intersect(union(a, b), union(a, c))]],
    ['absorption', (a, b) => [union(a, intersect(a, b)), a]],
    ['De Morgan', (a, b) => [difference(dense, union(a, b)), intersect(difference(dense, a), difference(dense, b))]],
    ['a minus a is empty', (a) => [difference(a, a), empty]],
    ['difference is intersection with the complement', (a, b) => [difference(a, b), intersect(a, difference(dense, b))]],
  ];
  for (const [name, law] of laws) {
    test(name, () => {
      fc.assert(
        fc.property(small, small, small, smallDims, (a, b, c, dims) => {
          const [lhs, rhs] = law(a, b, c);
          same(lhs, rhs, dims);
        }),
        { seed: 11, numRuns: 150 },
      );
    });
  }
});
