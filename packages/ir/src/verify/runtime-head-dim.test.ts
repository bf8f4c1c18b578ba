// Attention nodes whose head size is read at run time (headDim / vHeadDim 0, bhsd only): the parameters,
// the verifier's shape rule (one head size shared by Q, K and past K; another by V, past V and Y) and the
// text form's round trip.

import { describe, expect, it } from 'vitest';
import {
  attentionParams,
  type AttentionParams,
  hasRuntimeHeadDim,
  requireStaticHeadDims,
  validateAttentionParams,
} from '../attention.js';
import { Graph } from '../graph.js';
import { dense } from '../spec/spec.js';
import { parseGraph, printGraph } from '../text/index.js';
import { verifyGraph } from './index.js';

const RUNTIME = (layout = 'bhsd', extra = '') =>
  `{numHeads = 4, kvNumHeads = 2, headDim = 0, vHeadDim = 0, scale = 1.0, softcap = 0.0, layout = "${layout}", spec = spec<dense>${extra}}`;

const issues = (text: string) => verifyGraph(parseGraph(text)).map((i) => `${i.rule}: ${i.message}`);

const params = (over: Partial<AttentionParams>): AttentionParams => ({
  numHeads: 4,
  kvNumHeads: 2,
  headDim: 0,
  vHeadDim: 0,
  scale: 1,
  softcap: 0,
  layout: 'bhsd',
  spec: dense,
  ...over,
});

describe('head sizes read at run time: parameters', () => {
  it('0 is valid in bhsd, for either head size', () => {
    expect(validateAttentionParams(params({}))).toMatchObject({ headDim: 0, vHeadDim: 0 });
    expect(validateAttentionParams(params({ headDim: 8 }))).toMatchObject({ headDim: 8, vHeadDim: 0 });
    expect(hasRuntimeHeadDim(params({ headDim: 8 }))).toBe(true);
    expect(hasRuntimeHeadDim(params({ headDim: 8, vHeadDim: 4 }))).toBe(false);
  });
  it('0 is refused outside bhsd, negative and fractional sizes everywhere', () => {
    for (const layout of ['bsd', 'bshd', 'packed-qkv'] as const) {
      expect(() => validateAttentionParams(params({ layout }))).toThrow(
        `invalid Attention: headDim 0 (head size is only known at run time) needs the bhsd layout, got ${layout}`,
      );
    }
    expect(() => validateAttentionParams(params({ headDim: 8, layout: 'bsd' }))).toThrow('vHeadDim 0 (head size is only known at run time) needs the bhsd layout');
    expect(() => validateAttentionParams(params({ headDim: -1 }))).toThrow('headDim must be an integer >= 1 (or 0 in the bhsd layout: read at run time), got -1');
    expect(() => validateAttentionParams(params({ vHeadDim: 2.5 }))).toThrow('vHeadDim must be an integer >= 1');
  });
  it('requireStaticHeadDims names the node and what needs the size', () => {
    expect(() => requireStaticHeadDims(params({}), 'node "attn" (attnopt::Attention)', 'the WGSL kernel')).toThrow(
      'node "attn" (attnopt::Attention): head size is only known at run time (headDim 0, vHeadDim 0: read from the inputs), and the WGSL kernel needs a static head size',
    );
    expect(() => requireStaticHeadDims(params({ headDim: 8, vHeadDim: 8 }), 'x', 'y')).not.toThrow();
  });
});

describe('head sizes read at run time: verifier', () => {
  it('accepts any head size shared by Q, K, past K (and V, past V, Y)', () => {
    expect(issues(`graph g {
      input %q: f32[B, 4, S, D]
      input %k: f32[B, 2, S, D]
      input %v: f32[B, 2, S, 16]
      input %pk: f32[B, 2, P, D]
      input %pv: f32[B, 2, P, 16]
      %y: f32[B, 4, S, 16] = attnopt::Attention(%q, %k, %v, _, %pk, %pv) ${RUNTIME()}
    }`)).toEqual([]);
    expect(issues(`graph g {
      input %q: f32[1, 4, 3, 12]
      input %k: f32[1, 2, 5, 12]
      input %v: f32[1, 2, 5, 7]
      %y: f32[1, 4, 3, 7] = attnopt::Attention(%q, %k, %v) ${RUNTIME()}
    }`)).toEqual([]);
  });
  it('reports Q and K (or past K) of different head sizes, and Y not of V\'s', () => {
    expect(issues(`graph g {
      input %q: f32[1, 4, 3, 12]
      input %k: f32[1, 2, 5, 8]
      input %v: f32[1, 2, 5, 7]
      %y: f32[1, 4, 3, 6] = attnopt::Attention(%q, %k, %v) ${RUNTIME()} name="attn"
    }`)).toEqual([
      'attention: node "attn" (attnopt::Attention): K dim 3 (headDim) is 8, expected 12 (shape mismatch)',
      'attention: node "attn" (attnopt::Attention): output Y dim 3 (vHeadDim) is 6, expected 7 (shape mismatch)',
    ]);
    expect(issues(`graph g {
      input %q: f32[1, 4, 3, 12]
      input %k: f32[1, 2, 5, 12]
      input %v: f32[1, 2, 5, 12]
      input %pk: f32[1, 2, 2, 10]
      input %pv: f32[1, 2, 2, 12]
      %y = attnopt::Attention(%q, %k, %v, _, %pk, %pv) ${RUNTIME()} name="attn"
    }`)).toEqual(['attention: node "attn" (attnopt::Attention): past key dim 3 (headDim) is 10, expected 12 (shape mismatch)']);
  });
  it('reports headDim 0 outside bhsd as an invalid parameter, naming the node', () => {
    expect(issues(`graph g {
      input %q: f32[1, 3, 48]
      %y = attnopt::Attention(%q, %q, %q) ${RUNTIME('bsd')} name="attn"
    }`)).toEqual(['attention: node "attn" (attnopt::Attention): invalid Attention: headDim 0 (head size is only known at run time) needs the bhsd layout, got bsd']);
  });
});

describe('head sizes read at run time: text form', () => {
  it('prints and parses headDim 0 unchanged', () => {
    const text = `graph g {
  input %q: f32[B, 4, S, D]
  input %k: f32[B, 2, S, D]
  input %v: f32[B, 2, S, Dv]
  %y: f32[B, 4, S, Dv] = attnopt::Attention(%q, %k, %v) {numHeads = 4, kvNumHeads = 2, headDim = 0, vHeadDim = 0, scale = 1.0, softcap = 0.0, layout = "bhsd", spec = spec<dense>} name="attn"
  output %y
}
`;
    const g: Graph = parseGraph(text);
    expect(printGraph(g)).toBe(text);
    expect(attentionParams(g.nodes[0]!)).toEqual(params({}));
    expect(verifyGraph(g)).toEqual([]);
  });
});
