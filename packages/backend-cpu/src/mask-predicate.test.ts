import { describe, it } from 'vitest';
import fc from 'fast-check';
import { keeps, type MaskSpec } from '@attnopt/ir';
import { maskSpecArbitrary } from '@attnopt/properties';
import { compileMaskPredicate, maskPredicateSource } from './mask-predicate.js';
import { expect } from 'vitest';

describe('compileMaskPredicate', () => {
  it('for any index spec and dims, agrees with keeps() on every (i, j)', () => {
    fc.assert(
      fc.property(
        maskSpecArbitrary({ maxLen: 20, dataDependent: false }) as fc.Arbitrary<MaskSpec>,
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 0, max: 5 }),
        (spec, nq, nk, past) => {
          const dims = { nq, nk, past };
          const keep = compileMaskPredicate(spec, dims);
          for (let i = 0; i < nq; i++) for (let j = 0; j < nk; j++) if (keep(i, j) !== keeps(spec, i, j, dims)) throw new Error(`(${i}, ${j})`);
        },
      ),
      { numRuns: 300 },
    );
  });
  it('inlines index leaves', () => {
    expect(maskPredicateSource({ kind: 'union', parts: [{ kind: 'causal', align: 'top-left' }, { kind: 'sinks', count: 4 }] })).toBe('((j <= i + oTL) || (j < 4))');
  });
});
