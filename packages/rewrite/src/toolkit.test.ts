import { parseGraph, printGraph } from '@attnopt/ir';
import { describe, expect, test } from 'vitest';
import { attrFloat, attrInt, attrInts, unknownAttrs } from './attributes.js';
import { insertAfter, liveOutputs, redirect } from './edit.js';
import { NodeBuilder } from './node-builder.js';

const text = `graph g {
  input %x: f32[2, 3]
  %y = Relu(%x)
  %z = Neg(%y)
  output %y, %z
}`;

describe('node builder', () => {
  test('names values <base>/<what>, unique in the graph and among its own', () => {
    const g = parseGraph(text);
    const b = new NodeBuilder(g, 'y');
    const first = b.op('Abs', [g.inputs[0]!], 'abs');
    const second = b.fresh('abs');
    expect([first.name, second.name]).toEqual(['y/abs', 'y/abs_1']);
    insertAfter(g, g.nodes[0]!, b.nodes);
    // a later builder on the same base sees the graph's y/abs
    expect(new NodeBuilder(g, 'y').fresh('abs').name).toBe('y/abs_1');
  });

  test('unsqueeze: Expand to leading 1s, then a Transpose that puts them at the asked axes (none when already there)', () => {
    const g = parseGraph(text);
    const b = new NodeBuilder(g, 'u');
    b.unsqueeze(g.inputs[0]!, [0], 'lead', 2);
    expect(b.nodes.map((n) => n.op)).toEqual(['Constant', 'Expand']);
    const b2 = new NodeBuilder(g, 'u');
    const out = b2.unsqueeze(g.inputs[0]!, [1, -1], 'mid', 2);
    const t = out.producer!;
    expect(t.op).toBe('Transpose');
    // x [2, 3] -> [1, 1, 2, 3] -> [2, 1, 3, 1]: axis 0 of the result is x's first dim (index 2 of the expanded)
    expect(attrInts(t, 'perm')).toEqual([2, 0, 3, 1]);
  });
});

describe('graph edits', () => {
  test('redirect moves the uses, the graph-output slot and the name to the new value', () => {
    const g = parseGraph(text);
    const b = new NodeBuilder(g, 'r');
    const fresh = b.op('Abs', [g.inputs[0]!], 'abs');
    const relu = g.nodes[0]!;
    insertAfter(g, relu, b.nodes);
    redirect(g, relu.outputs[0]!, fresh);
    expect(liveOutputs(g, relu)).toEqual([undefined]);
    g.removeNode(relu);
    expect(printGraph(g)).toContain('%y = Abs(%x)');
    expect(printGraph(g)).toContain('%z = Neg(%y)');
    expect(g.outputs.map((v) => v.name)).toEqual(['y', 'z']);
  });
});

describe('attribute readers', () => {
  test('read numbers of the right type, undefined otherwise', () => {
    const g = parseGraph(`graph g {
  input %x: f32[2, 3]
  %y = Softmax(%x) {axis = -1, alpha = 0.5, perm = [1, 0]}
  output %y
}`);
    const n = g.nodes[0]!;
    expect(attrInt(n, 'axis')).toBe(-1);
    expect(attrFloat(n, 'alpha')).toBe(0.5);
    expect(attrFloat(n, 'axis')).toBe(-1);
    expect(attrInt(n, 'alpha')).toBeUndefined();
    expect(attrInts(n, 'perm')).toEqual([1, 0]);
    expect(attrInts(n, 'missing')).toBeUndefined();
    expect(unknownAttrs(n, ['axis'])).toEqual(['alpha', 'perm']);
  });
});
