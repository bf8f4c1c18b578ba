// compile on a guarded site: generated kernels do not carry the run-time certificate, so a guarded site's
// kernel must compute its exact baseline (never the sparse form without its guard), and the manifest says so.

import { type AttentionParams, attentionNode, causal, Graph, intersect, printSpec, slidingWindow, tensorType, Value } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { compile } from '../src/index.js';

const H = 2;
const D = 16;
const N = 128;

function site(guarded: boolean) {
  const g = new Graph('guarded');
  const io = (name: string) => new Value(name, tensorType('f32', [1, H, N, D]));
  const [q, k, v, y] = [io('q'), io('k'), io('v'), io('y')];
  g.inputs.push(q, k, v);
  const sparse = intersect(causal(), slidingWindow(31, 0));
  const params: AttentionParams = {
    numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd', spec: sparse,
    ...(guarded ? { guard: { budget: 0.01, blockSize: 64, baseline: causal() } } : {}),
  };
  const node = g.addNode(attentionNode(params, { q, k, v }, { y }, 'attention'));
  g.outputs.push(y);
  return { id: 'site0', node };
}

describe('compile: a guarded site', () => {
  for (const target of ['cpu', 'wgsl'] as const) {
    it(`${target}: the kernel computes the exact baseline and the manifest says why`, () => {
      const kernel = compile(site(true), { target });
      expect(kernel.manifest.spec).toBe(printSpec(causal()));
      expect(kernel.manifest.guardedAsBaseline).toMatch(/guarded .*budget 0\.01.*exact baseline causal/);
    });
    it(`${target}: an unguarded site keeps its sparse spec and no note`, () => {
      const kernel = compile(site(false), { target });
      expect(kernel.manifest.spec).toBe(printSpec(intersect(causal(), slidingWindow(31, 0))));
      expect(kernel.manifest.guardedAsBaseline).toBeUndefined();
    });
  }
});
