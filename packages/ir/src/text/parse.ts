// The parser: reads the text form printed by print.ts back into a Graph built with graph.ts's classes.

import type { Attr } from '../attributes.js';
import { type DType, isDType } from '../dtype.js';
import { Graph, ONNX_DOMAIN, Value } from '../graph.js';
import { type Dim, type Shape, UNKNOWN_DIM } from '../shape.js';
import type { Tensor } from '../tensor.js';
import type { ValueType } from '../types.js';
import { type Token, TokenStream } from './lexer.js';
import { isFloatText, parseFloatText } from './numbers.js';
import { parseSpecTerm } from './spec-text.js';
import { parseHexBytes, parseTensor } from './tensor-text.js';

/** Names visible in one graph: its own definitions, then those of enclosing graphs. */
class Scope {
  private readonly names = new Map<string, Value>();

  constructor(
    readonly graph: Graph,
    private readonly parent: Scope | undefined,
  ) {}

  lookup(name: string): Value | undefined {
    return this.names.get(name) ?? this.parent?.lookup(name);
  }

  /** Fails when `name` is already defined in this graph (an enclosing graph's name may be shadowed). */
  checkFresh(ts: TokenStream, at: Token): void {
    if (this.names.has(at.value)) ts.failAt(at, `value ${at.text} is defined twice in graph "${this.graph.name}"`);
  }

  define(value: Value): void {
    this.names.set(value.name, value);
  }
}

// ---- types ----

function parseDType(ts: TokenStream): DType {
  const t = ts.peek();
  if (t.kind !== 'word' || !isDType(t.text)) ts.fail('a dtype');
  ts.next();
  return t.text as DType;
}

function parseDim(ts: TokenStream): Dim {
  const t = ts.peek();
  if (ts.eat('?')) return UNKNOWN_DIM;
  if (t.kind === 'number' && /^\d+$/.test(t.text) && Number.isSafeInteger(Number(t.text))) {
    ts.next();
    return Number(t.text);
  }
  if (t.kind === 'word' || (t.kind === 'string' && t.value.length > 0)) {
    ts.next();
    return t.value;
  }
  return ts.fail("a dimension (an integer >= 0, a symbol or '?')");
}

/** `[*]` (unknown rank, undefined) or `[d0, d1, ...]`. */
function parseShape(ts: TokenStream): Shape | undefined {
  ts.expect('[');
  if (ts.eat('*')) {
    ts.expect(']');
    return undefined;
  }
  const dims: Dim[] = [];
  while (!ts.at(']')) {
    dims.push(parseDim(ts));
    if (!ts.eat(',')) break;
  }
  ts.expect(']');
  return dims;
}

function parseElemType(ts: TokenStream): ValueType {
  const t = ts.peek();
  const bracketed = <T>(read: () => T): T => {
    ts.next();
    ts.expect('<');
    const out = read();
    ts.expect('>');
    return out;
  };
  if (ts.at('seq')) return bracketed(() => ({ kind: 'sequence', elem: parseElemType(ts) }));
  if (ts.at('opt')) return bracketed(() => ({ kind: 'optional', elem: parseElemType(ts) }));
  if (ts.at('map')) {
    return bracketed(() => {
      const key = parseDType(ts);
      ts.expect(',');
      return { kind: 'map', key, value: parseElemType(ts) };
    });
  }
  const tensorLike = (kind: 'tensor' | 'sparse'): ValueType => {
    const dtype = parseDType(ts);
    const shape = parseShape(ts);
    return shape === undefined ? { kind, dtype } : { kind, dtype, shape };
  };
  if (ts.at('sparse')) return bracketed(() => tensorLike('sparse'));
  if (t.kind === 'word' && isDType(t.text)) return tensorLike('tensor');
  return ts.fail('a type (dtype[shape], seq<...>, opt<...>, map<...>, sparse<...>)');
}

/** A value type, or `?` for an unknown one. */
export function parseType(ts: TokenStream): ValueType | undefined {
  return ts.eat('?') ? undefined : parseElemType(ts);
}

/** Reads the text of a type alone, e.g. `f32[B, "seq len", 512]`. */
export function parseTypeText(text: string): ValueType | undefined {
  const ts = new TokenStream(text);
  const t = parseType(ts);
  ts.expectEnd();
  return t;
}

// ---- attributes ----

const LIST_KINDS = ['ints', 'floats', 'strings', 'tensors', 'graphs'] as const;
type ListKind = (typeof LIST_KINDS)[number];

function listKindOf(ts: TokenStream): ListKind {
  const t = ts.peek();
  if (t.kind === 'number') return isFloatText(t.text) ? 'floats' : 'ints';
  if (t.kind === 'word' && (t.text === 'nan' || t.text === 'inf')) return 'floats';
  if (t.kind === 'string') return 'strings';
  if (ts.at('tensor')) return 'tensors';
  if (ts.at('graph')) return 'graphs';
  return ts.fail('a list element (an integer, float, string, tensor or graph)');
}

function parseInt64(ts: TokenStream): bigint {
  const t = ts.peek();
  if (t.kind !== 'number' || isFloatText(t.text)) ts.fail('an integer');
  ts.next();
  return BigInt(t.text);
}

function parseFloat(ts: TokenStream): number {
  const t = ts.peek();
  const word = t.kind === 'word' && (t.text === 'nan' || t.text === 'inf');
  if (!word && (t.kind !== 'number' || !isFloatText(t.text))) ts.fail('a float (with a point or exponent, nan, inf, -inf)');
  ts.next();
  return parseFloatText(t.text);
}

function parseList(ts: TokenStream, scope: Scope, kind: ListKind | undefined): Attr {
  ts.expect('[');
  if (kind === undefined) kind = ts.at(']') ? ts.fail('a list element (write an empty list as ints[], floats[], ...)') : listKindOf(ts);
  const items: unknown[] = [];
  const readers: Record<ListKind, () => unknown> = {
    ints: () => parseInt64(ts),
    floats: () => parseFloat(ts),
    strings: () => ts.expectKind('string', 'a string').value,
    tensors: () => parseTensor(ts),
    graphs: () => parseGraphAt(ts, scope),
  };
  while (!ts.at(']')) {
    items.push(readers[kind]());
    if (!ts.eat(',')) break;
  }
  ts.expect(']');
  switch (kind) {
    case 'ints':
      return { type: 'ints', value: items as bigint[] };
    case 'floats':
      return { type: 'floats', value: items as number[] };
    case 'strings':
      return { type: 'strings', value: items as string[] };
    case 'tensors':
      return { type: 'tensors', value: items as Tensor[] };
    case 'graphs':
      return { type: 'graphs', value: items as Graph[] };
  }
}

function parseAttrValue(ts: TokenStream, scope: Scope): Attr {
  const t = ts.peek();
  if (t.kind === 'number') {
    return isFloatText(t.text) ? { type: 'float', value: parseFloat(ts) } : { type: 'int', value: parseInt64(ts) };
  }
  if (t.kind === 'string') return { type: 'string', value: ts.next().value };
  if (ts.at('[')) return parseList(ts, scope, undefined);
  if (t.kind === 'word') {
    if (t.text === 'nan' || t.text === 'inf') return { type: 'float', value: parseFloat(ts) };
    if (t.text === 'tensor') return { type: 'tensor', value: parseTensor(ts) };
    if (t.text === 'graph') return { type: 'graph', value: parseGraphAt(ts, scope) };
    if (t.text === 'spec') {
      ts.next();
      ts.expect('<');
      const spec = parseSpecTerm(ts);
      ts.expect('>');
      return { type: 'spec', value: spec };
    }
    if (t.text === 'opaque') {
      ts.next();
      ts.expect('<');
      const kind = ts.expectKind('string', 'the kind of an opaque attribute (a string)').value;
      ts.expect('>');
      return { type: 'opaque', kind, bytes: parseHexBytes(ts).bytes };
    }
    if ((LIST_KINDS as readonly string[]).includes(t.text) && ts.at('[', 1)) {
      ts.next();
      return parseList(ts, scope, t.text as ListKind);
    }
  }
  return ts.fail('an attribute value');
}

/** `{name = value, ...}`, keeping the written order. */
function parseAttrs(ts: TokenStream, scope: Scope): Map<string, Attr> {
  const attrs = new Map<string, Attr>();
  ts.expect('{');
  while (!ts.at('}')) {
    const name = ts.name('an attribute name');
    if (attrs.has(name.value)) ts.failAt(name, `attribute ${name.text} is given twice`);
    ts.expect('=');
    attrs.set(name.value, parseAttrValue(ts, scope));
    if (!ts.eat(',')) break;
  }
  ts.expect('}');
  return attrs;
}

// ---- graphs ----

function resolve(ts: TokenStream, scope: Scope): Value {
  const t = ts.expectKind('value', 'a value (%name)');
  const v = scope.lookup(t.value);
  if (!v) ts.failAt(t, `undefined value ${t.text}`);
  return v;
}

/** `%name` or `%name: type` introducing a new value of this graph. */
function parseDef(ts: TokenStream, scope: Scope, taken: Set<string>): Value {
  const t = ts.expectKind('value', 'a value (%name)');
  scope.checkFresh(ts, t);
  if (taken.has(t.value)) ts.failAt(t, `value ${t.text} is defined twice in graph "${scope.graph.name}"`);
  taken.add(t.value);
  return new Value(t.value, ts.eat(':') ? parseType(ts) : undefined);
}

/** `%a: T, %b = domain::Op(%x, _, %y) {attrs} name="n"`; `() = Op(...)` for a node without outputs. */
function parseNode(ts: TokenStream, scope: Scope): void {
  const outputs: Value[] = [];
  const taken = new Set<string>();
  if (ts.eat('(')) {
    ts.expect(')');
  } else {
    do outputs.push(parseDef(ts, scope, taken));
    while (ts.eat(','));
  }
  ts.expect('=');
  const first = ts.name('an op name');
  let domain = ONNX_DOMAIN;
  let op = first.value;
  if (ts.eat('::')) {
    domain = first.value;
    op = ts.name('an op name after ::').value;
  }
  ts.expect('(');
  const inputs: (Value | undefined)[] = [];
  while (!ts.at(')')) {
    inputs.push(ts.eat('_') ? undefined : resolve(ts, scope));
    if (!ts.eat(',')) break;
  }
  ts.expect(')');
  const attrs = ts.at('{') ? parseAttrs(ts, scope) : new Map<string, Attr>();
  let name = '';
  if (ts.at('name') && ts.at('=', 1)) {
    ts.next();
    ts.next();
    name = ts.expectKind('string', 'a node name (a string)').value;
  }
  scope.graph.add({ domain, op, name, inputs, outputs, attrs });
  outputs.forEach((v) => scope.define(v));
}

/** `graph name { ... }` at the cursor; its values may refer to those of `outer`. */
function parseGraphAt(ts: TokenStream, outer: Scope | undefined): Graph {
  ts.expect('graph');
  const graph = new Graph(ts.name('a graph name').value);
  const scope = new Scope(graph, outer);
  ts.expect('{');
  const declares = (word: string) => ts.at(word) && ts.peek(1).kind === 'value';
  while (!ts.at('}')) {
    if (declares('input')) {
      ts.next();
      const v = parseDef(ts, scope, new Set());
      graph.addInput(v);
      scope.define(v);
    } else if (declares('init')) {
      ts.next();
      const v = parseDef(ts, scope, new Set());
      ts.expect('=');
      v.initializer = parseTensor(ts);
      graph.addInitializer(v);
      scope.define(v);
    } else if (declares('output')) {
      ts.next();
      do graph.outputs.push(resolve(ts, scope));
      while (ts.eat(','));
      if (!ts.at('}')) ts.fail("'}' (output is the last line of a graph)");
    } else if (ts.peek().kind === 'value' || ts.at('(')) {
      parseNode(ts, scope);
    } else {
      ts.fail("'input %x', 'init %x', a node '%y = Op(...)', 'output %y' or '}'");
    }
  }
  ts.expect('}');
  return graph;
}

/** Reads a graph printed by printGraph. Errors say `line:col`, what was expected and what was found. */
export function parseGraph(text: string): Graph {
  const ts = new TokenStream(text);
  const graph = parseGraphAt(ts, undefined);
  ts.expectEnd();
  return graph;
}
