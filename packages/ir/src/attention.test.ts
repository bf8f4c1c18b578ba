import { describe, expect, test } from 'vitest';
import { attentionNode, attentionParams, type AttentionParams, kvHeadOf } from './attention.js';
import { Value } from './graph.js';
import { causal, union, sinks, slidingWindow } from './spec/spec.js';
import { stringAttr } from './attributes.js';

const gqa: AttentionParams = {
  numHeads: 8,
  kvNumHeads: 2,
  headDim: 96,
  vHeadDim: 96,
  scale: 1 / Math.sqrt(96),
  softcap: 0,
  layout: 'bsd',
  spec: union(sinks(4), slidingWindow(128, 0)),
};

describe('Attention op', () => {
  test('parameters survive the node attributes', () => {
    const q = new Value('q');
    const node = attentionNode(gqa, { q, k: q, v: q }, { y: new Value('y') });
    expect(attentionParams(node)).toEqual(gqa);
    expect(node.inputs).toHaveLength(3);
  });

  test('a guarded site keeps its budget and key block size through the attributes', () => {
    const guarded: AttentionParams = { ...gqa, guard: { budget: 0.01, blockSize: 64, baseline: causal() } };
    const node = attentionNode(guarded, { q: new Value('q') }, { y: new Value('y') });
    expect(attentionParams(node)).toEqual(guarded);
    expect(() => attentionNode({ ...gqa, guard: { budget: -1, blockSize: 64, baseline: causal() } }, { q: new Value('q') }, { y: new Value('y') })).toThrow(
      /guard budget must be finite and >= 0, got -1/,
    );
    // the box-only summaries round-trip; absent stays absent (the box and the ball)
    const boxOnly: AttentionParams = { ...gqa, guard: { budget: 0.01, blockSize: 64, baseline: causal(), summaries: 'box' } };
    expect(attentionParams(attentionNode(boxOnly, { q: new Value('q') }, { y: new Value('y') }))).toEqual(boxOnly);
    expect(attentionNode(guarded, { q: new Value('q') }, { y: new Value('y') }).attrs.has('guardSummaries')).toBe(false);
    expect(() => attentionNode({ ...gqa, guard: { budget: 0.01, blockSize: 64, baseline: causal(), summaries: 'sphere' as 'box' } }, { q: new Value('q') }, { y: new Value('y') })).toThrow(
      /unknown guard summaries sphere/,
    );
    // the max-logit log Z_S round-trips; absent stays absent (the log-sum-exp)
    const maxLogit: AttentionParams = { ...gqa, guard: { budget: 0.01, blockSize: 64, baseline: causal(), summaries: 'box', logZ: 'max-logit' } };
    expect(attentionParams(attentionNode(maxLogit, { q: new Value('q') }, { y: new Value('y') }))).toEqual(maxLogit);
    expect(attentionNode(guarded, { q: new Value('q') }, { y: new Value('y') }).attrs.has('guardLogZ')).toBe(false);
    expect(() => attentionNode({ ...gqa, guard: { budget: 0.01, blockSize: 64, baseline: causal(), logZ: 'mean' as 'max-logit' } }, { q: new Value('q') }, { y: new Value('y') })).toThrow(
      /unknown guard logZ mean/,
    );
  });

  test('GQA maps consecutive query heads to one kv head, as ONNX repeats them', () => {
    expect([...Array(8).keys()].map((h) => kvHeadOf(gqa, h))).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
  });

  test('invalid parameters are refused with the node named', () => {
    expect(() => attentionNode({ ...gqa, kvNumHeads: 3 }, { q: new Value('q') }, { y: new Value('y') })).toThrow(
      /numHeads 8 is not a multiple of kvNumHeads 3/,
    );
    const node = attentionNode({ ...gqa, spec: causal() }, { q: new Value('q') }, { y: new Value('y') }, 'attn0');
    node.attrs.set('layout', stringAttr('sbhd'));
    expect(() => attentionParams(node)).toThrow(/node "attn0" \(attnopt::Attention\): invalid Attention: unknown layout sbhd/);
  });
});
