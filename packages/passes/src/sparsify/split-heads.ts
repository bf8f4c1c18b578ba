// Splitting an Attention site into head groups, each its own Attention with its own spec:
//   Attention(Q, K, V, bias, past, spec=S) -> Concat_heads(Attention(Slice_g(Q), Slice_g(K), Slice_g(V), ..., spec=S_g) for g)
// Q, K, V (and a per-head bias, past K/V) are sliced along the head axis of the site's layout; a group takes
// whole key/value heads with their query heads (GQA), so each group is a well-formed Attention; a bias without
// a head axis (or of one head) and kvLength are shared. Y, present K/V and the scores output are concatenated
// back in head order, under their old names. packed-qkv groups read bsd Q, K, V (packed Y is bsd already).

import {
  type AttentionParams,
  attentionNode,
  AttentionOutput,
  type Dim,
  type Graph,
  intAttr,
  type Node,
  type Value,
  type ValueType,
} from '@attnopt/ir';
import { baseName, liveOutputs, NodeBuilder, redirect } from '@attnopt/rewrite';
import { staticShape } from '../shape-inference/shapes.js';
import type { HeadGroup } from './head-groups.js';
import { RELATIVE_BIAS, type RelativeBias } from '../mask-analysis/relative-bias.js';

/** Annotation key on a group's Attention node: the site it came from and its heads. */
export const HEAD_GROUP = 'attnopt.headGroup';

export interface HeadGroupAnnotation {
  readonly site: string;
  readonly heads: readonly number[];
  readonly kvHeads: readonly number[];
  /** The split the group came from, one object shared by the site's groups (the lowering's decode route reads it). */
  readonly split?: HeadSplit;
}

/** What a split replaced: the site's node as it was, and where its outputs went. */
export interface HeadSplit {
  /** The site's Attention node before the split, out of the graph: its attributes and annotations (lift record). */
  readonly site: Node;
  /** Its inputs (the node lost them when it left the graph). */
  readonly inputs: readonly (Value | undefined)[];
  /** By output slot: the value the node computed, where read (the lift record knows these), else undefined. */
  readonly replaced: readonly (Value | undefined)[];
  /** By output slot: the value that carries it now (the Concat of the groups' outputs), else undefined. */
  readonly outputs: readonly (Value | undefined)[];
}

/** The split a head group's node came from, or undefined for a node no split made. */
export const headSplitOf = (node: Node): HeadSplit | undefined => (node.annotations.get(HEAD_GROUP) as HeadGroupAnnotation | undefined)?.split;

/** How the bias splits: absent, shared by every head (no head axis or one head), or sliced along `axis`. */
type BiasSplit = { kind: 'none' } | { kind: 'shared' } | { kind: 'sliced'; axis: number };

function biasSplit(node: Node, params: AttentionParams): BiasSplit | string {
  const bias = node.inputs[3];
  if (bias === undefined) return { kind: 'none' };
  const shape = staticShape(bias);
  if (shape === undefined) return `the bias ${bias.name} has no known shape, so its head axis is unknown`;
  // broadcast right-aligned to [batch, heads, nq, nk]: the head axis is the third from the end
  const axis = shape.length - 3;
  if (axis < 0 || shape[axis] === 1) return { kind: 'shared' };
  if (shape[axis] === params.numHeads) return { kind: 'sliced', axis };
  return `the bias ${bias.name} has ${String(shape[axis])} on its head axis (${params.numHeads} heads)`;
}

/** Why `node` cannot be split into head groups, or undefined when it can. */
export function headSplitBlocker(node: Node, params: AttentionParams): string | undefined {
  if (node.graph === undefined) return `${node.describe()} is not in a graph`;
  if (params.kvNumHeads < 2) return `one key/value head serves every query head (kvNumHeads ${params.kvNumHeads}): no whole key/value heads to split by`;
  const b = biasSplit(node, params);
  return typeof b === 'string' ? b : undefined;
}

/** `t` with dim `axis` set to `size` (shape kept when known; the type left out when unknown). */
function withDim(t: ValueType | undefined, axis: number, size: number): ValueType | undefined {
  if (t?.kind !== 'tensor') return undefined;
  if (t.shape === undefined || t.shape.length <= axis) return { kind: 'tensor', dtype: t.dtype };
  const shape: Dim[] = [...t.shape];
  shape[axis] = size;
  return { kind: 'tensor', dtype: t.dtype, shape };
}

/**
 * Rewrites `node` (id `site`) into one Attention per group (see the comment at the top); returns the group
 * nodes in head order. The groups must cover the heads in order, each whole key/value heads.
 */
export function splitHeads(node: Node, params: AttentionParams, groups: readonly HeadGroup[], site: string): Node[] {
  const where = node.describe();
  const blocker = headSplitBlocker(node, params);
  if (blocker !== undefined) throw new Error(`${where}: cannot split into head groups: ${blocker}`);
  const graph = node.graph as Graph;
  const { layout, numHeads: H, kvNumHeads: Hk, headDim: D, vHeadDim: Dv } = params;
  const g = H / Hk;
  let next = 0;
  for (const x of groups) {
    const ok =
      x.heads.length > 0 &&
      x.heads.every((h, i) => h === next + i) &&
      x.kvHeads.length * g === x.heads.length &&
      x.kvHeads.every((kv, i) => kv === next / g + i);
    if (!ok) throw new Error(`${where}: head group [${x.heads.join(', ')}] / kv [${x.kvHeads.join(', ')}] is not whole key/value heads in order from head ${next}`);
    next += x.heads.length;
  }
  if (next !== H) throw new Error(`${where}: head groups cover ${next} of ${H} heads`);

  const [q, k, v, bias, pastKey, pastValue, kvLength] = node.inputs;
  const split = biasSplit(node, params) as BiasSplit;
  const b = new NodeBuilder(graph, baseName(node));
  const slice = (x: Value, axis: number, start: number, end: number, what: string, size = end - start): Value =>
    b.op('Slice', [x, b.ints(`${what}_start`, [start]), b.ints(`${what}_end`, [end]), b.ints(`${what}_axis`, [axis])], what, {}, withDim(x.type, axis, size));
  const live = liveOutputs(graph, node);
  const slots = live.reduce((last, v, s) => (v ? s + 1 : last), 0);
  const headAxis = layout === 'bhsd' ? 1 : 2;
  const outAxis = [headAxis, 1, 1, 1]; // y, present key, present value, scores
  const parts: Value[][] = Array.from({ length: slots }, () => []);
  const outputs: (Value | undefined)[] = live.map(() => undefined);
  const record: HeadSplit = { site: node, inputs: [...node.inputs], replaced: live, outputs };

  const nodes = groups.map((x) => {
    const [h0, h1] = [x.heads[0]!, x.heads[x.heads.length - 1]! + 1];
    const [k0, k1] = [x.kvHeads[0]!, x.kvHeads[x.kvHeads.length - 1]! + 1];
    const tag = `heads${h0}_${h1 - 1}`;
    let gq: Value, gk: Value, gv: Value;
    if (layout === 'packed-qkv') {
      gq = slice(q!, 2, h0 * D, h1 * D, `${tag}_q`);
      gk = slice(q!, 2, (H + k0) * D, (H + k1) * D, `${tag}_k`);
      gv = slice(q!, 2, (H + Hk) * D + k0 * Dv, (H + Hk) * D + k1 * Dv, `${tag}_v`);
    } else if (layout === 'bsd') {
      gq = slice(q!, 2, h0 * D, h1 * D, `${tag}_q`);
      gk = slice(k!, 2, k0 * D, k1 * D, `${tag}_k`);
      gv = slice(v!, 2, k0 * Dv, k1 * Dv, `${tag}_v`);
    } else {
      gq = slice(q!, headAxis, h0, h1, `${tag}_q`);
      gk = slice(k!, headAxis, k0, k1, `${tag}_k`);
      gv = slice(v!, headAxis, k0, k1, `${tag}_v`);
    }
    const gbias = split.kind === 'sliced' ? slice(bias!, split.axis, h0, h1, `${tag}_bias`) : bias;
    const gpk = pastKey ? slice(pastKey, 1, k0, k1, `${tag}_past_key`) : undefined;
    const gpv = pastValue ? slice(pastValue, 1, k0, k1, `${tag}_past_value`) : undefined;
    let gparams: AttentionParams = {
      ...params,
      numHeads: h1 - h0,
      kvNumHeads: k1 - k0,
      spec: x.spec,
      layout: layout === 'packed-qkv' ? 'bsd' : layout,
    };
    if (x.guard) gparams = { ...gparams, guard: x.guard };
    else if (gparams.guard) {
      const { guard: _, ...rest } = gparams;
      gparams = rest;
    }
    const outSize = [layout === 'bsd' || layout === 'packed-qkv' ? (h1 - h0) * Dv : h1 - h0, k1 - k0, k1 - k0, h1 - h0];
    const outs = Array.from({ length: slots }, (_, s) => {
      const o = b.fresh(`${tag}_${['y', 'present_key', 'present_value', 'scores'][s]}`, withDim(node.outputs[s]!.type, outAxis[s]!, outSize[s]!));
      parts[s]!.push(o);
      return o;
    });
    const gnode = attentionNode(
      gparams,
      {
        q: gq,
        k: gk,
        v: gv,
        ...(gbias ? { bias: gbias } : {}),
        ...(gpk ? { pastKey: gpk } : {}),
        ...(gpv ? { pastValue: gpv } : {}),
        ...(kvLength ? { kvLength } : {}),
      },
      {
        y: outs[AttentionOutput.y]!,
        ...(outs[1] ? { presentKey: outs[1] } : {}),
        ...(outs[2] ? { presentValue: outs[2] } : {}),
        ...(outs[3] ? { scores: outs[3] } : {}),
      },
      `${baseName(node)}/${tag}`,
    );
    for (const [key, value] of node.annotations) if (key !== HEAD_GROUP) gnode.annotations.set(key, value);
    // a relative-position bias read on the site's bias reads the group's slice of it (its heads' rows of the table)
    const relative = node.annotations.get(RELATIVE_BIAS) as RelativeBias | undefined;
    if (relative && relative.of === bias && gbias !== undefined) gnode.annotations.set(RELATIVE_BIAS, { ...relative, of: gbias } satisfies RelativeBias);
    gnode.annotations.set(HEAD_GROUP, { site, heads: x.heads, kvHeads: x.kvHeads, split: record } satisfies HeadGroupAnnotation);
    b.nodes.push(gnode);
    return gnode;
  });
  const concats: [Value, Value][] = [];
  live.forEach((old, s) => {
    if (!old) return;
    const fresh = b.op('Concat', parts[s]!, `${['y', 'present_key', 'present_value', 'scores'][s]}_heads`, { axis: intAttr(outAxis[s]!) }, old.type);
    concats.push([old, fresh]);
    outputs[s] = fresh;
  });
  const at = graph.nodes.indexOf(node);
  b.nodes.forEach((n, i) => graph.addNode(n, at + i));
  for (const [old, fresh] of concats) redirect(graph, old, fresh);
  graph.removeNode(node);
  return nodes;
}
