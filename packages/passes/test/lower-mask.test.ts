// The keep-mask the lowering builds from ONNX ops, run in onnxruntime for every (i, j) of small problems and
// compared with the reference row sets; and the node pattern of the common specs.

import fc from 'fast-check';
import { causal, Graph, globalTokens, intervals, type MaskSpec, Node, queryOffset, rowKeys, sinks, slidingWindow, tensorType, union, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { maskSpecArbitrary } from '@attnopt/properties';
import { NodeBuilder } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { specMask, unsupportedSpec } from '../src/lower/mask.js';
import { ortTensor, runModel } from './helpers/ort.js';

/** A model computing the keep-mask of `spec` as bool [nq, nk] from rows [nq, 1], cols [nk] and the offsets. */
function maskModel(spec: MaskSpec): { bytes: Uint8Array; nodes: string[] } {
  const g = new Graph('keep_mask');
  const input = (name: string, shape: (number | string)[]) => g.addInput(new Value(name, tensorType('i64', shape)));
  const rows = input('rows', ['nq', 1]);
  const cols = input('cols', ['nk']);
  const bottomRight = input('bottom_right', []);
  const past = input('past', []);
  const everywhere = g.addInput(new Value('everywhere', tensorType('bool', ['nq', 'nk'])));
  const b = new NodeBuilder(g, 'mask');
  const m = specMask(b, spec, { rows, cols, bottomRight, past });
  const keep = new Value('keep', tensorType('bool', ['nq', 'nk']));
  for (const n of b.nodes) g.addNode(n);
  g.addNode(new Node(m ? { op: 'And', inputs: [everywhere, m], outputs: [keep], name: 'keep' } : { op: 'Identity', inputs: [everywhere], outputs: [keep], name: 'keep' }));
  g.outputs.push(keep);
  return { bytes: exportOnnx(newOnnxModel(g, { opset: 11 })), nodes: b.nodes.map((n) => n.op) };
}

async function expectReferenceMask(spec: MaskSpec, dims: { nq: number; nk: number; past: number }): Promise<void> {
  const { nq, nk } = dims;
  const out = await runModel(maskModel(spec).bytes, {
    rows: ortTensor('i64', [nq, 1], Array.from({ length: nq }, (_, i) => i)),
    cols: ortTensor('i64', [nk], Array.from({ length: nk }, (_, j) => j)),
    bottom_right: ortTensor('i64', [], [queryOffset('bottom-right', dims)]),
    past: ortTensor('i64', [], [dims.past]),
    everywhere: ortTensor('bool', [nq, nk], new Array<number>(nq * nk).fill(1)),
  });
  const got = out.keep!.data as Uint8Array;
  for (let i = 0; i < nq; i++) {
    const row = rowKeys(spec, i, dims);
    for (let j = 0; j < nk; j++) {
      if ((got[i * nk + j] === 1) !== intervals.contains(row, j)) throw new Error(`${JSON.stringify(spec)} at ${JSON.stringify(dims)}: (${i}, ${j})`);
    }
  }
}

describe('specMask (ONNX keep-mask) vs the reference row sets', () => {
  it('for any index spec it lowers and any dims, keeps exactly the reference keys on every (i, j)', async () => {
    const lowerable = maskSpecArbitrary({ maxLen: 12, dataDependent: false }).filter((s) => unsupportedSpec(s) === undefined);
    await fc.assert(
      fc.asyncProperty(
        lowerable,
        fc.record({ nq: fc.integer({ min: 1, max: 12 }), nk: fc.integer({ min: 1, max: 12 }), past: fc.integer({ min: 0, max: 4 }) }),
        (spec, dims) => expectReferenceMask(spec, dims),
      ),
      { numRuns: 80, seed: 16 },
    );
  });

  it('builds the same small node pattern for the common specs', () => {
    expect(maskModel(causal('bottom-right')).nodes).toEqual(['Add', 'Greater', 'Not']);
    expect(maskModel(causal('top-left')).nodes).toEqual(['Greater', 'Not']);
    // the query position i + (nk - nq) is computed once for both edges of the window
    expect(maskModel(slidingWindow(3, 0, 'bottom-right')).nodes).toEqual(['Add', 'Constant', 'Sub', 'Less', 'Not', 'Constant', 'Add', 'Greater', 'Not', 'And']);
    expect(maskModel(union(sinks(2), causal('past'))).nodes).toEqual(['Constant', 'Less', 'Add', 'Greater', 'Not', 'Or']);
    expect(maskModel(globalTokens([1, 3])).nodes.filter((op) => op === 'Equal')).toHaveLength(4);
  });

  it('names what it cannot lower', () => {
    expect(unsupportedSpec(union(causal(), { kind: 'blocks', blockQ: 2, blockK: 2, rows: [[0]] }))).toMatch(/^not lowered yet: blocks/);
    expect(unsupportedSpec(union(causal(), { kind: 'topkBlocks', block: 4, k: 1, score: 'quest' }))).toMatch(/^not lowered yet: topk/);
    expect(unsupportedSpec(union(causal(), { kind: 'lsh', hashes: 1, buckets: 2, chunk: 0, seed: 1 }))).toBeUndefined();
  });
});
