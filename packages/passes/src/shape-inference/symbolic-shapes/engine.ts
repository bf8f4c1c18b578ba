// The shape engine: one forward pass over a whole graph in topological order (subgraphs included, reading the
// enclosing scope), giving every value its symbolic shape, dtype and, for small integer tensors, its values.
// Dims that broadcasting or MatMul require to match are unified: named symbols are recorded as equal and the
// pass reruns with the equalities applied (at most a few times), so every expression uses one representative.
//
// Results are cached per value and reused by every query until the graph changes:
// - a pass's rewrite keeps what every existing value computes (the contract of every pass), so cached values
//   stay true; values the rewrite creates are unknown to the cache and computed on demand from their producers;
// - a cached value whose producer, inputs, declared type or initializer changed since (a change that is not a
//   rewrite) drops the whole cache; `invalidateShapes()` does the same for callers that change a graph otherwise.

import { type Graph, isAttention, type Node, type Value } from '@attnopt/ir';
import { constant, type Expr, fresh, max, symbol } from './expr.js';
import { type Info, MAX_VALUE_ELEMENTS, type RuleContext } from './info.js';
import { attentionRule, COMPUTE_RULES, microsoftRule, SHAPE_KEEPING } from './rules-compute.js';
import { DATA_RULES, type Rule } from './rules-data.js';
import { QUANTIZED_RULES } from './rules-quantized.js';

const RULES: Record<string, Rule> = { ...DATA_RULES, ...COMPUTE_RULES, ...QUANTIZED_RULES };
const MAX_RERUNS = 3;

interface Entry {
  readonly info: Info | undefined;
  readonly producer: Node | undefined;
  readonly inputs: readonly (Value | undefined)[] | undefined;
  readonly type: Value['type'];
  readonly initializer: Value['initializer'];
}

let cache = new WeakMap<Value, Entry>();
let analyzed = new WeakSet<Graph>();
/** The equalities recorded for the graphs analyzed so far (symbol name -> its representative). */
const contexts = new WeakMap<Graph, Equalities>();

/** Drops every cached result (for callers that change what existing values compute). */
export function invalidateShapes(): void {
  cache = new WeakMap();
  analyzed = new WeakSet();
}

class Equalities {
  readonly map = new Map<string, Expr>();
  changed = false;

  /** The representative of a named symbol. */
  symbol(name: string): Expr {
    let e = this.map.get(name);
    for (let guard = 0; e !== undefined && guard < 32; guard++) {
      const s = e.symbol;
      const next = s && !s.fresh ? this.map.get(s.name) : undefined;
      if (next === undefined) break;
      e = next;
    }
    return e ?? symbol(name);
  }

  record(name: string, to: Expr): void {
    if (this.map.get(name) === to) return;
    this.map.set(name, to);
    this.changed = true;
  }
}

function valid(e: Entry, v: Value): boolean {
  if (e.producer !== v.producer || e.type !== v.type || e.initializer !== v.initializer) return false;
  const now = v.producer?.inputs;
  return now === undefined || (e.inputs !== undefined && now.length === e.inputs.length && now.every((x, k) => x === e.inputs![k]));
}

function store(v: Value, info: Info | undefined): void {
  cache.set(v, { info, producer: v.producer, inputs: v.producer ? [...v.producer.inputs] : undefined, type: v.type, initializer: v.initializer });
}

/** What the engine knows of `v` (undefined: nothing). */
export function valueInfo(v: Value | undefined): Info | undefined {
  if (v === undefined) return undefined;
  let e = cache.get(v);
  if (e !== undefined && !valid(e, v)) {
    invalidateShapes();
    e = undefined;
  }
  if (e !== undefined) return e.info;
  // a graph input or initializer knows no graph: the graph of a node reading it
  const g = v.producer ? v.producer.graph : v.uses()[0]?.node.graph;
  if (g !== undefined && !analyzed.has(g)) {
    analyzeGraph(g);
    e = cache.get(v);
    if (e !== undefined) return e.info;
  }
  return computeOnDemand(v, g);
}

/** Runs the forward pass over `g` (a root graph, or a subgraph analyzed by itself) with its recorded equalities. */
export function analyzeGraph(g: Graph): void {
  analyzed.add(g);
  let eqs = contexts.get(g);
  if (!eqs) contexts.set(g, (eqs = new Equalities()));
  for (let run = 0; run <= MAX_RERUNS; run++) {
    eqs.changed = false;
    new Pass(eqs).graph(g, undefined);
    if (!eqs.changed) break;
  }
}

/** A value the cache does not know (created after the pass): computed from its producers, walking back iteratively. */
function computeOnDemand(v: Value, g: Graph | undefined): Info | undefined {
  const eqs = (g && contexts.get(g)) ?? new Equalities();
  const pass = new Pass(eqs);
  const stack: Value[] = [v];
  const seen = new Set<Node>();
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const e = cache.get(top);
    if (e !== undefined && valid(e, top)) {
      stack.pop();
      continue;
    }
    const n = top.producer;
    if (!n) {
      store(top, pass.leaf(top));
      stack.pop();
      continue;
    }
    const missing = n.inputs.filter((x): x is Value => x !== undefined && !(cache.get(x) && valid(cache.get(x)!, x)));
    if (missing.length > 0 && !seen.has(n)) {
      seen.add(n);
      stack.push(...missing);
      continue;
    }
    pass.node(n);
    stack.pop();
  }
  return cache.get(v)?.info;
}

/** One forward pass: rules read inputs from the cache and store outputs in it. */
class Pass implements RuleContext {
  private current: Node | undefined;

  constructor(private readonly eqs: Equalities) {}

  info(v: Value | undefined): Info | undefined {
    if (v === undefined) return undefined;
    const e = cache.get(v);
    if (e !== undefined) return e.info;
    // a value the order did not reach (an outer-scope value, a producer out of order): on demand
    return computeOnDemand(v, v.producer?.graph);
  }

  fresh(nonneg = true): Expr {
    return fresh(nonneg);
  }

  unify(a: Expr, b: Expr): Expr {
    if (a === b) return a;
    if (a.constant !== undefined) return a;
    if (b.constant !== undefined) return b;
    const fa = a.hasFresh;
    const fb = b.hasFresh;
    // a size known only at run time broadcast against a known one is 1 or that one
    if (fa && !fb) return b;
    if (fb && !fa) return a;
    if (!fa && !fb) {
      const [sa, sb] = [a.symbol, b.symbol];
      if (sa && sb) {
        const [keep, drop] = sa.name < sb.name ? [a, sb.name] : [b, sa.name];
        this.eqs.record(drop, keep);
        return keep;
      }
      if (sa && !b.atoms().has(`$${sa.name}`)) {
        this.eqs.record(sa.name, b);
        return b;
      }
      if (sb && !a.atoms().has(`$${sb.name}`)) {
        this.eqs.record(sb.name, a);
        return a;
      }
    }
    // two run-time sizes, or two expressions: equal unless one is 1, which only max covers exactly; two
    // expressions broadcast against each other are taken as equal (as onnxruntime's symbolic inference does),
    // keeping the simpler one, so that nested min / max from sliced buffers do not pile up layer after layer
    if (fa || fb) return max(a, b);
    return a.key.length <= b.key.length ? a : b;
  }

  subgraph(attr: string, inputs?: readonly (Info | undefined)[]): (Info | undefined)[] | undefined {
    const owner = this.current;
    const a = owner?.attrs.get(attr);
    if (a?.type !== 'graph') return undefined;
    try {
      return this.graph(a.value, inputs);
    } finally {
      this.current = owner;
    }
  }

  /** Graph inputs and initializers, then every node in topological order; returns the outputs' info. */
  graph(g: Graph, inputs: readonly (Info | undefined)[] | undefined): (Info | undefined)[] {
    analyzed.add(g);
    g.inputs.forEach((v, k) => store(v, v.initializer ? this.leaf(v) : merge(inputs?.[k], this.declared(v))));
    for (const v of g.initializers) store(v, this.leaf(v));
    for (const n of topologicalOrder(g)) this.node(n);
    return g.outputs.map((v) => this.info(v));
  }

  /** A value with no producer: an initializer, or a graph input by its declared type. */
  leaf(v: Value): Info | undefined {
    const t = v.initializer;
    if (t) {
      const count = t.shape.reduce((a, b) => a * b, 1);
      const value = count <= MAX_VALUE_ELEMENTS && t.dtype !== 'string' ? [...t.toFloat64()].map(constant) : undefined;
      return { shape: t.shape.map(constant), dtype: t.dtype, value };
    }
    return this.declared(v);
  }

  /** The declared type: numbers, named symbols (their representatives), fresh symbols for '?'. */
  private declared(v: Value): Info | undefined {
    const t = v.type;
    if (t?.kind !== 'tensor') return undefined;
    const shape = t.shape?.map((d) => (typeof d === 'number' ? constant(d) : d === '?' ? fresh() : this.eqs.symbol(d)));
    return { shape, dtype: t.dtype };
  }

  node(n: Node): void {
    this.current = n;
    let outs: (Info | undefined)[] | undefined;
    try {
      outs = this.apply(n);
    } catch {
      outs = undefined; // a malformed node (bad attribute, out-of-range axis): nothing is known of its outputs
    }
    this.current = n;
    n.outputs.forEach((v, k) => {
      const declared = this.declared(v);
      store(v, declared ? merge(outs?.[k], declared) : outs?.[k]);
    });
  }

  private apply(n: Node): (Info | undefined)[] | undefined {
    if (isAttention(n)) return attentionRule(n, this);
    if (n.domain === 'com.microsoft') return microsoftRule(n, this) ?? QUANTIZED_RULES[n.op]?.(n, this);
    const rule = n.domain === '' || n.domain === 'ai.onnx' ? RULES[n.op] : SHAPE_KEEPING.has(n.op) ? RULES[n.op] : undefined;
    if (rule) return rule(n, this);
    // an op nothing else is known of: only its element type, where its inputs tell it (most ops keep their
    // first input's)
    const dtype = this.info(n.inputs[n.op === 'OneHot' ? 2 : 0])?.dtype;
    return n.outputs.map(() => ({ dtype }));
  }
}

/**
 * Inferred info refined by a declared type: the declared dtype; per dim the inferred one unless it holds a size
 * only known at run time, where the declared one (a number, or a symbol that names it better) is taken. Some
 * files declare shapes that are not what runs (a transposed present key, a rank too many): what the graph
 * computes wins.
 */
function merge(inferred: Info | undefined, declared: Info | undefined): Info | undefined {
  if (!declared) return inferred;
  if (!inferred) return declared;
  const dtype = declared.dtype ?? inferred.dtype;
  if (!declared.shape) return { ...inferred, dtype };
  if (!inferred.shape) return { shape: declared.shape, dtype, value: undefined };
  if (inferred.shape.length !== declared.shape.length) return { ...inferred, dtype };
  const shape = declared.shape.map((d, k) => {
    const i = inferred.shape![k]!;
    return i.hasFresh && !d.hasFresh ? d : i;
  });
  return { shape, dtype, value: inferred.value };
}

/** Nodes of `g` with every in-graph producer first (rewrites may append nodes out of order). */
function topologicalOrder(g: Graph): Node[] {
  const order: Node[] = [];
  const state = new Map<Node, 1 | 2>(); // 1: on the stack, 2: done
  for (const root of g.nodes) {
    if (state.has(root)) continue;
    const stack: [Node, number][] = [[root, 0]];
    state.set(root, 1);
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      const [n, k] = frame;
      if (k < n.inputs.length) {
        frame[1] = k + 1;
        const p = n.inputs[k]?.producer;
        if (p && p.graph === g && !state.has(p)) {
          state.set(p, 1);
          stack.push([p, 0]);
        }
        continue;
      }
      stack.pop();
      state.set(n, 2);
      order.push(n);
    }
  }
  return order;
}

