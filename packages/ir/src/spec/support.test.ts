// keySupport and loweringChoice: the band and extra keys of each index spec, and the rule that picks the
// lowered form (shared by @attnopt/passes loweringPlan and @attnopt/cost), with its negative cases.

import { describe, expect, it } from 'vitest';
import { blockSparse, causal, dense, difference, globalTokens, intersect, linformer, lshBuckets, nystrom, performer, sinks, slidingWindow, topkBlocks, union } from './spec.js';
import { bandBlockSize, blockGathered, bandedKeysPerQuery, keySupport, loweringChoice, lshBound } from './support.js';

describe('keySupport', () => {
  it('window(left, right): the band [p - left, p + right], no extra keys', () => {
    expect(keySupport(slidingWindow(255, 0))).toEqual({ lo: -255, hi: 0, extra: [], globalQueries: [], aligns: ['top-left'] });
  });
  it('causal ∩ (window ∪ sinks): the window band plus the sinks as extra keys', () => {
    const s = keySupport(intersect(causal(), union(slidingWindow(255, 0), sinks(4))))!;
    expect([s.lo, s.hi, s.extra]).toEqual([-255, 0, [0, 1, 2, 3]]);
    // block 64: 8 extra rows (empty-row key + 4 sinks, one granule of 8) + 64 + 255 band keys -> 320
    expect(bandBlockSize(s)).toBe(64);
    expect(bandedKeysPerQuery(s)).toBe(8 + 320);
    expect(bandedKeysPerQuery(s, 256)).toBe(8 + 512);
  });
  it('global tokens ∪ window: the tokens are extra keys and global query rows', () => {
    const s = keySupport(union(globalTokens([0, 5]), slidingWindow(4, 4)))!;
    expect(s.extra).toEqual([0, 5]);
    expect(s.globalQueries).toEqual([0, 5]);
  });
  it('causal and dense are unbounded: no finite band', () => {
    expect(bandedKeysPerQuery(keySupport(causal())!)).toBeUndefined();
    expect(bandedKeysPerQuery(keySupport(dense)!)).toBeUndefined();
  });
  it('is undefined for data-dependent and block layouts', () => {
    expect(keySupport(topkBlocks(64, 4))).toBeUndefined();
    expect(keySupport(lshBuckets(2, 8, 0))).toBeUndefined();
    expect(keySupport(blockSparse(64, 64, [[0]]))).toBeUndefined();
  });
});

describe('loweringChoice', () => {
  const w = slidingWindow(63, 0); // block 32: 8 extra rows + 32 + 63 -> 96 band keys = 104 per query
  it('banded for a window at a symbolic or large key count', () => {
    expect(loweringChoice(w)).toMatchObject({ strategy: 'banded', blockSize: 32, keysPerQuery: 104 });
    expect(loweringChoice(w, { keys: 208 }).strategy).toBe('banded');
  });
  it('does not choose banded when the static key count is below twice the keys read', () => {
    expect(loweringChoice(w, { keys: 207 })).toMatchObject({ strategy: 'dense' });
    expect(loweringChoice(w, { keys: 207, strategy: 'banded' }).strategy).toBe('banded');
  });
  it('does not choose banded with a bias, a scores output, an old opset, mixed alignments or an unbounded spec', () => {
    expect(loweringChoice(w, { bias: true }).why).toMatch(/bias/);
    expect(loweringChoice(w, { scoresOutput: true }).why).toMatch(/scores output/);
    expect(loweringChoice(w, { opset: 12 }).why).toMatch(/opset/);
    expect(loweringChoice(intersect(slidingWindow(8, 0), slidingWindow(8, 0, 'bottom-right'))).why).toMatch(/mixed alignments/);
    expect(loweringChoice(slidingWindow(8, 0, 'past'), { kvLengthWithoutPast: true }).why).toMatch(/kvLength/);
    expect(loweringChoice(causal()).strategy).toBe('dense');
    expect(loweringChoice(w, { strategy: 'dense' }).strategy).toBe('dense');
  });
  it('block layouts are block-gathered; Linformer, Performer and Nystrom are MatMuls', () => {
    expect(loweringChoice(topkBlocks(64, 4)).strategy).toBe('blocks');
    expect(loweringChoice(blockSparse(64, 64, [[0]])).strategy).toBe('blocks');
    // cut by one causal mask (sparsify's causal ∩ top-k on a causal site): block-gathered, the cut applied inside
    expect(loweringChoice(intersect(causal('bottom-right'), topkBlocks(64, 4))).strategy).toBe('blocks');
    expect(blockGathered(intersect(topkBlocks(64, 4), causal('past')))).toEqual({ leaf: topkBlocks(64, 4), causal: causal('past') });
    expect(blockGathered(intersect(causal(), slidingWindow(8, 0), topkBlocks(64, 4)))).toBeUndefined();
    expect(blockGathered(intersect(causal(), intersect(causal(), topkBlocks(64, 4))))).toEqual({ leaf: topkBlocks(64, 4), causal: causal() });
    expect(blockGathered(intersect(causal(), intersect(causal('bottom-right'), topkBlocks(64, 4))))).toBeUndefined();
    expect(loweringChoice(intersect(slidingWindow(8, 0), topkBlocks(64, 4))).strategy).toBe('dense');
    expect(loweringChoice(linformer(8, 0)).strategy).toBe('low-rank');
    expect(loweringChoice(performer(8, 0)).strategy).toBe('low-rank');
    expect(loweringChoice(nystrom(8)).strategy).toBe('low-rank');
  });
  it('chunked LSH (alone, intersected with index terms, minus index terms) is sorted by bucket; other LSH is dense', () => {
    const leaf = lshBuckets(2, 8, 1, 16);
    expect(loweringChoice(leaf).strategy).toBe('lsh');
    expect(lshBound(intersect(causal(), leaf))).toEqual({ leaf, rest: intersect(causal(), { kind: 'dense' }) });
    expect(loweringChoice(difference(intersect(leaf, slidingWindow(4, 0)), sinks(1))).strategy).toBe('lsh');
    expect(loweringChoice(lshBuckets(2, 8, 1, 0)).strategy).toBe('dense');
    expect(loweringChoice(union(leaf, sinks(2))).strategy).toBe('dense');
    expect(loweringChoice(intersect(leaf, lshBuckets(1, 4, 2, 8))).strategy).toBe('dense');
    expect(loweringChoice(leaf, { bias: true }).why).toMatch(/bias/);
    expect(loweringChoice(leaf, { opset: 12 }).strategy).toBe('dense');
  });
});
