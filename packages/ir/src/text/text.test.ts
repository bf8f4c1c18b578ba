import { describe, expect, it } from 'vitest';
import { attentionNode } from '../attention.js';
import { floatAttr, floatsAttr, graphAttr, intAttr, intsAttr, specAttr, stringAttr, stringsAttr, tensorAttr } from '../attributes.js';
import { Graph, Value } from '../graph.js';
import { causal, sinks, slidingWindow, union } from '../spec/spec.js';
import { Tensor } from '../tensor.js';
import { tensorType } from '../types.js';
import { parseGraph, parseTypeText, printAttr, printGraph, printType } from './index.js';

const roundTrip = (text: string) => printGraph(parseGraph(text));

describe('printGraph / parseGraph', () => {
  it('prints an attention graph as the anchor text', () => {
    const g = new Graph('main');
    const q = g.addInput(new Value('q', tensorType('f32', ['B', 'S', 512])));
    const mask = g.addInput(new Value('mask', tensorType('bool', ['S', 'S'])));
    const w = g.addInitializer(new Value('w', tensorType('f32', [2, 2]), Tensor.fromValues('f32', [2, 2], [1, 2, 3, 4.5])));
    const y = new Value('y', tensorType('f32', ['B', 'S', 512]));
    g.addNode(
      attentionNode(
        { numHeads: 8, kvNumHeads: 8, headDim: 64, vHeadDim: 64, scale: 0.125, softcap: 0, layout: 'bsd', spec: union(sinks(4), slidingWindow(128, 0)) },
        { q, k: q, v: q, bias: mask },
        { y },
        'attn0',
      ),
    );
    const z = new Value('z');
    g.add({ op: 'MatMul', inputs: [y, w], outputs: [z] });
    g.outputs.push(y, z);
    const text = printGraph(g);
    expect(text).toBe(
      [
        'graph main {',
        '  input %q: f32[B, S, 512]',
        '  input %mask: bool[S, S]',
        '  init %w: f32[2, 2] = tensor<f32[2, 2]> [1.0, 2.0, 3.0, 4.5]',
        '  %y: f32[B, S, 512] = attnopt::Attention(%q, %q, %q, %mask) {numHeads = 8, kvNumHeads = 8, headDim = 64, vHeadDim = 64, scale = 0.125, softcap = 0.0, layout = "bsd", spec = spec<union(sinks(4), window(left=128, right=0))>} name="attn0"',
        '  %z = MatMul(%y, %w)',
        '  output %y, %z',
        '}',
        '',
      ].join('\n'),
    );
    const back = parseGraph(text);
    expect(printGraph(back)).toBe(text);
    const node = back.nodes[0]!;
    expect(node.inputs[0]).toBe(back.inputs[0]);
    expect(back.inputs[0]!.uses().map((u) => u.index)).toEqual([0, 1, 2]);
    expect(back.nodes[1]!.inputs[0]!.producer).toBe(node);
    expect(back.outputs[1]!.producer).toBe(back.nodes[1]);
  });

  it('round-trips nested subgraphs that use outer values, omitted inputs and multi-output nodes', () => {
    const text = [
      'graph main {',
      '  input %x: f32[*]',
      '  input %c: bool[]',
      '  %a, %b = com.microsoft::Foo(%x, _, %x, _) {then_branch = graph then {',
      '    %t = Identity(%x)',
      '    %u = Neg(%t)',
      '    output %u',
      '  }, else_branches = [graph e0 {',
      '    output %c',
      '  }, graph e1 {',
      '    input %i: i64[?]',
      '    output %i',
      '  }]}',
      '  () = Print(%a)',
      '  output %a, %b',
      '}',
      '',
    ].join('\n');
    expect(roundTrip(text)).toBe(text);
    const g = parseGraph(text);
    const foo = g.nodes[0]!;
    expect(foo.inputs).toHaveLength(4);
    expect(foo.inputs[1]).toBeUndefined();
    expect(foo.domain).toBe('com.microsoft');
    const sub = foo.subgraphs()[0]!;
    expect(sub.nodes[0]!.inputs[0]).toBe(g.inputs[0]);
    expect(g.inputs[0]!.uses().some((u) => u.node === sub.nodes[0])).toBe(true);
    expect(g.nodes[1]!.outputs).toHaveLength(0);
  });

  it('quotes names that are not simple identifiers', () => {
    const g = new Graph('my model');
    const x = g.addInput(new Value('/encoder/layer.0/MatMul_output_0', tensorType('f16', ['batch_size + 1', '?', 'S', 7])));
    const y = new Value('a "quoted" name \u00e9\n');
    g.add({ domain: 'ai.onnx.ml', op: 'weird op', inputs: [x], outputs: [y], attrs: { 'attr name': intAttr(1) }, name: 'n"1' });
    g.outputs.push(y);
    const text = printGraph(g);
    expect(text).toContain('graph "my model" {');
    expect(text).toContain('input %"/encoder/layer.0/MatMul_output_0": f16["batch_size + 1", ?, S, 7]');
    expect(text).toContain('%"a \\"quoted\\" name \u00e9\\n" = ai.onnx.ml::"weird op"(%"/encoder/layer.0/MatMul_output_0") {"attr name" = 1} name="n\\"1"');
    expect(roundTrip(text)).toBe(text);
    const back = parseGraph(text);
    expect(back.nodes[0]!.outputs[0]!.name).toBe('a "quoted" name \u00e9\n');
    expect(back.inputs[0]!.type).toEqual(tensorType('f16', ['batch_size + 1', '?', 'S', 7]));
  });

  it('prints bare names that are identifiers, numbers or dotted', () => {
    const text = 'graph g {\n  input %0: f32[2]\n  input %layer.0: f32[2]\n  %_ = Add(%0, %layer.0)\n  output %_\n}\n';
    expect(roundTrip(text)).toBe(text);
  });

  it('prints every type form', () => {
    const types = ['?', 'f32[*]', 'f32[]', 'string[3]', 'seq<f32[2, N]>', 'opt<seq<i64[*]>>', 'map<i64, f32[*]>', 'sparse<f32[2]>', 'sparse<f8e4m3fn[*]>'];
    for (const t of types) expect(printType(parseTypeText(t))).toBe(t);
    expect(printType(undefined)).toBe('?');
  });
});

describe('attributes', () => {
  const attrText = (text: string) => {
    const g = parseGraph(`graph g {\n  () = Op() {a = ${text}}\n}\n`);
    return g.nodes[0]!.attrs.get('a')!;
  };
  const same = (text: string) => expect(printAttr(attrText(text))).toBe(text);

  it('spells ints, floats and strings distinctly', () => {
    expect(printAttr(intAttr(3))).toBe('3');
    expect(printAttr(intAttr(-(2n ** 63n)))).toBe('-9223372036854775808');
    expect(printAttr(floatAttr(3))).toBe('3.0');
    expect(printAttr(floatAttr(1e-5))).toBe('0.00001');
    expect(printAttr(floatAttr(1e-7))).toBe('1e-7');
    expect(printAttr(floatAttr(NaN))).toBe('nan');
    expect(printAttr(floatAttr(Infinity))).toBe('inf');
    expect(printAttr(floatAttr(-Infinity))).toBe('-inf');
    expect(printAttr(floatAttr(-0))).toBe('-0.0');
    expect(printAttr(stringAttr('a"b'))).toBe('"a\\"b"');
    expect(attrText('3')).toEqual(intAttr(3));
    expect(attrText('3.0')).toEqual(floatAttr(3));
    expect(attrText('1e-05')).toEqual(floatAttr(1e-5));
    expect(Object.is((attrText('-0.0') as { value: number }).value, -0)).toBe(true);
    expect(attrText('-inf')).toEqual(floatAttr(-Infinity));
    expect(attrText('nan')).toEqual(floatAttr(NaN));
    for (const x of [0.1, 1 / 3, 5e-324, Number.MAX_VALUE, -1.7976931348623157e308, 2 ** 60, 123456789.125]) {
      expect(attrText(printAttr(floatAttr(x)))).toEqual(floatAttr(x));
    }
  });

  it('spells lists, with typed empty lists', () => {
    expect(printAttr(intsAttr([1, -2]))).toBe('[1, -2]');
    expect(printAttr(floatsAttr([1, NaN, -0]))).toBe('[1.0, nan, -0.0]');
    expect(printAttr(stringsAttr(['a', '']))).toBe('["a", ""]');
    for (const kind of ['ints', 'floats', 'strings', 'tensors', 'graphs']) {
      same(`${kind}[]`);
      expect(attrText(`${kind}[]`)).toEqual({ type: kind, value: [] });
    }
    same('[1, -2]');
    same('[1.0, nan, -0.0]');
    same('["a", ""]');
    same('[tensor<i64[2]> [9223372036854775807, -1], tensor<bool[2]> [true, false]]');
  });

  it('spells tensors by value where they round-trip and by bytes otherwise', () => {
    const cases: [Tensor, string][] = [
      [Tensor.fromValues('f32', [3], [0.1, -0, NaN]), 'tensor<f32[3]> [0.1, -0.0, nan]'],
      [Tensor.fromValues('f16', [2], [1.5, -Infinity]), 'tensor<f16[2]> [1.5, -inf]'],
      [Tensor.fromValues('bf16', [1], [0.1]), 'tensor<bf16[1]> [0.1]'],
      [Tensor.fromValues('f64', [], [0.1]), 'tensor<f64[]> [0.1]'],
      [Tensor.fromValues('u64', [1], [2n ** 64n - 1n]), 'tensor<u64[1]> [18446744073709551615]'],
      [Tensor.fromValues('i8', [2], [-128, 127]), 'tensor<i8[2]> [-128, 127]'],
      [Tensor.fromBytes('f8e4m3fn', [2], new Uint8Array([0x3c, 0x00])), 'tensor<f8e4m3fn[2]> x"3c00"'],
      [Tensor.fromBytes('i4', [3], new Uint8Array([0xf1, 0x02])), 'tensor<i4[3]> x"f102"'],
      [Tensor.fromBytes('f32', [1], new Uint8Array([1, 0, 0xc0, 0x7f])), 'tensor<f32[1]> x"0100c07f"'],
      [Tensor.fromBytes('f16', [1], new Uint8Array([0x01, 0x7c])), 'tensor<f16[1]> x"017c"'],
      [Tensor.fromBytes('bool', [1], new Uint8Array([2])), 'tensor<bool[1]> x"02"'],
      [Tensor.fromStrings([2], ['a', '\u0000"']), 'tensor<string[2]> ["a", "\\u0000\\""]'],
      [Tensor.fromValues('f32', [0, 3], []), 'tensor<f32[0, 3]> []'],
    ];
    for (const [t, text] of cases) {
      expect(printAttr(tensorAttr(t))).toBe(text);
      const back = attrText(text);
      expect(back.type).toBe('tensor');
      expect((back as { value: Tensor }).value.equals(t)).toBe(true);
    }
  });

  it('spells specs, opaque attributes and graphs', () => {
    same('spec<causal(align=bottom-right)>');
    expect(printAttr(specAttr(causal()))).toBe('spec<causal>');
    same('opaque<"TYPE_PROTO"> x"0a0b"');
    same('opaque<"empty"> x""');
    const g = new Graph('body');
    g.outputs.push(g.addInput(new Value('i')));
    expect(printAttr(graphAttr(g), '  ')).toBe('graph body {\n    input %i\n    output %i\n  }');
  });

  it('keeps attribute order', () => {
    const text = 'graph g {\n  () = Op() {z = 1, a = 2.0, m = "s"}\n}\n';
    expect([...parseGraph(text).nodes[0]!.attrs.keys()]).toEqual(['z', 'a', 'm']);
    expect(roundTrip(text)).toBe(text);
  });
});

describe('parse errors', () => {
  const fails = (text: string, message: RegExp) => expect(() => parseGraph(text)).toThrow(message);

  it('reports an undefined value with its position', () => {
    fails('graph g {\n  %y = Neg(%x)\n}', /^2:12: undefined value %x$/);
  });
  it('reports a value defined twice in one graph', () => {
    fails('graph g {\n  input %x\n  %x = Neg(%x)\n}', /^3:3: value %x is defined twice in graph "g"$/);
    fails('graph g {\n  input %x\n  %y, %y = Split(%x)\n}', /^3:7: value %y is defined twice/);
  });
  it('lets a subgraph shadow an outer name but not use values of a later node', () => {
    expect(() => parseGraph('graph g {\n  input %x\n  () = If(%x) {b = graph b {\n    input %x\n    output %x\n  }}\n}')).not.toThrow();
    fails('graph g {\n  input %x\n  %y = If(%x) {b = graph b {\n    output %y\n  }}\n}', /^4:12: undefined value %y$/);
  });
  it('says what was expected and what was found', () => {
    fails('graph g {\n  %y = (%x)\n}', /^2:8: expected an op name, found '\('$/);
    fails('graph g {\n  input %x: f33[2]\n}', /^2:13: expected a type .*found 'f33'$/);
    fails('graph g {\n  input %x: f32[2\n}', /^3:1: expected '\]', found '\}'$/);
    fails('graph g {\n  foo\n}', /^2:3: expected 'input %x'.*found 'foo'$/);
    fails('graph g {\n', /^2:1: expected .* found end of input$/);
    fails('graph g {\n  input %x\n  output %x\n  input %z\n}', /^4:3: expected '\}' \(output is the last line/);
    fails('graph g {}\nextra', /^2:1: expected end of input, found 'extra'$/);
    fails('graph g { () = Op() {a = []} }', /^1:27: expected a list element \(write an empty list as ints\[\]/);
    fails('graph g { () = Op() {a = [1, 2.0]} }', /^1:30: expected an integer, found '2.0'$/);
    fails('graph g { () = Op() {a = 1, a = 2} }', /^1:29: attribute a is given twice$/);
    fails('graph g { () = Op() {a = "unterminated} }', /^1:26: unterminated string$/);
    fails('graph g { () = Op() {a = @} }', /^1:26: unexpected character "@"$/);
  });
  it('rejects bad tensor literals', () => {
    const attr = (v: string) => `graph g {\n  () = Op() {a = ${v}}\n}`;
    expect(() => parseGraph(attr('tensor<f32[2]> [1.0]'))).toThrow(/^2:18: tensor f32\[2\] needs 2 values, got 1$/);
    expect(() => parseGraph(attr('tensor<i8[1]> [300]'))).toThrow(/^2:33: 300 is out of range for i8$/);
    expect(() => parseGraph(attr('tensor<i4[2]> [1, 2]'))).toThrow(/^2:32: tensor of i4 has no value spelling/);
    expect(() => parseGraph(attr('tensor<f32[1]> x"abc"'))).toThrow(/^2:34: expected an even number of hex digits/);
    expect(() => parseGraph(attr('tensor<f32[1]> x"00"'))).toThrow(/^2:18: tensor f32\[1\] needs 4 bytes, got 1$/);
    expect(() => parseGraph(attr('tensor<f32[B]> [1.0]'))).toThrow(/^2:29: expected a dimension \(an integer >= 0\), found 'B'$/);
  });
  it('rejects bad specs with the position of the term', () => {
    const attr = (v: string) => `graph g {\n  () = Op() {a = spec<${v}>}\n}`;
    expect(() => parseGraph(attr('window(right=2)'))).toThrow(/^2:23: window: missing parameter left$/);
    expect(() => parseGraph(attr('lsh(hashes=1, buckets=3, seed=0)'))).toThrow(/^2:23: invalid attention spec lsh: buckets must be even/);
    expect(() => parseGraph(attr('union(causal, nystrom(landmarks=4))'))).toThrow(/^2:37: union: nystrom is a low-rank form/);
  });
});
