import { describe, expect, test } from 'vitest';
import { Graph, Node, Value } from './graph.js';
import { tensorType } from './types.js';

describe('graph bookkeeping', () => {
  test('values know their producer and uses; replaceAllUsesWith rewires both', () => {
    const g = new Graph();
    const x = g.addInput(new Value('x', tensorType('f32', [2])));
    const a = g.add({ op: 'Relu', inputs: [x], outputs: [new Value('a')] });
    const b = g.add({ op: 'Add', inputs: [a.outputs[0], a.outputs[0]], outputs: [new Value('b')] });
    g.outputs.push(b.outputs[0]!);
    expect(a.outputs[0]!.producer).toBe(a);
    expect(a.outputs[0]!.uses().map((u) => u.index)).toEqual([0, 1]);
    a.outputs[0]!.replaceAllUsesWith(x, g);
    expect(b.inputs).toEqual([x, x]);
    expect(a.outputs[0]!.uses()).toEqual([]);
    g.removeNode(a);
    expect(g.nodes).toEqual([b]);
    expect(x.uses()).toHaveLength(2);
  });

  test('a node whose output is still used cannot be removed', () => {
    const g = new Graph();
    const x = g.addInput(new Value('x'));
    const a = g.add({ op: 'Relu', name: 'relu0', inputs: [x], outputs: [new Value('a')] });
    g.add({ op: 'Relu', inputs: [a.outputs[0]], outputs: [new Value('b')] });
    expect(() => g.removeNode(a)).toThrow(/node "relu0" \(Relu\): its output %a is still used/);
  });

  test('omitted optional inputs stay in place; truncation detaches uses', () => {
    const x = new Value('x');
    const n = new Node({ domain: 'com.microsoft', op: 'Attention', inputs: [x, undefined, x] });
    expect(n.inputs).toEqual([x, undefined, x]);
    expect(n.qualifiedOp).toBe('com.microsoft::Attention');
    n.truncateInputs(1);
    expect(x.uses()).toEqual([{ node: n, index: 0 }]);
  });

  test('a value cannot have two producers', () => {
    const v = new Value('v');
    new Node({ op: 'A', outputs: [v] });
    expect(() => new Node({ op: 'B', outputs: [v] })).toThrow(/already produced/);
  });
});
