// A site split into head groups that takes cached keys -> If(new queries < a few, the site's exact dense form, the groups).
// Each group routed on its own (decode-route.ts) still leaves a decode step the Slices of the whole cache for every
// group, one dense form per group and the Concats: 1.9x the site's dense form at 4096 keys (8 heads of 64, two
// groups; tools/bench/decode-step.ts), 1.07x with this route. One If around the whole split sends such a call to one
// dense form of every head, or to the exporter's own fused node. It needs every group to compute the site's function on that branch: a
// guarded group (its baseline is the site's spec) or a group that keeps the site's spec. The If's query count is the
// smallest of the groups' own; a group whose own count is larger keeps its route inside the split's branch.

import { type AttentionParams, attentionAttrs, attentionParams, Graph, isAttention, Node, ONNX_DOMAIN, specEquals, Value } from '@attnopt/ir';
import { HEAD_GROUP, type HeadSplit, headSplitOf } from '../sparsify/split-heads.js';
import { cannotLower, decodeRouteQueries, type LowerOptions, lowerAttention } from './attention.js';
import { type OwnNode, ownBranch, ownNodeOf, placeDecodeRoute, querySeqAxis } from './decode-route.js';

/** A split site the route wraps whole. */
export interface SplitRoute {
  readonly split: HeadSplit;
  /** The group Attention nodes, each with its own route's query count (undefined: none). */
  readonly groups: readonly { readonly node: Node; readonly queries: number | undefined }[];
  /** Every node the split placed (Slices and their Constants, the groups, the Concats), in graph order. */
  readonly region: readonly Node[];
  /** Calls with fewer new queries than this take the site's exact dense form. */
  readonly queries: number;
  /** The exporter's fused node the site was lifted from, when the lift still stands. */
  readonly own: OwnNode | undefined;
  /** The node the route goes after: the last that computes what the split reads (undefined: the graph's start). */
  readonly anchor: Node | undefined;
}

const defined = <T>(v: T | undefined): v is T => v !== undefined;

/** The options of the site's exact dense form (the exporter's node aside): dense, standard ops, no route. */
function denseOptions(options: LowerOptions): LowerOptions {
  const { native: _native, ...plain } = options;
  return { ...plain, decodeQueries: 0, strategy: 'dense' };
}

/**
 * The nodes between the split's inputs and its outputs, or undefined where they are not only the split's own (a
 * Slice, Concat or Constant of the ONNX domain, or one of `groups`) or something outside reads what they compute
 * (a later rewrite shared them): then the groups take their own routes.
 */
function splitRegion(graph: Graph, split: HeadSplit, groups: readonly Node[]): Node[] | undefined {
  const inputs = new Set(split.inputs.filter(defined));
  const region = new Set<Node>();
  const todo = split.outputs.filter(defined);
  for (let v = todo.pop(); v !== undefined; v = todo.pop()) {
    if (inputs.has(v)) continue;
    const p = v.producer;
    if (p === undefined) {
      if (v.initializer !== undefined) continue;
      return undefined; // a graph input the site did not read
    }
    if (p.graph !== graph) return undefined;
    if (region.has(p)) continue;
    const own = isAttention(p) ? groups.includes(p) : p.domain === ONNX_DOMAIN && ['Slice', 'Concat', 'Constant'].includes(p.op);
    if (!own) return undefined;
    region.add(p);
    todo.push(...p.inputs.filter(defined));
  }
  if (!groups.every((g) => region.has(g))) return undefined;
  const outputs = new Set(split.outputs.filter(defined));
  for (const n of region) {
    for (const o of n.outputs) {
      if (outputs.has(o)) continue;
      if (graph.outputs.includes(o) || o.uses().some((u) => !region.has(u.node))) return undefined;
    }
  }
  return graph.nodes.filter((n) => region.has(n));
}

/**
 * Where the If can stand in `graph`: after the last node that computes a value the region reads, before the first
 * that reads one of its outputs. Null where no place is (the outputs read before an input is computed, or read
 * inside another node's subgraph); undefined: at the graph's start.
 */
function routeAnchor(graph: Graph, region: readonly Node[], outputs: readonly Value[]): Node | undefined | null {
  const inside = new Set(region);
  const order = new Map(graph.nodes.map((n, k) => [n, k]));
  const producers = region.flatMap((n) => n.inputs.filter(defined).flatMap((v) => (v.producer !== undefined && !inside.has(v.producer) ? [v.producer] : [])));
  if (producers.some((p) => !order.has(p))) return null;
  const readers = outputs.flatMap((v) => v.uses().map((u) => u.node));
  if (readers.some((r) => !order.has(r))) return null;
  const last = producers.reduce<Node | undefined>((a, p) => (a === undefined || order.get(p)! > order.get(a)! ? p : a), undefined);
  const first = Math.min(graph.nodes.length, ...readers.map((r) => order.get(r)!));
  return last !== undefined && order.get(last)! >= first ? null : last;
}

/** The site's node again, on its inputs, with `outputs` by slot: the exact branch's Attention before lowering. */
function siteCopy(split: HeadSplit, name: string, outputs: readonly Value[]): Node {
  const site = split.site;
  const { guard: _guard, ...params } = attentionParams(site);
  const copy = new Node({ domain: site.domain, op: site.op, name, inputs: split.inputs, outputs, attrs: attentionAttrs(params) });
  for (const [k, v] of site.annotations) if (k !== HEAD_GROUP) copy.annotations.set(k, v);
  return copy;
}

/** The route for the split `node` (one of its groups) belongs to, or undefined where its groups route themselves. */
export function splitDecodeRoute(graph: Graph, node: Node, options: LowerOptions): SplitRoute | undefined {
  const split = headSplitOf(node);
  if (split === undefined) return undefined;
  const groupNodes = graph.nodes.filter((n) => isAttention(n) && headSplitOf(n) === split);
  const site: AttentionParams = attentionParams(split.site);
  // every group computes the site's function on the dense branch
  for (const g of groupNodes) {
    if (cannotLower(g, options) !== undefined) return undefined;
    const p = attentionParams(g);
    if (!specEquals(p.guard?.baseline ?? p.spec, site.spec)) return undefined;
  }
  const groups = groupNodes.map((g) => ({ node: g, queries: decodeRouteQueries(g, options) }));
  const counts = groups.map((g) => g.queries).filter(defined);
  if (groupNodes.length < 2 || counts.length === 0) return undefined;
  const region = splitRegion(graph, split, groupNodes);
  if (region === undefined) return undefined;
  const anchor = routeAnchor(graph, region, split.outputs.filter(defined));
  if (anchor === null) return undefined;
  const own = ownNodeOf(graph, split.site, split.inputs, split.replaced);
  if (own === undefined) {
    const copy = new Graph('scratch').addNode(siteCopy(split, 'scratch', []));
    const why = cannotLower(copy, denseOptions(options));
    copy.dropInputs(); // the scratch copy leaves no use on the site's inputs
    if (why !== undefined) return undefined;
  }
  return { split, groups, region, queries: Math.min(...counts), own, anchor };
}

/** Moves `node` from its graph into `to`, its inputs and outputs as they are. */
function moveNode(node: Node, to: Graph): void {
  const from = node.graph!;
  from.nodes.splice(from.nodes.indexOf(node), 1);
  node.graph = undefined;
  to.addNode(node);
}

/** Replaces the split's nodes by the If of the comment at the top; returns the nodes placed. */
export function lowerSplitWithDecodeRoute(graph: Graph, route: SplitRoute, options: LowerOptions): Node[] {
  const { split, region, queries } = route;
  const site = split.site;
  // as lowerAttention names a site: its node's name, else its first output's (the Concat carries that name now)
  const base = site.name || `${split.outputs.find(defined)!.name}_attention`;
  const sparse = new Graph(`${base}/sparse`);
  for (const n of region) moveNode(n, sparse);
  const at = route.anchor === undefined ? 0 : graph.nodes.indexOf(route.anchor) + 1;
  for (const g of route.groups) lowerAttention(sparse, g.node, g.queries !== undefined && g.queries > queries ? options : { ...options, decodeQueries: 0 });
  const replaced = split.outputs.filter(defined);
  sparse.outputs.push(...replaced);
  let exact: Graph;
  if (route.own) exact = ownBranch(`${base}/exact`, route.own);
  else {
    exact = new Graph(`${base}/exact`);
    // the site's outputs up to the last one read (a scores output no one reads is not computed)
    const slots = split.outputs.reduce((last, o, s) => (o === undefined ? last : s + 1), 0);
    const outs = site.outputs.slice(0, slots).map((o, s) => new Value(`${base}/exact/${split.outputs[s]?.name ?? `output${s}`}`, o.type));
    const copy = exact.addNode(siteCopy(split, `${base}/exact`, outs));
    exact.outputs.push(...split.outputs.flatMap((o, s) => (o === undefined ? [] : [outs[s]!])));
    lowerAttention(exact, copy, denseOptions(options));
  }
  const names = replaced.map((v) => v.name);
  const placed = placeDecodeRoute(graph, base, split.inputs[0]!, querySeqAxis(attentionParams(site)), queries, exact, sparse, replaced, at);
  // the split's outputs stay as the sparse branch's, under names of that branch
  replaced.forEach((v, k) => (v.name = `${sparse.name}/${names[k]}`));
  return placed;
}
