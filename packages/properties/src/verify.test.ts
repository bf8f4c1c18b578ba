import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { verifyGraph } from '@attnopt/ir';
import { GRAPH_DEFECTS, graphArbitrary, malformedGraphArbitrary } from './arbitraries/graph.js';

describe('verifier properties', () => {
  it('finds no issue in any well-formed generated graph', () => {
    fc.assert(
      fc.property(graphArbitrary(), (g) => {
        expect(verifyGraph(g).map((i) => i.message)).toEqual([]);
      }),
      { seed: 42, numRuns: 300 },
    );
  });

  it('rejects every malformed graph with an issue naming the mutated node and the defect', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(malformedGraphArbitrary(), ({ graph, defect, node }) => {
        seen.add(defect);
        const issues = verifyGraph(graph);
        const hit = issues.find((i) => i.rule === defect && i.message.includes(node));
        expect(hit, `expected a ${defect} issue naming ${node}; got ${JSON.stringify(issues.map((i) => i.message))}`).toBeDefined();
      }),
      { seed: 42, numRuns: 400 },
    );
    expect([...seen].sort()).toEqual([...GRAPH_DEFECTS].sort());
  });
});
