import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { intervals, type MaskSpec, rowKeys } from '@attnopt/ir';
import { dataLeafResolver } from '@attnopt/reference';
import { maskSpecArbitrary, seededValues } from '@attnopt/properties';
import { compileMaskPredicate, maskPredicateSource } from './mask-predicate.js';

const dimsArbitrary = fc.record({ nq: fc.integer({ min: 1, max: 20 }), nk: fc.integer({ min: 1, max: 20 }), past: fc.integer({ min: 0, max: 5 }) });

describe('compileMaskPredicate', () => {
  it('for any index spec and dims, keeps exactly the keys of the reference row sets on every (i, j)', () => {
    fc.assert(
      fc.property(maskSpecArbitrary({ maxLen: 20, dataDependent: false }), dimsArbitrary, (spec, dims) => {
        const keep = compileMaskPredicate(spec, dims);
        for (let i = 0; i < dims.nq; i++) {
          const row = rowKeys(spec, i, dims);
          for (let j = 0; j < dims.nk; j++) if (keep(i, j) !== intervals.contains(row, j)) throw new Error(`(${i}, ${j})`);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('for any spec with data-dependent leaves, agrees with the reference resolved from the same Q and K', () => {
    fc.assert(
      fc.property(maskSpecArbitrary({ maxLen: 16, dataDependent: true }), dimsArbitrary, fc.integer({ min: 0, max: 1e6 }), (spec: MaskSpec, dims, seed) => {
        const d = 4;
        const resolve = dataLeafResolver({ q: seededValues(seed, dims.nq * d, 2), k: seededValues(seed + 1, dims.nk * d, 2), nq: dims.nq, nk: dims.nk, d, scale: 0.5 });
        const keep = compileMaskPredicate(spec, dims, resolve);
        for (let i = 0; i < dims.nq; i++) {
          const row = rowKeys(spec, i, dims, resolve);
          for (let j = 0; j < dims.nk; j++) if (keep(i, j) !== intervals.contains(row, j)) throw new Error(`(${i}, ${j})`);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('writes index leaves inline and shares one table per constant set', () => {
    expect(maskPredicateSource({ kind: 'union', parts: [{ kind: 'causal', align: 'top-left' }, { kind: 'sinks', count: 4 }] })).toBe('((j <= i) || (j < 4))');
    const tables: unknown[] = [];
    expect(maskPredicateSource({ kind: 'global', tokens: [0, 5], align: 'bottom-right' }, tables)).toBe('(T[0].has(j) || T[0].has((i + oBR)))');
    expect(tables).toEqual([new Set([0, 5])]);
  });
});
