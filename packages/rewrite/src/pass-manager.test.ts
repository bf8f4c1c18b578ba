import { type Graph, Node, parseGraph, Value } from '@attnopt/ir';
import { describe, expect, test } from 'vitest';
import { runPasses, runPassesSync, stageLabels, type StatePass } from './pass-manager.js';

interface State {
  readonly graph: Graph;
  readonly log: string[];
  ready: boolean;
}

const text = `graph g {
  input %x: f32[2]
  %y = Relu(%x)
  output %y
}`;

const state = (): State => ({ graph: parseGraph(text), log: [], ready: false });

/** A pass that logs its name when it runs (after `delay` ms when given: an async pass). */
function logging(name: string, label: string, delay?: number): StatePass<State> {
  return {
    name,
    label,
    run(s) {
      const done = () => {
        s.log.push(name);
        return { changed: false, notes: [{ pass: name, message: `${name} ran` }] };
      };
      return delay === undefined ? done() : new Promise((resolve) => setTimeout(() => resolve(done()), delay));
    },
  };
}

/** Adds a node reading a value nothing defines: the verifier must name this pass. */
const breaker: StatePass<State> = {
  name: 'breaker',
  label: 'break',
  run(s) {
    s.graph.addNode(new Node({ op: 'Relu', inputs: [new Value('nowhere')], outputs: [new Value('r')] }), 0);
    return { changed: true, notes: [] };
  },
};

describe('pass manager', () => {
  test('runs sync and async passes in order, collecting their notes; a stage is announced once per label', async () => {
    const s = state();
    const stages: string[] = [];
    const passes = [logging('recognize', 'find'), logging('analyze', 'find', 5), logging('calibrate', 'measure', 1), logging('lower', 'emit')];
    const result = await runPasses(s, passes, { onStage: (l) => stages.push(l) });
    expect(s.log).toEqual(['recognize', 'analyze', 'calibrate', 'lower']);
    expect(result.notes.map((n) => n.message)).toEqual(['recognize ran', 'analyze ran', 'calibrate ran', 'lower ran']);
    expect(result.changed).toBe(false);
    expect(stages).toEqual(['find', 'measure', 'emit']);
    expect(stageLabels(passes)).toEqual(['find', 'measure', 'emit']);
  });

  test('a pass that does not apply is neither run nor announced', async () => {
    const s = state();
    const stages: string[] = [];
    const gated: StatePass<State> = { ...logging('calibrate', 'measure'), applies: (st) => st.ready };
    await runPasses(s, [logging('recognize', 'find'), gated, logging('lower', 'emit')], { onStage: (l) => stages.push(l) });
    expect(s.log).toEqual(['recognize', 'lower']);
    expect(stages).toEqual(['find', 'emit']);
  });

  test('until runs a prefix of the pipeline, through the named pass; an unknown name is an error', async () => {
    const s = state();
    const passes = [logging('recognize', 'a'), logging('sparsify', 'b'), logging('lower', 'c')];
    await runPasses(s, passes, { until: 'sparsify' });
    expect(s.log).toEqual(['recognize', 'sparsify']);
    await expect(runPasses(state(), passes, { until: 'codegen' })).rejects.toThrow('no pass named codegen in the pipeline (recognize, sparsify, lower)');
  });

  test('the verifier runs after every pass and names the pass that left an invalid graph', async () => {
    const s = state();
    await expect(runPasses(s, [logging('recognize', 'a'), breaker, logging('lower', 'c')])).rejects.toThrow(/pass breaker left an invalid graph: [\s\S]*dangling input 0 %nowhere/);
    expect(s.log).toEqual(['recognize']);
  });

  test('a rule the input graph already breaks is not held against the passes; the rules it keeps are', async () => {
    const s = state();
    await runPasses(s, [breaker], { verify: false }); // the input now has a dangling use
    await runPasses(s, [logging('recognize', 'a')]);
    expect(s.log).toEqual(['recognize']);
    // a use before the definition: a rule the input kept
    const reorder: StatePass<State> = {
      name: 'reorder',
      label: 'b',
      run(st) {
        st.graph.addNode(new Node({ op: 'Neg', inputs: [st.graph.outputs[0]!], outputs: [new Value('early')] }), 0);
        return { changed: true, notes: [] };
      },
    };
    await expect(runPasses(s, [reorder])).rejects.toThrow(/pass reorder left an invalid graph: graph "g" is invalid \(1 issue\):\n  - .*%y is used before its definition/);
  });

  test('without verify an invalid graph goes through (the caller asked for no check)', async () => {
    const s = state();
    await runPasses(s, [breaker, logging('lower', 'c')], { verify: false });
    expect(s.log).toEqual(['lower']);
  });

  test('the sync driver runs synchronous passes and refuses an async one', () => {
    const s = state();
    const result = runPassesSync(s, [logging('recognize', 'a'), logging('analyze', 'a')]);
    expect(s.log).toEqual(['recognize', 'analyze']);
    expect(result.notes).toHaveLength(2);
    expect(() => runPassesSync(state(), [logging('calibrate', 'b', 1)])).toThrow('runPassesSync: a pass returned a Promise; run this pipeline with runPasses');
  });
});
