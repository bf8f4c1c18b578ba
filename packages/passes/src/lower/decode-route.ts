// A sparse site that takes cached keys -> If(new queries < a few, the site's exact dense form, its sparse form).
// A decode step (a few queries over the whole cache) reads every key once in the dense form; a block-sparse form's
// blocks and a certificate's key summaries cost more than that there (BENCHMARKS, "One decode step of a rewritten
// site": guarded 6.7x and banded 1.5x dense at 4096 keys). The If sends such calls to the dense form, which computes
// the site's function exactly: the site's own spec for an unguarded form, its baseline for a guarded one (what its
// fallback rows compute), so every guarantee holds on both branches. Where the site was lifted from one fused node
// of the exporter (a GroupQueryAttention...) that computes that function, the dense branch is that node itself. A guarded site's fallback flags leave the If as
// an output of the same name; the dense branch gives none ([0, 0, 0]: no row certified, none recomputed).

import { type AttentionParams, attentionAttrs, attentionParams, Graph, graphAttr, Node, Tensor, tensorAttr, Value } from '@attnopt/ir';
import { NodeBuilder, redirect } from '@attnopt/rewrite';
import { LIFT_RECORD, type LiftRecord } from '../recognize/lift.js';
import { unliftBlocker } from '../recognize/unlift.js';
import { SPARSIFY_DECISION } from '../sparsify/pass.js';
import { GUARD_FALLBACK_VALUE } from './guarded-certificate.js';
import { guardFallbackLabel } from './guarded.js';

/**
 * The default query counts below which a routed site runs its dense form. A guarded form: its guard's key block (64).
 * Its certificate reads the whole cache on every call (the key block summaries and V's range: several passes over T
 * keys), where the dense form reads it once: below one key block of queries the dense form is the cheaper one
 * (tools/bench/decode-step.ts at 4096 keys: the guarded form 6.5x dense at 1 query, 2.9x at 16, 1.8x at 64 with
 * every row falling back). An unguarded banded form: 8, below which it is mostly overhead: 1.5x-2.2x dense at 1
 * query, 1.1x-2.0x at 4, 0.8x at 8 (4096 keys, 8 heads of 64), 1.3x at 16 (1024 keys, 2 heads of 16).
 */
export const DECODE_ROUTE_BANDED_QUERIES = 8;

/**
 * The query count below which a form lowered with `strategy` runs its exact dense form, or undefined where the route
 * leaves it alone: a guarded form (`guardBlock` its key block; any sparse lowering, and the guarded LSH form whatever
 * its plan) below its key block, an unguarded banded one below DECODE_ROUTE_BANDED_QUERIES. Dense forms, and unguarded
 * block-sparse, LSH and low-rank ones (whose dense lowering is not the same function), take no route.
 */
export function decodeRouteThreshold(strategy: string, guardBlock: number | undefined, guardedLsh = false): number | undefined {
  if (guardBlock !== undefined) return strategy !== 'dense' || guardedLsh ? guardBlock : undefined;
  return strategy === 'banded' ? DECODE_ROUTE_BANDED_QUERIES : undefined;
}

/** The nodes the route adds to a call (Shape, Gather, Less, If), for the cost model's per-node overhead. */
export const DECODE_ROUTE_NODES = 4;

/**
 * What the If's branch adds beyond those nodes in onnxruntime (its own execution frame): 4-22 µs, about 10, per
 * call in tools/bench/decode-step.ts (the routed forms against the dense one at 1 to 16 queries, 2 threads).
 */
export const DECODE_ROUTE_BRANCH_SECONDS = 10e-6;

/** What the route needs from the lowering: its query count, and how to lower one node. */
export interface DecodeRoute {
  /** Calls with fewer new queries than this take the dense form. */
  readonly queries: number;
  /** Lowers `node` in `graph` (dense: the exact form), as lowerAttention does, without a route of its own. */
  readonly lower: (graph: Graph, node: Node, dense: boolean) => void;
}

/**
 * The attributes of the exact dense form of a site: its spec without the guard (an unguarded form computes its own
 * spec), the baseline for a guarded site.
 */
function exactParams(p: AttentionParams): AttentionParams {
  if (p.guard === undefined) return p;
  const { guard, ...rest } = p;
  return { ...rest, spec: guard.baseline };
}

/** The prefix of the names the route gives (lowerAttention's for the site). */
const siteBase = (node: Node): string => node.name || `${node.outputs[0]!.name}_attention`;

/** One branch: a copy of `node` reading the outer values, lowered, its outputs the branch's outputs. */
function branch(node: Node, name: string, params: AttentionParams, lower: (g: Graph, n: Node) => void): Graph {
  const base = siteBase(node);
  const g = new Graph(`${base}/${name}`);
  const outs = node.outputs.map((o) => new Value(`${base}/${name}/${o.name}`, o.type));
  const copy = new Node({ domain: node.domain, op: node.op, name: `${base}/${name}`, inputs: node.inputs, outputs: outs, attrs: attentionAttrs(params) });
  for (const [k, v] of node.annotations) copy.annotations.set(k, v);
  g.addNode(copy);
  g.outputs.push(...outs);
  lower(g, copy);
  return g;
}

const PROJECTIONS = new Set(['MatMul', 'Gemm', 'Einsum', 'MatMulInteger', 'QLinearMatMul']);

/** The exporter's fused node a site was lifted from, with its inputs and, per site output, which of its outputs. */
export interface OwnNode {
  readonly node: Node;
  readonly inputs: readonly (Value | undefined)[];
  /** Per site output slot read: the node's output index (-1 for a slot no one reads). */
  readonly outputs: readonly number[];
}

/**
 * The exporter's own node of a site lifted from one fused node (com.microsoft GroupQueryAttention or
 * MultiHeadAttention, ONNX Attention): `record` is the site's lift record, `inputs` the site's inputs, `outputs` the
 * values it computes by slot (undefined: not read), `site` its Attention node. The lift must still stand: the nodes
 * it added (but the site's node) in `graph`, the inputs as lifted, every read output one of the node's outputs, every
 * input the node read still defined, and no projection added (com.microsoft Attention's packed weights: it runs
 * before the If either way, and the node would compute it again inside the branch). Undefined otherwise.
 */
export function ownNodeOf(graph: Graph, site: Node, inputs: readonly (Value | undefined)[], outputs: readonly (Value | undefined)[]): OwnNode | undefined {
  const record = site.annotations.get(LIFT_RECORD) as LiftRecord | undefined;
  if (record === undefined || record.matched.length !== 1 || record.matched[0]!.node.graph !== undefined) return undefined;
  if (record.added.some((n) => n !== site && n.graph !== graph) || record.added.some((n) => PROJECTIONS.has(n.op))) return undefined;
  if (record.attentionInputs.length !== inputs.length || record.attentionInputs.some((v, k) => inputs[k] !== v)) return undefined;
  const own = record.matched[0]!;
  const slots = outputs.map((o) => {
    if (o === undefined) return -1;
    const replaced = record.replaced[record.fresh.indexOf(o)];
    return replaced !== undefined && own.node.outputs[replaced.outputIndex] === replaced ? replaced.outputIndex : undefined;
  });
  if (slots.some((k) => k === undefined) || slots.every((k) => k === -1)) return undefined;
  const defined = (v: Value | undefined) => v === undefined || v.initializer !== undefined || graph.inputs.includes(v) || v.producer?.graph !== undefined;
  if (!own.inputs.every(defined)) return undefined;
  return { node: own.node, inputs: own.inputs, outputs: slots as number[] };
}

/**
 * ownNodeOf for a site still in the graph whose exact branch computes what the exporter's node did (a guarded site's
 * baseline, or an exact rewrite) and whose lift is intact (unliftBlocker).
 */
function ownNode(graph: Graph, node: Node, p: AttentionParams): OwnNode | undefined {
  const decision = node.annotations.get(SPARSIFY_DECISION) as { readonly guarantee?: string | null } | undefined;
  if (p.guard === undefined && decision !== undefined && decision.guarantee !== 'exact') return undefined;
  if (unliftBlocker(node) !== undefined) return undefined;
  return ownNodeOf(graph, node, node.inputs, node.outputs);
}

/** The exact branch as the exporter's own node: a copy of it on its inputs, its outputs the site's read ones. */
export function ownBranch(name: string, own: OwnNode): Graph {
  const g = new Graph(name);
  const outs = own.node.outputs.map((o) => new Value(`${name}/${o.name}`, o.type));
  g.addNode(new Node({ domain: own.node.domain, op: own.node.op, name, inputs: own.inputs, outputs: outs, attrs: own.node.attrs }));
  g.outputs.push(...own.outputs.filter((k) => k >= 0).map((k) => outs[k]!));
  return g;
}

/** The fallback flags a lowered branch computes (`.../guard_falls_back[.label]`), in the order its nodes make them. */
function fallbackFlags(g: Graph): Value[] {
  return g.nodes.flatMap((n) => n.outputs).filter((v) => v.name.endsWith(`/${GUARD_FALLBACK_VALUE}`) || guardFallbackLabel(v.name) !== undefined);
}

/**
 * Puts If(new queries < `queries`, exact, sparse) into `graph` at index `at`: the branches' outputs take the uses and
 * names of `replaced`, in order, and the sparse branch's fallback flags leave the If under the names the lowering
 * gives them (`<base>/guard_falls_back[.label]`; the exact branch gives none). `q` is the site's query input and
 * `seqAxis` its sequence axis. Returns the nodes placed.
 */
export function placeDecodeRoute(graph: Graph, base: string, q: Value, seqAxis: number, queries: number, exact: Graph, sparse: Graph, replaced: readonly Value[], at: number): Node[] {
  const b = new NodeBuilder(graph, `${base}/decode_route`);
  const flagsOut = fallbackFlags(sparse).map((f) => {
    const last = f.name.slice(f.name.lastIndexOf('/') + 1); // guard_falls_back[.label]
    sparse.outputs.push(f);
    const none = new Value(`${exact.name}/${last}`, { kind: 'tensor', dtype: 'bool', shape: [0, 0, 0] });
    exact.addNode(new Node({ op: 'Constant', name: none.name, outputs: [none], attrs: { value: tensorAttr(Tensor.fromValues('bool', [0, 0, 0], [])) } }));
    exact.outputs.push(none);
    return new Value(`${base}/${last}`, { kind: 'tensor', dtype: 'bool' });
  });
  const nq = b.op('Gather', [b.op('Shape', [q], 'q_shape'), b.scalar('seq_axis', 'i64', seqAxis)], 'nq', { axis: { type: 'int', value: 0n } });
  const few = b.op('Less', [nq, b.scalar('queries', 'i64', queries)], 'few_queries');
  const outs = [...replaced.map((o) => new Value(`${base}/decode_route/${o.name}`, o.type)), ...flagsOut];
  const ifNode = new Node({ op: 'If', name: `${base}/decode_route`, inputs: [few], outputs: outs, attrs: { then_branch: graphAttr(exact), else_branch: graphAttr(sparse) } });
  b.nodes.push(ifNode);
  b.nodes.forEach((n, k) => graph.addNode(n, at + k));
  const flagNames = flagsOut.map((v) => v.name);
  replaced.forEach((old, k) => redirect(graph, old, outs[k]!));
  flagsOut.forEach((v, k) => (v.name = flagNames[k]!));
  return b.nodes;
}

/** The query input's sequence axis: 1 in bsd, bshd and packed-qkv, 2 in bhsd. */
export const querySeqAxis = (p: AttentionParams): number => (p.layout === 'bhsd' ? 2 : 1);

/** Replaces `node` (an Attention site with cached keys) by the If above; returns the nodes placed. */
export function lowerWithDecodeRoute(graph: Graph, node: Node, route: DecodeRoute): Node[] {
  const p = attentionParams(node);
  const base = siteBase(node);
  const sparse = branch(node, 'sparse', p, (g, n) => route.lower(g, n, false));
  const own = ownNode(graph, node, p);
  const exact = own ? ownBranch(`${base}/exact`, own) : branch(node, 'exact', exactParams(p), (g, n) => route.lower(g, n, true));
  const placed = placeDecodeRoute(graph, base, node.inputs[0]!, querySeqAxis(p), route.queries, exact, sparse, node.outputs, graph.nodes.indexOf(node));
  graph.removeNode(node);
  return placed;
}
