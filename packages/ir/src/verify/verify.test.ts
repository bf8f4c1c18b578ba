import { describe, expect, it } from 'vitest';
import { Graph, Node, Value } from '../graph.js';
import { parseGraph } from '../text/index.js';
import { tensorType } from '../types.js';
import { assertValid, verifyGraph } from './index.js';

const issuesOf = (g: Graph) => verifyGraph(g).map((i) => `${i.rule}: ${i.message}`);
const check = (text: string) => issuesOf(parseGraph(text));

const ATTN = (layout: string, extra = '') =>
  `{numHeads = 4, kvNumHeads = 2, headDim = 8, vHeadDim = 8, scale = 0.35, softcap = 0.0, layout = "${layout}", spec = spec<causal>${extra}}`;

describe('well-formed graphs', () => {
  it('have no issues, with subgraphs using outer values defined before their node', () => {
    const g = parseGraph(`graph g {
      input %x: f32[B, 3]
      input %w: f32[3, N]
      %y: f32[B, N] = MatMul(%x, %w)
      %z = If(%x) {then = graph t { %u = Neg(%y)
 output %u }}
      %s = Softmax(%z) {axis = -1}
      output %z
    }`);
    expect(verifyGraph(g)).toEqual([]);
    expect(assertValid(g)).toBe(g);
  });
  it('accept symbols and unknown dims that may bind to anything', () => {
    expect(check(`graph g {
      input %a: f32[B, S, K]
      input %b: f32[7, 5]
      input %c: f32[?, 1]
      %y = MatMul(%a, %b)
      %z = Add(%c, %b)
      %t = Transpose(%a) {perm = [0, 2, 1]}
      %u = com.x::MatMul(%b, %b)
    }`)).toEqual([]);
  });
});

describe('structural rules', () => {
  it('dangling: a node input defined nowhere in scope', () => {
    const g = new Graph('g');
    const ghost = new Value('ghost');
    g.add({ op: 'Neg', inputs: [ghost], outputs: [new Value('y')], name: 'neg' });
    expect(issuesOf(g)).toEqual([
      'dangling: node "neg" (Neg): dangling input 0 %ghost: not a graph input, initializer or output of an earlier node in scope',
    ]);
  });
  it('dangling: a subgraph value used outside its subgraph', () => {
    const g = parseGraph('graph g {\n input %x\n %y = If(%x) {b = graph b { %t = Neg(%x)\n output %t }}\n}');
    const t = g.nodes[0]!.subgraphs()[0]!.nodes[0]!.outputs[0]!;
    g.add({ op: 'Neg', inputs: [t], outputs: [new Value('z')] });
    expect(issuesOf(g)).toEqual([expect.stringMatching(/^dangling: node Neg -> %z: dangling input 0 %t/)]);
  });
  it('use-before-def: a node placed before the producer of its input', () => {
    const g = parseGraph('graph g {\n input %x\n %a = Neg(%x) name="p"\n %b = Neg(%a) name="c"\n}');
    const c = g.nodes[1]!;
    g.nodes.splice(1, 1);
    g.nodes.unshift(c);
    expect(issuesOf(g)).toEqual(['use-before-def: node "c" (Neg): input 0 %a is used before its definition by node "p" (Neg)']);
  });
  it('use-before-def: a subgraph using an outer value defined after its node', () => {
    const g = parseGraph('graph g {\n input %x\n %a = Neg(%x)\n %b = If(%x) {b = graph b { output %x }} name="if"\n}');
    g.nodes[1]!.subgraphs()[0]!.outputs[0] = g.nodes[0]!.outputs[0]!;
    g.nodes.reverse();
    expect(issuesOf(g)).toEqual(['use-before-def: node "if" (If): %a (read by subgraph "b") is used before its definition by node Neg -> %a']);
  });
  it('cycle: names every node on the cycle, and a self-loop', () => {
    const g = parseGraph('graph g {\n input %x\n %a = Add(%x, %x) name="A"\n %b = Neg(%a) name="B"\n %c = Neg(%b) name="C"\n}');
    g.nodes[0]!.setInput(1, g.nodes[1]!.outputs[0]);
    g.nodes[2]!.setInput(1, g.nodes[2]!.outputs[0]);
    expect(issuesOf(g)).toEqual([
      'cycle: node "C" (Neg): on a cycle of nodes: node "C" (Neg) -> node "C" (Neg)',
      'cycle: node "A" (Add): on a cycle of nodes: node "A" (Add) -> node "B" (Neg) -> node "A" (Add)',
    ]);
  });
  it('defined-twice: a value listed as input and output, or two values with one name', () => {
    const g = parseGraph('graph g {\n input %x\n %a = Neg(%x) name="n"\n}');
    g.nodes[0]!.outputs.push(g.inputs[0]!);
    g.add({ op: 'Neg', inputs: [g.inputs[0]!], outputs: [new Value('a')], name: 'm' });
    const issues = issuesOf(g);
    expect(issues).toContain('defined-twice: node "n" (Neg): output 1 %x is already defined as input');
    expect(issues).toContain('defined-twice: node "m" (Neg): output 0 %a reuses the name of another value of graph "g"');
  });
  it('undefined-output: a graph output that nothing defines', () => {
    const g = parseGraph('graph g {\n input %x\n output %x\n}');
    g.outputs.push(new Value('nowhere'));
    expect(issuesOf(g)).toEqual(['undefined-output: graph "g": output %nowhere is not defined in the graph or its scope']);
  });
  it('bookkeeping: a use missing from the value, a stale use, a wrong producer', () => {
    const g = parseGraph('graph g {\n input %x\n %a = Neg(%x) name="n"\n %b = Neg(%a) name="m"\n}');
    g.inputs[0]!.removeUse(g.nodes[0]!, 0);
    const stray = new Node({ op: 'Abs', inputs: [g.nodes[0]!.outputs[0]!], name: 'stray' });
    stray.truncateInputs(0);
    g.nodes[0]!.outputs[0]!.addUse({ node: stray, index: 0 });
    g.nodes[1]!.outputs[0]!.outputIndex = 3;
    expect(issuesOf(g)).toEqual([
      'bookkeeping: node "n" (Neg): input 0 %x is recorded 0 times among the uses of %x (expected once)',
      'bookkeeping: node "m" (Neg): output 0 %b records output index 3',
      'bookkeeping: node "stray" (Abs): %a records a use by input 0, which reads nothing',
    ]);
  });
  it('recurses into subgraphs', () => {
    const g = parseGraph('graph g {\n input %x\n %y = If(%x) {b = graph b { %t = Neg(%x) name="inner"\n output %t }}\n}');
    g.nodes[0]!.subgraphs()[0]!.nodes[0]!.setInput(0, new Value('ghost'));
    expect(issuesOf(g)).toEqual([expect.stringMatching(/^dangling: node "inner" \(Neg\): dangling input 0 %ghost/)]);
  });
});

describe('attention rule', () => {
  const attn = (q: string, k: string, v: string, layout = 'bsd', extra = '', y = '') =>
    check(`graph g {\n input %q: ${q}\n input %k: ${k}\n input %v: ${v}\n %y${y} = attnopt::Attention(%q, %k, %v) ${ATTN(layout, extra)} name="at"\n}`);
  it('accepts consistent shapes in every layout', () => {
    expect(attn('f32[B, S, 32]', 'f32[B, T, 16]', 'f32[B, T, 16]', 'bsd', '', ': f32[B, S, 32]')).toEqual([]);
    expect(attn('f32[2, 4, S, 8]', 'f32[2, 2, T, 8]', 'f32[2, 2, T, 8]', 'bhsd')).toEqual([]);
    expect(attn('f32[2, S, 4, 8]', 'f32[2, T, 2, 8]', 'f32[2, T, 2, 8]', 'bshd')).toEqual([]);
    expect(check(`graph g {\n input %q: f32[B, S, 64]\n %y: f32[B, S, 32] = attnopt::Attention(%q) ${ATTN('packed-qkv')}\n}`)).toEqual([]);
  });
  it('rejects Q last dim != numHeads*headDim (bsd)', () => {
    expect(attn('f32[B, S, 33]', 'f32[B, T, 16]', 'f32[B, T, 16]')).toEqual([
      'attention: node "at" (attnopt::Attention): Q dim 2 (numHeads*headDim = 4*8) is 33, expected 32 (shape mismatch)',
    ]);
  });
  it('rejects K heads != kvNumHeads (bhsd) and differing batch dims', () => {
    expect(attn('f32[2, 4, S, 8]', 'f32[2, 4, T, 8]', 'f32[3, 2, T, 8]', 'bhsd')).toEqual([
      'attention: node "at" (attnopt::Attention): K dim 1 (kvNumHeads) is 4, expected 2 (shape mismatch)',
      'attention: node "at" (attnopt::Attention): V dim 0 (batch) is 3, expected 2 (shape mismatch)',
    ]);
  });
  it('binds a symbol to the first size it meets', () => {
    expect(attn('f32[B, 5, 32]', 'f32[2, T, 16]', 'f32[B, 7, 16]', 'bsd', '', ': f32[3, S, 32]')).toEqual([
      'attention: node "at" (attnopt::Attention): output Y dim 0 (batch) is 3, expected 2 (shape mismatch)',
    ]);
    expect(attn('f32[B, S, 32]', 'f32[B, S, 16]', 'f32[B, 9, 16]', 'bsd', '', ': f32[B, 8, 32]')).toEqual([
      'attention: node "at" (attnopt::Attention): output Y dim 1 (query length) is 8, expected 9 (shape mismatch)',
    ]);
  });
  it('rejects packed-qkv width, wrong rank, missing K and a rank-5 bias', () => {
    expect(check(`graph g {\n input %q: f32[B, S, 63]\n %y = attnopt::Attention(%q) ${ATTN('packed-qkv')} name="at"\n}`)).toEqual([
      'attention: node "at" (attnopt::Attention): Q dim 2 ((numHeads + 2*kvNumHeads)*headDim = (4 + 2*2)*8) is 63, expected 64 (shape mismatch)',
    ]);
    expect(check(`graph g {\n input %q: f32[B, S, 32]\n input %m: bool[1, 1, 1, S, S]\n %y = attnopt::Attention(%q, _, %q, %m) ${ATTN('bsd')} name="at"\n}`)).toEqual([
      'attention: node "at" (attnopt::Attention): layout bsd needs a K input',
      'attention: node "at" (attnopt::Attention): V dim 2 (kvNumHeads*vHeadDim = 2*8) is 32, expected 16 (shape mismatch)',
      'attention: node "at" (attnopt::Attention): bias has rank 5, at most 4 broadcasts to [batch, heads, query, key]',
    ]);
    expect(attn('f32[B, S, 4, 8]', 'f32[B, T, 16]', 'f32[B, T, 16]', 'bsd')).toEqual([
      'attention: node "at" (attnopt::Attention): Q has rank 4 ([B, S, 4, 8]), layout bsd needs rank 3',
    ]);
  });
  it('rejects invalid params', () => {
    expect(check(`graph g {\n input %q\n %y = attnopt::Attention(%q, %q, %q) {numHeads = 3, kvNumHeads = 2, headDim = 8, vHeadDim = 8, scale = 1.0, softcap = 0.0, layout = "bsd", spec = spec<dense>} name="at"\n}`)).toEqual([
      'attention: node "at" (attnopt::Attention): invalid Attention: numHeads 3 is not a multiple of kvNumHeads 2',
    ]);
    expect(check(`graph g {\n input %q\n %y = attnopt::Attention(%q, %q, %q) {numHeads = 2} name="at"\n}`)).toEqual([
      'attention: node "at" (attnopt::Attention): missing attribute spec',
    ]);
  });
});

describe('ONNX shape rules', () => {
  const g2 = (a: string, b: string, op: string, attrs = '') =>
    check(`graph g {\n input %a: ${a}\n input %b: ${b}\n %y = ${op}(%a, %b)${attrs} name="n"\n}`);
  it('MatMul: inner dims and batch broadcast', () => {
    expect(g2('f32[2, 3]', 'f32[4, 5]', 'MatMul')).toEqual([
      'shape: node "n" (MatMul): shape mismatch: inner dimensions differ, A [2, 3] has 3, B [4, 5] has 4',
    ]);
    expect(g2('f32[2, 3]', 'f32[3]', 'MatMul')).toEqual([]);
    expect(g2('f32[2, 5, 3]', 'f32[4, 3, 5]', 'MatMul')).toEqual([
      'shape: node "n" (MatMul): shape mismatch: batch dims of [2, 5, 3] and [4, 3, 5] do not broadcast (axis -1 has sizes 2 and 4)',
    ]);
  });
  it('Add/Sub/Mul/Div/Where: broadcastability', () => {
    for (const op of ['Add', 'Sub', 'Mul', 'Div']) {
      expect(g2('f32[2, 3]', 'f32[4, 3]', op)).toEqual([
        `shape: node "n" (${op}): shape mismatch: inputs [2, 3], [4, 3] do not broadcast (axis -2 has sizes 2 and 4)`,
      ]);
      expect(g2('f32[2, 3]', 'f32[1, 3]', op)).toEqual([]);
    }
    expect(check('graph g {\n input %c: bool[5]\n input %a: f32[2, 5]\n input %b: f32[6]\n %y = Where(%c, %a, %b)\n}')).toEqual([
      'shape: node Where -> %y: shape mismatch: inputs [5], [2, 5], [6] do not broadcast (axis -1 has sizes 5 and 6)',
    ]);
  });
  it('Transpose: perm length = rank; Softmax: axis in range', () => {
    expect(check('graph g {\n input %a: f32[2, 3]\n %y = Transpose(%a) {perm = [1, 0, 2]}\n}')).toEqual([
      'shape: node Transpose -> %y: shape mismatch: perm has 3 entries for input of rank 2',
    ]);
    expect(check('graph g {\n input %a: f32[2, 3]\n %y = Softmax(%a) {axis = 2}\n %z = Softmax(%a) {axis = -2}\n}')).toEqual([
      'shape: node Softmax -> %y: shape mismatch: axis 2 is out of range for input of rank 2',
    ]);
  });
  it('never fires on unknown ops, other domains or unknown shapes', () => {
    expect(g2('f32[2, 3]', 'f32[4, 5]', 'com.microsoft::MatMul')).toEqual([]);
    expect(g2('f32[2, 3]', 'f32[4, 5]', 'FancyOp')).toEqual([]);
    expect(g2('f32[*]', 'f32[4, 5]', 'MatMul')).toEqual([]);
  });
});

describe('assertValid', () => {
  it('throws one error listing every issue', () => {
    const g = new Graph('m');
    g.add({ op: 'Neg', inputs: [new Value('p')], outputs: [new Value('y', tensorType('f32', [1]))], name: 'a' });
    g.outputs.push(new Value('q'));
    expect(() => assertValid(g)).toThrow(
      'graph "m" is invalid (2 issues):\n  - node "a" (Neg): dangling input 0 %p: not a graph input, initializer or output of an earlier node in scope\n  - graph "m": output %q is not defined in the graph or its scope',
    );
  });
});
