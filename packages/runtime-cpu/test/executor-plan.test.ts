// planGraph and runGraph's own checks: one error naming every unsupported node before anything runs,
// topological order whatever the node order, missing feeds and wrong feeds named, a missing value named by
// its reader, fetch of intermediate values, and values dropped after their last reader.

import { Graph, graphAttr, intAttr, stringAttr, tensorType, Value } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { type NodeEvent, planGraph, runGraph, UnsupportedOpsError } from '../src/index.js';
import { f32, values } from './executor-build.js';

function chain(): { g: Graph; x: Value } {
  const g = new Graph('chain');
  const x = g.addInput(new Value('x', tensorType('f32', ['n'])));
  return { g, x };
}

describe('planGraph', () => {
  it('names every unsupported node, with op, domain and reason, in one error', () => {
    const { g, x } = chain();
    const a = new Value('a');
    const b = new Value('b');
    const c = new Value('c');
    const d = new Value('d');
    g.add({ op: 'Relu', name: 'ok', inputs: [x], outputs: [a] });
    g.add({ op: 'FancyOp', name: 'n1', inputs: [a], outputs: [b] });
    g.add({ domain: 'com.microsoft', op: 'BeamSearch', name: 'n2', inputs: [b], outputs: [c] });
    g.add({ op: 'Gelu', name: 'n3', inputs: [c], outputs: [d], attrs: { approximate: stringAttr('cubic') } });
    g.add({ op: 'Cast', name: 'n4', inputs: [d], outputs: [new Value('e')], attrs: { to: intAttr(8) } });
    g.add({ op: 'If', name: 'n5', inputs: [d], outputs: [new Value('f')], attrs: { then_branch: graphAttr(new Graph('t')) } });
    let error: UnsupportedOpsError | undefined;
    try {
      planGraph(g);
    } catch (e) {
      error = e as UnsupportedOpsError;
    }
    expect(error).toBeInstanceOf(UnsupportedOpsError);
    expect(error!.nodes.map((n) => `${n.domain}::${n.op}:${n.name}`)).toEqual(['::FancyOp:n1', 'com.microsoft::BeamSearch:n2', '::Gelu:n3', '::Cast:n4', '::If:n5']);
    expect(error!.message).toMatch(/"n1": FancyOp \(no CPU implementation\)/);
    expect(error!.message).toMatch(/"n2": com\.microsoft::BeamSearch/);
    expect(error!.message).toMatch(/"n3": Gelu \(Gelu approximate="cubic" is not defined\)/);
    expect(error!.message).toMatch(/"n4": Cast \(Cast to ONNX type 8 is not supported\)/);
  });

  it('runGraph plans first: nothing runs when a node is unsupported', async () => {
    const { g, x } = chain();
    const a = new Value('a');
    g.add({ op: 'Relu', inputs: [x], outputs: [a] });
    g.add({ op: 'FancyOp', inputs: [a], outputs: [new Value('b')] });
    g.outputs.push(a);
    const seen: NodeEvent[] = [];
    await expect(runGraph(g, { x: f32([2], [1, 2]) }, { onNode: (e) => seen.push(e) })).rejects.toThrow(UnsupportedOpsError);
    expect(seen).toEqual([]);
  });

  it('orders nodes topologically whatever their order in the graph', async () => {
    const { g, x } = chain();
    const a = new Value('a');
    const b = new Value('b');
    g.add({ op: 'Neg', name: 'second', inputs: [a], outputs: [b] });
    g.add({ op: 'Relu', name: 'first', inputs: [x], outputs: [a] });
    g.outputs.push(b);
    expect(planGraph(g).steps.map((s) => s.node.name)).toEqual(['first', 'second']);
    expect(values((await runGraph(g, { x: f32([3], [-1, 2, -3]) }))['b']!)).toEqual([-0, -2, -0]);
  });
});

describe('runGraph checks and memory', () => {
  it('a missing feed, an unknown feed and a feed of the wrong dtype or static shape are named', async () => {
    const g = new Graph('g');
    const x = g.addInput(new Value('x', tensorType('f32', [2, 'n'])));
    const y = new Value('y');
    g.add({ op: 'Relu', inputs: [x], outputs: [y] });
    g.outputs.push(y);
    await expect(runGraph(g, {})).rejects.toThrow(/input "x" has no feed/);
    await expect(runGraph(g, { x: f32([2, 1], [1, 2]), z: f32([1], [0]) })).rejects.toThrow(/feed "z" is not an input/);
    await expect(runGraph(g, { x: f32([3, 1], [1, 2, 3]) })).rejects.toThrow(/graph input "x": feed shape \[3, 1\] does not match the declared \[2, n\]/);
    await expect(runGraph(g, { x: { dtype: 'f64', shape: [2, 1], data: Float64Array.of(1, 2) } })).rejects.toThrow(/feed is f64, the graph declares f32/);
    expect(values((await runGraph(g, { x: f32([2, 3], [1, -2, 3, -4, 5, -6]) }))['y']!)).toEqual([1, 0, 3, 0, 5, 0]);
  });

  it('reading an omitted optional output names the reader', async () => {
    const { g, x } = chain();
    const y = new Value('y');
    const mask = new Value('mask_unused');
    const z = new Value('z');
    g.add({ op: 'LayerNormalization', name: 'ln', inputs: [x, x], outputs: [y, mask] });
    g.add({ op: 'Identity', name: 'reader', inputs: [new Value('nowhere')], outputs: [z] });
    g.outputs.push(z);
    expect(() => planGraph(g)).toThrow(/"reader".*input "nowhere" is defined nowhere/);
  });

  it('fetch returns intermediate values; the rest are dropped after their last reader', async () => {
    const { g, x } = chain();
    const a = new Value('a');
    const b = new Value('b');
    const c = new Value('c');
    g.add({ op: 'Neg', inputs: [x], outputs: [a] });
    g.add({ op: 'Exp', inputs: [a], outputs: [b] });
    g.add({ op: 'Add', inputs: [b, a], outputs: [c] });
    g.outputs.push(c);
    const live: number[] = [];
    const out = await runGraph(g, { x: f32([256], new Array(256).fill(0)) }, { fetch: ['b'], onNode: (e) => live.push(e.liveBytes) });
    expect(Object.keys(out).sort()).toEqual(['b', 'c']);
    expect(values(out['b']!).every((v) => v === 1)).toBe(true);
    // after Neg: x and a (x is read by nobody else: dropped) -> a; after Exp: a and b; after Add: b (fetched) and c
    expect(live).toEqual([1024, 2048, 2048]);
  });
});
