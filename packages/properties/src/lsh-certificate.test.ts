// BOUNDS.md (b') for LSH key sets: the certificate of @attnopt/bounds (lshHeadGroups, lshDroppedMass) on every row
// of generated heads, 1000 cases per property, fixed seeds; adversarial families in bounds/lsh-guarded-properties.ts.
// Two mutations of the certificate must be caught: one key per dropped group (not n_g), and the groups kept in
// round 0 read as kept in every round (a key of another round's kept bucket counted as kept although it is dropped).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { droppedMassCertificateFromLog, keptLogSumExp, lshHeadGroups, lshRoundLogB, maskSplit } from '@attnopt/bounds';
import { intervals, lshRows } from '@attnopt/ir';
import {
  LSH_GUARDED_FAMILIES,
  type LshHead,
  lshCertificateProperty,
  lshGuardedOutputProperty,
  lshGuardedRows,
  lshHeadArbitrary,
} from './bounds/lsh-guarded-properties.js';

const RUNS = { numRuns: 1000 };

/** A mutated certificate: whether it stays >= m on every row of the head. */
function mutantHolds(p: LshHead, mutant: 'one-per-group' | 'round0-kept'): boolean {
  const { n, d } = p;
  const kept = lshRows(p.leaf, { q: p.q, k: p.keys, nq: n, nk: n, d });
  const groups = lshHeadGroups(p.leaf, p.q, n, p.keys, n, d);
  return kept.every((S, i) => {
    const qi = p.q.subarray(i * d, (i + 1) * d);
    const scores = Array.from({ length: n }, (_, j) => p.scale * qi.reduce((a, x, c) => a + x * p.keys[j * d + c]!, 0));
    const isKept = (j: number) => intervals.contains(S, j);
    const m = maskSplit(scores, p.values, p.dv, isKept).m;
    if (intervals.size(S) === n) return true;
    const keptGroups = groups.keptGroups(i);
    let logB = Infinity;
    groups.rounds.forEach((summaries, r) => {
      const s = mutant === 'one-per-group' ? { ...summaries, counts: summaries.counts.map((x) => Math.min(x, 1)) } : summaries;
      logB = Math.min(logB, lshRoundLogB(qi, s, p.scale, 0, mutant === 'round0-kept' ? keptGroups[0]! : keptGroups[r]!));
    });
    const mHat = droppedMassCertificateFromLog(keptLogSumExp(scores.filter((_, j) => isKept(j))), logB);
    return mHat >= m * (1 - 1e-12);
  });
}

describe("BOUNDS.md (b') guarded LSH key sets, on the functions optimize uses", () => {
  it('the certificate is never below the dropped mass (every family, adversarial ones included)', () =>
    fc.assert(lshCertificateProperty(), { ...RUNS, seed: 221 }));
  it('the guarded row is within the budget of the dense row', () => fc.assert(lshGuardedOutputProperty(), { ...RUNS, seed: 222 }));
  it('the generated heads cover both outcomes (falls back, kept sparse) in the families that allow both, and in both chunk forms', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(lshHeadArbitrary(), (p) => {
        for (const r of lshGuardedRows(p)) if (r.m > 0) seen.add(`${p.family}:${p.leaf.chunk > 0 ? 'chunked' : 'buckets'}:${r.fallsBack}`);
      }),
      { ...RUNS, seed: 222 },
    );
    const has = (f: (key: string) => boolean) => [...seen].some(f);
    // uniform random q, k give diffuse rows, and equal keys share every bucket (a row keeps all or none): they only
    // fall back when they drop a key
    for (const f of LSH_GUARDED_FAMILIES) for (const back of f === 'random' || f === 'equal-keys' ? [true] : [true, false]) expect(has((x) => x.startsWith(`${f}:`) && x.endsWith(`:${back}`)), `${f}: ${back}`).toBe(true);
    for (const form of ['chunked', 'buckets']) for (const back of [true, false]) expect(has((x) => x.includes(`:${form}:${back}`)), `${form}: ${back}`).toBe(true);
  });
  it('a certificate that counts one key per dropped group (not n_g) is caught', () => {
    expect(fc.check(fc.property(lshHeadArbitrary(), (p) => mutantHolds(p, 'one-per-group')), { ...RUNS, seed: 223 }).failed).toBe(true);
  });
  it("a certificate that reads round 0's kept groups in every round is caught", () => {
    expect(fc.check(fc.property(lshHeadArbitrary(), (p) => mutantHolds(p, 'round0-kept')), { ...RUNS, seed: 224 }).failed).toBe(true);
  });
});
