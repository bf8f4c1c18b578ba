// If in the CPU executor: the branch the condition picks runs on the enclosing graph's values, a value read only by
// a branch stays alive until the If runs (the plan counts subgraph reads), nested branches read values two levels
// up, and an op the executor cannot run inside a branch is refused before anything runs, named with its branch.

import { Graph, graphAttr, tensorType, Value } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { planGraph, runGraph, UnsupportedOpsError } from '../src/index.js';
import { bool, f32, values } from './executor-build.js';

/** y = If(cond, then: w * x, else: -w), w = Relu(x) read by the branches alone; `inner`: the else branch nests an If on cond2. */
function model(inner = false): Graph {
  const g = new Graph('main');
  const x = g.addInput(new Value('x', tensorType('f32', ['n'])));
  const cond = g.addInput(new Value('cond', tensorType('bool', [])));
  const cond2 = inner ? g.addInput(new Value('cond2', tensorType('bool', []))) : undefined;
  const w = new Value('w');
  g.add({ op: 'Relu', name: 'relu', inputs: [x], outputs: [w] });
  // a node between w and the If, so that w would be freed before the If if the plan missed the branch reads
  g.add({ op: 'Neg', name: 'other', inputs: [x], outputs: [new Value('unused')] });
  const thenG = new Graph('then');
  const t = new Value('then_y');
  thenG.add({ op: 'Mul', name: 'then_mul', inputs: [w, x], outputs: [t] });
  thenG.outputs.push(t);
  const elseG = new Graph('else');
  const e = new Value('else_y');
  if (cond2) {
    const deep = new Graph('deep');
    const d = new Value('deep_y');
    deep.add({ op: 'Add', name: 'deep_add', inputs: [w, x], outputs: [d] });
    deep.outputs.push(d);
    const negG = new Graph('neg');
    const n = new Value('neg_y');
    negG.add({ op: 'Neg', name: 'neg', inputs: [w], outputs: [n] });
    negG.outputs.push(n);
    elseG.add({ op: 'If', name: 'inner_if', inputs: [cond2], outputs: [e], attrs: { then_branch: graphAttr(deep), else_branch: graphAttr(negG) } });
  } else {
    elseG.add({ op: 'Neg', name: 'else_neg', inputs: [w], outputs: [e] });
  }
  elseG.outputs.push(e);
  const y = new Value('y');
  g.add({ op: 'If', name: 'route', inputs: [cond], outputs: [y], attrs: { then_branch: graphAttr(thenG), else_branch: graphAttr(elseG) } });
  g.outputs.push(y);
  return g;
}

const X = [-1, 2, 3];

describe('If in the CPU executor', () => {
  it('runs the branch the condition picks, on values of the enclosing graph', async () => {
    const g = model();
    expect(values((await runGraph(g, { x: f32([3], X), cond: bool([], [1]) })).y!)).toEqual([-0, 4, 9]);
    expect(values((await runGraph(g, { x: f32([3], X), cond: bool([], [0]) })).y!)).toEqual([-0, -2, -3]);
  });

  it('keeps a value read only by the branches until the If runs', () => {
    const g = model();
    const plan = planGraph(g);
    const w = g.nodes.find((n) => n.name === 'relu')!.outputs[0]!;
    const ifStep = plan.steps.findIndex((s) => s.node.name === 'route');
    expect(plan.lastUse.get(w)).toBe(ifStep);
  });

  it('runs nested branches that read values two graphs up', async () => {
    const g = model(true);
    const run = async (c: number, c2: number) => values((await runGraph(g, { x: f32([3], X), cond: bool([], [c]), cond2: bool([], [c2]) })).y!);
    expect(await run(0, 1)).toEqual([-1, 4, 6]);
    expect(await run(0, 0)).toEqual([-0, -2, -3]);
    expect(await run(1, 0)).toEqual([-0, 4, 9]);
  });

  it('refuses an op it cannot run inside a branch before anything runs, naming the branch', () => {
    const g = model();
    const elseG = g.nodes.find((n) => n.op === 'If')!.subgraphs()[1]!;
    elseG.add({ op: 'FancyOp', name: 'fancy', inputs: [elseG.outputs[0]!], outputs: [new Value('fancy_y')] });
    expect(() => planGraph(g)).toThrow(UnsupportedOpsError);
    expect(() => planGraph(g)).toThrow(/"route\/else\/fancy": FancyOp \(no CPU implementation\)/);
  });
});
