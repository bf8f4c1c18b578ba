import { describe, expect, it } from 'vitest';
import {
  blockSparse, causal, dense, difference, dilatedWindow, empty, globalTokens, intersect, linformer, lshBuckets,
  nystrom, performer, sinks, slidingWindow, topkBlocks, union,
} from '../spec/spec.js';
import { parseSpec, printSpec } from './spec-text.js';

describe('printSpec / parseSpec', () => {
  const anchors: [ReturnType<typeof parseSpec>, string][] = [
    [dense, 'dense'],
    [empty, 'empty'],
    [causal(), 'causal'],
    [causal('bottom-right'), 'causal(align=bottom-right)'],
    [slidingWindow(128, 0), 'window(left=128, right=0)'],
    [slidingWindow(-2, 3, 'past'), 'window(left=-2, right=3, align=past)'],
    [dilatedWindow(64, 0, 2), 'dilated(left=64, right=0, dilation=2)'],
    [sinks(4), 'sinks(4)'],
    [globalTokens([5, 0]), 'global([0, 5])'],
    [globalTokens([]), 'global([])'],
    [blockSparse(64, 64, [[0], [1, 0]]), 'blocks(q=64, k=64, [[0], [0, 1]])'],
    [blockSparse(2, 3, []), 'blocks(q=2, k=3, [])'],
    [topkBlocks(64, 8), 'topk_blocks(block=64, k=8)'],
    [topkBlocks(64, 8, 'mean'), 'topk_blocks(block=64, k=8, score=mean)'],
    [topkBlocks(64, 8, 'quest', 'bottom-right'), 'topk_blocks(block=64, k=8, causal=bottom-right)'],
    [topkBlocks(32, 2, 'mean', 'past'), 'topk_blocks(block=32, k=2, score=mean, causal=past)'],
    [lshBuckets(2, 8, 1), 'lsh(hashes=2, buckets=8, seed=1)'],
    [lshBuckets(2, 8, 1, 16), 'lsh(hashes=2, buckets=8, chunk=16, seed=1)'],
    [union(sinks(4), slidingWindow(128, 0)), 'union(sinks(4), window(left=128, right=0))'],
    [intersect(causal()), 'intersect(causal)'],
    [difference(dense, causal()), 'diff(dense, causal)'],
    [nystrom(64), 'nystrom(landmarks=64)'],
    [linformer(128, 0), 'linformer(rank=128, seed=0)'],
    [performer(256, 0), 'performer(features=256, seed=0)'],
    [performer(256, 3, false), 'performer(features=256, seed=3, orthogonal=false)'],
  ];
  it('prints the canonical spelling and parses it back to an equal spec', () => {
    for (const [spec, text] of anchors) {
      expect(printSpec(spec)).toBe(text);
      expect(parseSpec(text)).toEqual(spec);
    }
  });
  it('accepts named parameters in any order and omitted defaults', () => {
    expect(parseSpec('window(right=1, left=2)')).toEqual(slidingWindow(2, 1));
    expect(parseSpec('window(left=2)')).toEqual(slidingWindow(2, 0));
    expect(parseSpec('causal()')).toEqual(causal());
  });
  it('rejects malformed specs with positions', () => {
    expect(() => parseSpec('windo(left=1)')).toThrow(/^1:1: expected a spec \(dense, .*\), found 'windo'$/);
    expect(() => parseSpec('window(left=1, left=2)')).toThrow(/^1:16: window: parameter left given twice$/);
    expect(() => parseSpec('window(left=1, up=2)')).toThrow(/^1:19: window: unknown parameter up$/);
    expect(() => parseSpec('causal(align=middle)')).toThrow(/^1:14: causal: parameter align must be one of top-left, bottom-right, past$/);
    expect(() => parseSpec('sinks(1.5)')).toThrow(/^1:7: expected an integer, found '1.5'$/);
    expect(() => parseSpec('sinks(-1)')).toThrow(/^1:1: invalid attention spec sinks: count must be an integer >= 0, got -1$/);
    expect(() => parseSpec('dilated(left=1, dilation=0)')).toThrow(/^1:1: invalid attention spec dilated: dilation must be an integer >= 1, got 0$/);
    expect(parseSpec('global([3, 1, 3])')).toEqual(globalTokens([1, 3]));
    expect(() => parseSpec('diff(dense)')).toThrow(/^1:1: diff takes exactly two specs$/);
    expect(() => parseSpec('union()')).toThrow(/^1:1: invalid attention spec union: needs at least one part$/);
    expect(() => parseSpec('dense extra')).toThrow(/^1:7: expected end of input, found 'extra'$/);
  });
});
