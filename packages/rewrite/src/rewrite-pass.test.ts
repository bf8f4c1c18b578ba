import { parseGraph, printGraph, Node, Value } from '@attnopt/ir';
import { describe, expect, test } from 'vitest';
import { constantScalar } from './constants.js';
import { replaceMatch } from './edit.js';
import { matched, noMatch } from './match-result.js';
import { runPipeline, type Pass } from './pass.js';
import { rewritePass } from './rewrite-pass.js';
import type { RewriteRule } from './rule.js';

// Mul(x, 1) -> x
const mulByOne: RewriteRule<Value> = {
  name: 'mul-by-one',
  summary: 'Mul(x, 1) -> x',
  roots: ['Mul'],
  match(node) {
    const [a, b] = node.inputs;
    if (constantScalar(b) === 1) return matched(a!);
    if (constantScalar(a) === 1) return matched(b!);
    return noMatch('neither input is the constant 1');
  },
  rewrite(graph, node, x) {
    replaceMatch(graph, [node], [node.outputs[0]!], [x], []);
  },
};

const text = `graph g {
  input %x: f32[2]
  init %one: f32[] = tensor<f32[]> [1.0]
  init %two: f32[] = tensor<f32[]> [2.0]
  %a = Mul(%x, %one)
  %b = Mul(%one, %a)
  %c = Mul(%b, %two)
  output %c
}`;

describe('rewrite pass', () => {
  test('applies rules to a fixpoint and explains the nodes it left', () => {
    const g = parseGraph(text);
    const result = rewritePass('simplify', [mulByOne]).run(g);
    expect(result.changed).toBe(true);
    expect(printGraph(g)).toContain('%c = Mul(%x, %two)');
    expect(g.nodes).toHaveLength(1);
    expect(result.notes.filter((n) => n.message.startsWith('applied'))).toHaveLength(2);
    expect(result.notes).toContainEqual({
      pass: 'simplify',
      rule: 'mul-by-one',
      node: 'node Mul -> %c',
      message: 'neither input is the constant 1',
    });
  });

  test('does not fire when nothing matches, and says so', () => {
    const g = parseGraph(`graph g {
  input %x: f32[2]
  %c = Mul(%x, %x)
  output %c
}`);
    const before = printGraph(g);
    const result = rewritePass('simplify', [mulByOne]).run(g);
    expect(result.changed).toBe(false);
    expect(printGraph(g)).toBe(before);
  });

  test('the pipeline names the pass that left an invalid graph', () => {
    const g = parseGraph(text);
    const breaker: Pass = {
      name: 'breaker',
      run(graph) {
        graph.addNode(new Node({ op: 'Relu', inputs: [new Value('nowhere')], outputs: [new Value('r')] }), 0);
        return { changed: true, notes: [] };
      },
    };
    expect(() => runPipeline(g, [breaker])).toThrow(/pass breaker left an invalid graph: [\s\S]*dangling input 0 %nowhere/);
  });
});
