import { parseGraph, type Graph, type Value } from '@attnopt/ir';
import { describe, expect, test } from 'vitest';
import { constantScalar } from './constants.js';
import { matchPattern, oneOf, op, through, v, where } from './pattern.js';

function valueNamed(g: Graph, name: string): Value {
  for (const x of g.definedValues()) if (x.name === name) return x;
  throw new Error(`no value ${name}`);
}

const sdpa = parseGraph(`graph g {
  input %q: f32[2, 4, 8]
  input %k: f32[2, 4, 8]
  input %v: f32[2, 4, 8]
  input %m: f32[4, 4]
  init %s: f32[] = tensor<f32[]> [8.0]
  %kt = Transpose(%k) {perm = [0, 2, 1]}
  %qk = MatMul(%q, %kt)
  %sc = Div(%qk, %s)
  %c = Cast(%sc) {to = 1}
  %b = Add(%m, %c)
  %p = Softmax(%b) {axis = -1}
  %y = MatMul(%p, %v)
  output %y
}`);

const scores = op('MatMul', [v('q'), op('Transpose', [v('k')])]);
const scaled = oneOf('scale', [op('Div', [scores, where('s', 'a constant', (x) => constantScalar(x) !== undefined)]), scores]);
const attention = op('MatMul', [op('Softmax', [op('Add', [through(['Cast'], scaled), v('mask')])]), v('v')]);

describe('patterns', () => {
  test('match through commutative Add, a skipped Cast, and a tagged alternative', () => {
    const m = matchPattern(attention, valueNamed(sdpa, 'y'))!;
    expect(m).toBeDefined();
    expect(m.values.get('q')!.name).toBe('q');
    expect(m.values.get('k')!.name).toBe('k');
    expect(m.values.get('mask')!.name).toBe('m');
    expect(constantScalar(m.values.get('s'))).toBe(8);
    expect(m.tags.get('scale')).toBe(0);
    expect(m.matchedNodes.map((n) => n.op).sort()).toEqual(['Add', 'Cast', 'Div', 'MatMul', 'MatMul', 'Softmax', 'Transpose']);
  });

  test('does not match when an op differs or a bound variable disagrees', () => {
    expect(matchPattern(op('MatMul', [op('Sigmoid', [v('x')]), v('v')]), valueNamed(sdpa, 'y'))).toBeUndefined();
    // the same variable twice must be the same value: Q and V are different inputs
    expect(matchPattern(op('MatMul', [v('x'), v('x')]), valueNamed(sdpa, 'y'))).toBeUndefined();
  });

  test('an absent input in the pattern requires the input to be absent', () => {
    const g = parseGraph(`graph g {
  input %x: f32[2]
  %y = Clip(%x, _, %x)
  output %y
}`);
    expect(matchPattern(op('Clip', [v('x'), undefined, v('x')]), valueNamed(g, 'y'))).toBeDefined();
    expect(matchPattern(op('Clip', [v('x'), v('lo'), v('x')]), valueNamed(g, 'y'))).toBeUndefined();
  });
});
