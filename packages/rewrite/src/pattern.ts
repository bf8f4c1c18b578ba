// Patterns written as graph-building code: op('Softmax', [op('Add', [x, mask])]) matches a Softmax whose
// input is an Add of anything (bound to x) and anything (bound to mask). Matching never mutates the graph.

import { type Node, ONNX_DOMAIN, type Value } from '@attnopt/ir';

export type Pattern = VarPattern | OpPattern | OneOfPattern | ThroughPattern | PredicatePattern;

/** Any value; the first occurrence binds it, later occurrences must be the same value. */
export interface VarPattern { readonly kind: 'var'; readonly name: string }

export interface OpPattern {
  readonly kind: 'op';
  readonly domain: string;
  readonly ops: readonly string[];
  readonly inputs: readonly (Pattern | undefined)[];
  /** Two-input ops whose inputs may appear in either order (Add, Mul). */
  readonly commutative: boolean;
  /** Extra inputs beyond `inputs` are allowed (optional trailing inputs not constrained). */
  readonly openInputs: boolean;
  /** Binds the matched node under this name. */
  readonly bindNode?: string;
  /** Which output of the node the value must be (default 0). */
  readonly output: number;
}

/** The first alternative that matches; records which one under `tag`. */
export interface OneOfPattern { readonly kind: 'oneOf'; readonly tag: string; readonly alternatives: readonly Pattern[] }

/** Skips any chain of the given single-input ops (Cast, Identity...) before matching `inner`. */
export interface ThroughPattern { readonly kind: 'through'; readonly ops: readonly string[]; readonly inner: Pattern }

/** Any value that satisfies `test` (e.g. a constant scalar); binds it under `name`. */
export interface PredicatePattern {
  readonly kind: 'predicate';
  readonly name: string;
  readonly what: string;
  readonly test: (value: Value) => boolean;
}

export const v = (name: string): VarPattern => ({ kind: 'var', name });

export interface OpOptions {
  readonly domain?: string;
  readonly commutative?: boolean;
  readonly openInputs?: boolean;
  readonly bindNode?: string;
  readonly output?: number;
}

/** A node of one of `ops` (a name or `A|B`) whose inputs match `inputs` in order. */
export function op(ops: string | readonly string[], inputs: readonly (Pattern | undefined)[], options: OpOptions = {}): OpPattern {
  const names = typeof ops === 'string' ? ops.split('|') : ops;
  return {
    kind: 'op',
    domain: options.domain ?? ONNX_DOMAIN,
    ops: names,
    inputs,
    commutative: options.commutative ?? (names.every((n) => n === 'Add' || n === 'Mul') && inputs.length === 2),
    openInputs: options.openInputs ?? false,
    output: options.output ?? 0,
    ...(options.bindNode !== undefined ? { bindNode: options.bindNode } : {}),
  };
}

export const oneOf = (tag: string, alternatives: readonly Pattern[]): OneOfPattern => ({ kind: 'oneOf', tag, alternatives });

export const through = (ops: readonly string[], inner: Pattern): ThroughPattern => ({ kind: 'through', ops, inner });

export const where = (name: string, what: string, test: (value: Value) => boolean): PredicatePattern => ({
  kind: 'predicate',
  name,
  what,
  test,
});

/** What a successful match binds. */
export interface Bindings {
  readonly values: ReadonlyMap<string, Value>;
  readonly nodes: ReadonlyMap<string, Node>;
  /** For each oneOf: the index of the alternative that matched. */
  readonly tags: ReadonlyMap<string, number>;
  /** Every node the pattern's op and through steps matched, in no particular order. */
  readonly matchedNodes: readonly Node[];
}

interface State {
  values: Map<string, Value>;
  nodes: Map<string, Node>;
  tags: Map<string, number>;
  matched: Node[];
}

const clone = (s: State): State => ({
  values: new Map(s.values),
  nodes: new Map(s.nodes),
  tags: new Map(s.tags),
  matched: [...s.matched],
});

/** Every way `value` matches `pattern` from `state`, lazily (backtracking over alternatives and orders). */
function* matchValue(pattern: Pattern, value: Value | undefined, state: State): Generator<State> {
  if (value === undefined) return;
  switch (pattern.kind) {
    case 'var': {
      const bound = state.values.get(pattern.name);
      if (bound === undefined) {
        const next = clone(state);
        next.values.set(pattern.name, value);
        yield next;
      } else if (bound === value) {
        yield state;
      }
      return;
    }
    case 'predicate': {
      if (!pattern.test(value)) return;
      const bound = state.values.get(pattern.name);
      if (bound !== undefined && bound !== value) return;
      const next = clone(state);
      next.values.set(pattern.name, value);
      yield next;
      return;
    }
    case 'oneOf':
      for (let k = 0; k < pattern.alternatives.length; k++) {
        for (const s of matchValue(pattern.alternatives[k]!, value, state)) {
          const next = clone(s);
          next.tags.set(pattern.tag, k);
          yield next;
        }
      }
      return;
    case 'through': {
      let cur: Value | undefined = value;
      const skipped: Node[] = [];
      for (;;) {
        const s0 = clone(state);
        s0.matched.push(...skipped);
        yield* matchValue(pattern.inner, cur, s0);
        const p: Node | undefined = cur?.producer;
        if (!p || p.domain !== ONNX_DOMAIN || !pattern.ops.includes(p.op) || skipped.includes(p)) return;
        skipped.push(p);
        cur = p.inputs[0];
      }
    }
    case 'op': {
      const node = value.producer;
      if (!node || node.domain !== pattern.domain || !pattern.ops.includes(node.op)) return;
      if (value.outputIndex !== pattern.output) return;
      if (!pattern.openInputs && node.inputs.length > pattern.inputs.length) return;
      const bound = pattern.bindNode === undefined ? undefined : state.nodes.get(pattern.bindNode);
      if (bound !== undefined && bound !== node) return;
      const start = clone(state);
      if (pattern.bindNode !== undefined) start.nodes.set(pattern.bindNode, node);
      if (!start.matched.includes(node)) start.matched.push(node);
      const orders = pattern.commutative ? [[0, 1], [1, 0]] : [pattern.inputs.map((_, k) => k)];
      for (const order of orders) {
        yield* matchInputs(pattern, node, order, 0, start);
      }
    }
  }
}

function* matchInputs(pattern: OpPattern, node: Node, order: readonly number[], k: number, state: State): Generator<State> {
  if (k === pattern.inputs.length) {
    yield state;
    return;
  }
  const sub = pattern.inputs[k];
  const input = node.inputs[order[k]!];
  if (sub === undefined) {
    // `undefined` in a pattern: the input must be absent
    if (input === undefined) yield* matchInputs(pattern, node, order, k + 1, state);
    return;
  }
  for (const s of matchValue(sub, input, state)) yield* matchInputs(pattern, node, order, k + 1, s);
}

/** The first way `value` matches `pattern`, or undefined. */
export function matchPattern(pattern: Pattern, value: Value): Bindings | undefined {
  for (const s of matchValue(pattern, value, { values: new Map(), nodes: new Map(), tags: new Map(), matched: [] })) {
    return { values: s.values, nodes: s.nodes, tags: s.tags, matchedNodes: s.matched };
  }
  return undefined;
}

/** Every way `value` matches `pattern` (for rules whose check picks among several). */
export function* matchAll(pattern: Pattern, value: Value): Generator<Bindings> {
  for (const s of matchValue(pattern, value, { values: new Map(), nodes: new Map(), tags: new Map(), matched: [] })) {
    yield { values: s.values, nodes: s.nodes, tags: s.tags, matchedNodes: s.matched };
  }
}
