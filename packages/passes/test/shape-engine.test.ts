// The symbolic shape engine: canonical dim expressions (checked against plain integer arithmetic on random
// bindings) and the forward pass on the spellings exporters write (Shape/Gather/Concat reshape targets, RoPE
// slices, broadcast against unknown dims, scales computed from shapes, subgraphs), with its cache invalidation.

import { Node, parseGraph, tensorType, Value } from '@attnopt/ir';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { inferDtype, inferShape, sameDim, staticShape, staticScalar, symbolicShape } from '../src/shape-inference/shapes.js';
import { add, constant, div, type Expr, evaluate, fresh, max, min, mod, mul, neg, sub, symbol } from '../src/shape-inference/symbolic-shapes/expr.js';

const b = symbol('batch');
const s = symbol('seq');
const p = symbol('past');

describe('dim expressions', () => {
  test('(batch*seq*256) / (batch*seq*4) is 64', () => {
    expect(div(mul(mul(b, s), constant(256)), mul(mul(b, s), constant(4)))).toBe(constant(64));
  });

  test('equal expressions are one object, whatever the order they were built in', () => {
    expect(add(mul(b, s), p)).toBe(add(p, mul(s, b)));
    expect(sub(add(s, p), p)).toBe(s);
    expect(mul(add(b, constant(1)), s)).toBe(add(mul(b, s), s));
  });

  test('min / max of sizes ordered by a size >= 0', () => {
    expect(min(s, add(s, p))).toBe(s);
    expect(max(s, add(s, p))).toBe(add(s, p));
    expect(min(s, constant(0))).toBe(constant(0));
    expect(min(neg(s), constant(0))).toBe(neg(s)); // -seq is no size: min keeps it
    expect(String(min(s, p))).toBe('min(past, seq)');
  });

  test('division by a constant splits off the exact part of sizes', () => {
    expect(div(add(mul(constant(2), s), constant(1)), constant(2))).toBe(s); // (2s + 1) / 2 = s
    expect(div(mul(s, p), p)).toBe(s);
    expect(mod(mul(constant(6), s), constant(3))).toBe(constant(0));
  });

  test('a run-time size stays itself', () => {
    const u = fresh();
    expect(u.hasFresh).toBe(true);
    expect(u).not.toBe(fresh());
    expect(add(u, s).hasFresh).toBe(true);
    expect(s.hasFresh).toBe(false);
  });

  // for any expressions built from sizes by + - * / % min max, evaluating the expression equals doing the
  // arithmetic on the numbers (integer division truncating, ONNX Mod with the divisor's sign)
  test('simplification never changes the value (random expressions, random bindings)', () => {
    type Tree = { op: string; kids: Tree[] } | { leaf: number | string };
    const leaf: fc.Arbitrary<Tree> = fc.oneof(fc.integer({ min: 0, max: 9 }).map((x) => ({ leaf: x })), fc.constantFrom('batch', 'seq', 'past').map((x) => ({ leaf: x })));
    const tree = fc.letrec<{ t: Tree }>((rec) => ({
      t: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, fc.record({ op: fc.constantFrom('+', '-', '*', '/', '%', 'min', 'max'), kids: fc.tuple(rec('t'), rec('t')) })),
    })).t;
    const binding = fc.record({ batch: fc.integer({ min: 0, max: 12 }), seq: fc.integer({ min: 0, max: 12 }), past: fc.integer({ min: 0, max: 12 }) });
    const build = (t: Tree): Expr | undefined => {
      if ('leaf' in t) return typeof t.leaf === 'number' ? constant(t.leaf) : symbol(t.leaf);
      const [x, y] = t.kids.map(build);
      if (!x || !y) return undefined;
      return { '+': add, '-': sub, '*': mul, '/': div, '%': mod, min, max }[t.op]!(x, y);
    };
    const direct = (t: Tree, env: Record<string, number>): number | undefined => {
      if ('leaf' in t) return typeof t.leaf === 'number' ? t.leaf : env[t.leaf];
      const [x, y] = t.kids.map((k) => direct(k, env));
      if (x === undefined || y === undefined) return undefined;
      switch (t.op) {
        case '+': return x + y;
        case '-': return x - y;
        case '*': return x * y;
        case '/': return y === 0 ? undefined : Math.trunc(x / y);
        case '%': return y === 0 ? undefined : ((x % y) + y) % y;
        case 'min': return Math.min(x, y);
        default: return Math.max(x, y);
      }
    };
    fc.assert(
      fc.property(tree, binding, (t, env) => {
        const want = direct(t, env);
        const e = build(t);
        if (want === undefined || e === undefined) return; // a division by zero somewhere
        expect(evaluate(e, new Map(Object.entries(env)))! + 0).toBe(want + 0); // + 0: -0 and 0 are one size
      }),
      { numRuns: 2000 },
    );
  });
});

const I64 = (name: string, xs: number[]) => `  init %${name}: i64[${xs.length}] = tensor<i64[${xs.length}]> [${xs.join(', ')}]`;
const SCALAR = (name: string, x: number) => `  init %${name}: i64[] = tensor<i64[]> [${x}]`;

describe('the forward pass', () => {
  test("the exporter's reshape target Concat(Unsqueeze(Gather(Shape(x), i)), [4], [-1]) solves its -1", () => {
    const g = parseGraph(`graph g {
  input %x: f32[batch, seq, 256]
${SCALAR('i0', 0)}
${SCALAR('i1', 1)}
${I64('ax', [0])}
${I64('heads', [4])}
${I64('rest', [-1])}
  %sh = Shape(%x)
  %g0 = Gather(%sh, %i0) {axis = 0}
  %g1 = Gather(%sh, %i1) {axis = 0}
  %u0 = Unsqueeze(%g0, %ax)
  %u1 = Unsqueeze(%g1, %ax)
  %t = Concat(%u0, %u1, %heads, %rest) {axis = 0}
  %y = Reshape(%x, %t)
  output %y
}`);
    const y = g.outputs[0]!;
    expect(staticShape(y)).toEqual(['batch', 'seq', 4, 64]);
    expect(symbolicShape(y)?.map(String)).toEqual(['batch', 'seq', '4', '64']);
  });

  test("torch's expand(b, 1, -1, -1): Where(Equal(shape, -1), 1, shape) keeps the dims (a dim is never -1)", () => {
    const g = parseGraph(`graph g {
  input %x: f32[batch, seq]
  input %m: f32[seq, seq]
${SCALAR('i0', 0)}
${I64('ax', [0])}
${I64('rest', [1, -1, -1])}
${I64('four', [4])}
${SCALAR('minus1', -1)}
  %sh = Shape(%x)
  %g0 = Gather(%sh, %i0) {axis = 0}
  %u0 = Unsqueeze(%g0, %ax)
  %t = Concat(%u0, %rest) {axis = 0}
  %ones = ConstantOfShape(%four) {value = tensor<i64[1]> [1]}
  %neg = Mul(%ones, %minus1)
  %isneg = Equal(%t, %neg)
  %target = Where(%isneg, %ones, %t)
  %y = Expand(%m, %target)
  output %y
}`);
    expect(symbolicShape(g.outputs[0])?.map(String)).toEqual(['batch', '1', 'seq', 'seq']);
  });

  test("a '?' broadcast against seq becomes seq (token + position embeddings), and the -1 then solves", () => {
    const g = parseGraph(`graph g {
  input %tok: f32[batch, seq, 256]
  input %pos: f32[1, ?, 256]
${I64('t', [0, 0, 4, -1])}
  %e = Add(%tok, %pos)
  %y = Reshape(%e, %t)
  output %y
}`);
    expect(staticShape(g.outputs[0])).toEqual(['batch', 'seq', 4, 64]);
  });

  test('two symbols that must match are recorded equal', () => {
    const g = parseGraph(`graph g {
  input %a: f32[batch, seq]
  input %m: f32[batch, sequence]
  %y = Add(%a, %m)
  output %y
}`);
    const [a, m] = g.inputs;
    expect(sameDim(a, 1, m, 1)).toBe(true);
    expect(sameDim(a, 0, m, 1)).toBe(false);
    expect(inferShape(g.outputs[0])).toEqual(['batch', 'seq']);
  });

  test("onnxruntime's FusedMatMul transposes the operands transA / transB name, and contracts the right dims", () => {
    const g = parseGraph(`graph g {
  input %q: f32[batch, 4, seq, 8]
  input %k: f32[batch, 4, total, 8]
  input %qt: f32[batch, 4, 8, seq]
  %s = com.microsoft::FusedMatMul(%q, %k) {transB = 1, alpha = 0.5}
  %st = com.microsoft::FusedMatMul(%qt, %k) {transA = 1, transB = 1}
  %moved = com.microsoft::FusedMatMul(%q, %k) {transB = 1, transBatchB = 1}
  output %s, %st, %moved
}`);
    expect(inferShape(g.outputs[0])).toEqual(['batch', 4, 'seq', 'total']);
    expect(inferShape(g.outputs[1])).toEqual(['batch', 4, 'seq', 'total']);
    // total and seq stay two sizes (read as a MatMul, the head size 8 and total were made one)
    expect(sameDim(g.inputs[0], 2, g.inputs[1], 2)).toBe(false);
    expect(inferShape(g.outputs[2])).toBeUndefined();
  });

  test('quantization ops keep or contract shapes as their float counterparts; the element type is theirs', () => {
    const g = parseGraph(`graph g {
  input %x: f32[batch, seq, 32]
  input %b8: u8[32, 16]
  init %s: f32[] = tensor<f32[]> [0.5]
  init %zp: i8[] = tensor<i8[]> [0]
  init %w4: u8[24, 1, 16] = tensor<u8[24, 1, 16]> [${Array(24 * 16).fill(0).join(', ')}]
  init %w4s: f32[24] = tensor<f32[24]> [${Array(24).fill(1).join(', ')}]
  %xq = QuantizeLinear(%x, %s, %zp)
  %xu = QuantizeLinear(%x, %s)
  %xd = DequantizeLinear(%xq, %s, %zp)
  %dq, %dqs, %dqz = DynamicQuantizeLinear(%x)
  %ql = QLinearMatMul(%dq, %dqs, %dqz, %b8, %s, %dqz, %s, %dqz)
  %mf = com.microsoft::MatMulIntegerToFloat(%dq, %b8, %dqs, %s)
  %n4 = com.microsoft::MatMulNBits(%x, %w4, %w4s) {K = 32, N = 24, bits = 4, block_size = 32}
  %msq = com.microsoft::QuantizeLinear(%x, %s, %zp)
  output %xq, %xu, %xd, %dq, %dqs, %ql, %mf, %n4, %msq
}`);
    const got = g.outputs.map((v) => [inferShape(v), inferDtype(v)]);
    expect(got).toEqual([
      [['batch', 'seq', 32], 'i8'],
      [['batch', 'seq', 32], 'u8'],
      [['batch', 'seq', 32], 'f32'],
      [['batch', 'seq', 32], 'u8'],
      [[], 'f32'],
      [['batch', 'seq', 16], 'u8'],
      [['batch', 'seq', 16], 'f32'],
      [['batch', 'seq', 24], 'f32'],
      [['batch', 'seq', 32], 'i8'],
    ]);
  });

  test('1 / sqrt(head size) read from Shape is a static number (float32 rounding included)', () => {
    const g = parseGraph(`graph g {
  input %q: f32[batch, 4, seq, 48]
${I64('last', [-1])}
  init %one: f32[] = tensor<f32[]> [1.0]
  %sh = Shape(%q)
  %d = Gather(%sh, %last) {axis = 0}
  %df = Cast(%d) {to = 1}
  %sq = Sqrt(%df)
  %y = Div(%one, %sq)
  output %y
}`);
    expect(staticScalar(g.outputs[0])).toBe(1 / Math.sqrt(48));
  });

  test('head_size ** -0.5 with the head size read from Shape and cast to float32', () => {
    const g = parseGraph(`graph g {
  input %q: f32[batch, seq, 4, 80]
${I64('last', [-1])}
  init %e: f32[] = tensor<f32[]> [-0.5]
  %sh = Shape(%q)
  %d = Gather(%sh, %last) {axis = 0}
  %df = Cast(%d) {to = 1}
  %y = Pow(%df, %e)
  output %y
}`);
    expect(staticScalar(g.outputs[0])).toBe(80 ** -0.5);
  });

  test("RoPE's rotate_half: Slice halves by Shape arithmetic, Neg, Concat keep rank and dims", () => {
    const g = parseGraph(`graph g {
  input %x: f32[batch, 4, seq, 64]
${I64('last', [-1])}
${I64('zero', [0])}
${I64('big', [2147483647])}
${SCALAR('two', 2)}
  %sh = Shape(%x)
  %d = Gather(%sh, %last) {axis = 0}
  %h = Div(%d, %two)
  %x1 = Slice(%x, %zero, %h, %last)
  %x2 = Slice(%x, %h, %big, %last)
  %n = Neg(%x2)
  %y = Concat(%n, %x1) {axis = -1}
  output %y
}`);
    expect(staticShape(g.outputs[0])).toEqual(['batch', 4, 'seq', 64]);
  });

  test('Range over a symbolic length, a causal mask sliced to the total length, NonZero a run-time size', () => {
    const g = parseGraph(`graph g {
  input %x: f32[batch, seq, 8]
  input %past: f32[batch, 2, past, 4]
  input %buf: f32[1, 1, 512, 512]
${SCALAR('zero', 0)}
${SCALAR('one', 1)}
${I64('i1', [1])}
${I64('i2', [2])}
${I64('ax23', [2, 3])}
${I64('z2', [0, 0])}
  %sh = Shape(%x)
  %s = Gather(%sh, %one) {axis = 0}
  %r = Range(%zero, %s, %one)
  %ps = Shape(%past)
  %pl = Gather(%ps, %i2) {axis = 0}
  %sl = Slice(%sh, %i1, %i2)
  %tot = Add(%pl, %sl)
  %ends = Concat(%tot, %tot) {axis = 0}
  %m = Slice(%buf, %z2, %ends, %ax23)
  %nz = NonZero(%x)
  output %r, %m, %nz
}`);
    const [r, m, nz] = g.outputs;
    expect(staticShape(r)).toEqual(['seq']);
    expect(symbolicShape(m)?.map(String)).toEqual(['1', '1', 'min(past + seq, 512)', 'min(past + seq, 512)']);
    const [rows, count] = symbolicShape(nz)!;
    expect(rows).toBe(constant(3));
    expect(count!.hasFresh).toBe(true);
    expect(staticShape(nz)).toEqual([3, '?']);
  });

  test('an If branch reads the outer scope; branches that disagree leave the dim unknown', () => {
    const g = parseGraph(`graph g {
  input %x: f32[batch, seq, 8]
  input %c: bool[]
${I64('t', [0, -1])}
${I64('u', [0, 16, -1])}
  %y = If(%c) {
    then_branch = graph then {
      %a = Reshape(%x, %t)
      output %a
    },
    else_branch = graph else {
      %r = Reshape(%x, %u)
      %b = ReduceSum(%r) {axes = [1], keepdims = 0}
      output %b
    }
  }
  output %y
}`);
    const y = g.outputs[0]!;
    // then: [batch, seq*8]; else: [batch, (seq*8) / 16]
    expect(inferShape(y)).toEqual(['batch', '?']);
  });

  test('a rewrite: values it creates are computed on demand; a changed producer drops the cache', () => {
    const g = parseGraph(`graph g {
  input %x: f32[batch, seq, 256]
${I64('t', [0, 0, 4, -1])}
${I64('u', [0, 0, 8, -1])}
  %y = Reshape(%x, %t)
  output %y
}`);
    const y = g.outputs[0]!;
    expect(staticShape(y)).toEqual(['batch', 'seq', 4, 64]);
    // a node added after the pass
    const z = new Value('z');
    g.add({ op: 'Transpose', inputs: [y], outputs: [z], attrs: { perm: { type: 'ints', value: [0n, 2n, 1n, 3n] } } });
    expect(staticShape(z)).toEqual(['batch', 4, 'seq', 64]);
    // a change that is not a rewrite: the reshape now reads another target
    const u = g.initializers.find((v) => v.name === 'u')!;
    y.producer!.setInput(1, u);
    expect(staticShape(y)).toEqual(['batch', 'seq', 8, 32]);
    // a declared type wins over inference
    const w = new Value('w', tensorType('f32', ['n', 3]));
    new Node({ op: 'Identity', inputs: [g.inputs[0]], outputs: [w] });
    expect(inferShape(w)).toEqual(['n', 3]);
  });
});
