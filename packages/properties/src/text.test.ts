import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseGraph, parseSpec, printGraph, printSpec, verifyGraph } from '@attnopt/ir';
import { graphArbitrary } from './arbitraries/graph.js';
import { attentionSpecArbitrary } from './arbitraries/spec.js';

describe('text form properties', () => {
  it('for any graph, print(parse(print(g))) === print(g) and the parsed graph verifies', () => {
    fc.assert(
      fc.property(graphArbitrary(), (g) => {
        const text = printGraph(g);
        const back = parseGraph(text);
        expect(printGraph(back)).toBe(text);
        expect(verifyGraph(back)).toEqual([]);
      }),
      { seed: 42, numRuns: 300 },
    );
  });

  it('for any spec, print(parse(print(s))) === print(s) and the parsed spec deep-equals s', () => {
    fc.assert(
      fc.property(attentionSpecArbitrary({ maxLen: 64, lshChunks: true }), (s) => {
        const text = printSpec(s);
        const back = parseSpec(text);
        expect(back).toEqual(s);
        expect(printSpec(back)).toBe(text);
      }),
      { seed: 42, numRuns: 500 },
    );
  });
});
