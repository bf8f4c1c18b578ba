// Rows a proven mask leaves without an attended key: where every key the spec keeps is masked by the residual key
// bias (the padding queries of a left-padded batch in a decoder), the site's softmax over the whole bias runs over
// the masking fills (finfo.min, as recognize writes a model's fill of it: the mean of V over the filled keys),
// while the spec keeps only the masked keys of the band. Those rows are computed again densely with the whole
// bias R, read on those rows only:
//   Y = Attention(Q, K, V, spec S, bias r)  ->  If(F is not empty, ScatterElements(Y, F, Attention(Q[F], K, V, bias R[F])), Y)
//   F = {i : no key j with S(i, j) and r_j > MASKED_AT_OR_BELOW / 2}                                          (error 0)
// Every other row is left as the site computes it (on those the proof is exact); a row of F computed again is the
// site's own row before the proof, so a row taken into F that did not need it is still exact.
// Where the model fills masked scores with a value that does not absorb them (-10000, -1e9, float16's -65504:
// FILL_REPLACES_SCORES), a row of F is not the IR's row either (the model's softmax there runs over the fills and
// the scores it kept): then, when F has a row, the whole site is computed as the model wrote it (asWrittenBranch).
//   Y = Attention(Q, K, V, spec S, bias r)  ->  If(F is not empty, the site's own ONNX nodes, Y)          (error 0)
// R[F] is never the whole [S, T] bias: on the keys S keeps and on each region of the keys S drops (a conjunction
// of the complement's disjunctive normal form) R is one key row (key-rows.ts read on that region), and each
// region's mask over the F rows picks its row. F is found in O(S + T): the keys S keeps for a query are a band
// plus fixed extra keys (keySupport, checked against the spec row by row), counted in a prefix sum of the
// unmasked keys; the rest runs only when F has a row (an If), so an input without such rows pays for the count.

import {
  AttentionInput,
  attentionParams,
  dense,
  defaultOpsetOf,
  Graph,
  graphAttr,
  type KeySupport,
  keySupport,
  type MaskSpec,
  Node,
  queryOffset,
  rowKeys,
  specAttr,
  Value,
} from '@attnopt/ir';
import { NodeBuilder, redirect } from '@attnopt/rewrite';
import { FILL_REPLACES_SCORES, LIFT_RECORD, type LiftRecord } from '../recognize/lift.js';

export { FILL_REPLACES_SCORES } from '../recognize/lift.js';
import { inferDtype, inferShape } from '../shape-inference/shapes.js';
import { lowerAttention } from '../lower/attention.js';
import { specMask } from '../lower/mask.js';
import { keyRowsResidual } from './key-rows.js';
import { nnf, regionSpec, type SiteDims } from './prove.js';
import { type AbstractValue, type Formula, MASKED_AT_OR_BELOW } from './symbolic.js';

/** A key whose bias is above this counts as attended: half way from 0 to the least masking fill. */
export const UNMASKED_ABOVE = MASKED_AT_OR_BELOW / 2;

/** How the analyze-mask pass's note on those rows begins (what inspect and explain look for). */
export const UNKEPT_ROWS_NOTE = 'rows whose kept keys are all masked';

/** Node annotation: the patch that replaced the site's output (undone with the proof: undo.ts). */
export const UNKEPT_ROWS = 'attnopt.unkeptRows';


export interface UnkeptRowsRecord {
  /** The patched output (the If's), which took the site output's name and uses. */
  readonly patched: Value;
  /** The site's own output, read by the If's branches. */
  readonly y: Value;
  /** The nodes placed in the graph (the If last). */
  readonly nodes: readonly Node[];
}

export interface UnkeptRowsInput {
  /** The site after the proof: spec S, bias r (one key row). */
  readonly node: Node;
  /** The model's bias R, its nodes still in the graph. */
  readonly bias: Value;
  /** The key bias r (one query row), built before the site. */
  readonly keyBias: Value;
  /** S's keep formula (structural, NNF) and spec. */
  readonly keep: Formula;
  readonly spec: MaskSpec;
  readonly readings: ReadonlyMap<Value, AbstractValue>;
  readonly dims: SiteDims;
  /** The nodes the proof read (the mask's), which it removes once they are dead: copied into the as-written branch. */
  readonly visited?: ReadonlySet<Node>;
}

/**
 * The site's output as the model wrote it, in a graph of its own (an If's branch): copies of the ONNX nodes the
 * site was lifted from (LIFT_RECORD) and of the mask nodes the proof read that they need (`visited`, removed from
 * the model once dead); every other value they read (Q, K and V as projected, the model's inputs, constants) is
 * read from the outer graph, as it is computed there anyway. A value another lift replaced is read as its
 * replacement. A reason instead when the site has no record or a node holds a subgraph.
 */
function asWrittenBranch(graph: Graph, node: Node, visited: ReadonlySet<Node>, base: string): { branch: Graph; y: Value } | string {
  const record = node.annotations.get(LIFT_RECORD) as LiftRecord | undefined;
  if (record === undefined) return 'the site was not lifted from ONNX nodes';
  const replacement = new Map<Value, Value>();
  for (const n of graph.allNodes()) {
    const r = n.annotations.get(LIFT_RECORD) as LiftRecord | undefined;
    r?.replaced.forEach((v, k) => replacement.set(v, r.fresh[k]!));
  }
  const matchedInputs = new Map(record.matched.map((m) => [m.node, m.inputs]));
  const inputsOf = (n: Node) => matchedInputs.get(n) ?? n.inputs;
  // the nodes to copy: the matched ones and, backwards from their inputs, the mask nodes the proof read
  const copied = new Set<Node>(matchedInputs.keys());
  const stack = [...copied];
  while (stack.length > 0) {
    for (const v of inputsOf(stack.pop()!)) {
      const p = v?.producer;
      if (p && !copied.has(p) && visited.has(p) && p.graph === graph) {
        copied.add(p);
        stack.push(p);
      }
    }
  }
  if ([...copied].some((n) => n.subgraphs().length > 0)) return 'a node of the site holds a subgraph';
  // in dependency order (depth first from each node's inputs)
  const ordered: Node[] = [];
  const done = new Set<Node>();
  const visit = (n: Node) => {
    if (done.has(n)) return;
    done.add(n);
    for (const v of inputsOf(n)) if (v?.producer && copied.has(v.producer)) visit(v.producer);
    ordered.push(n);
  };
  copied.forEach(visit);
  const branch = new Graph(`${base}/as_written`);
  const copies = new Map<Value, Value>();
  const read = (v: Value | undefined) => (v === undefined ? undefined : (copies.get(v) ?? replacement.get(v) ?? v));
  // (numbered: a lift's fresh value takes the name of the value it replaced, so two copied values may share one)
  let k = 0;
  for (const n of ordered) {
    const outputs = n.outputs.map((o) => {
      const c = new Value(`${base}/as_written/${k++}_${o.name}`, o.type);
      copies.set(o, c);
      return c;
    });
    branch.addNode(new Node({ domain: n.domain, op: n.op, name: `${base}/as_written/${k++}_${n.name || n.op}`, inputs: inputsOf(n).map(read), outputs, attrs: n.attrs }));
  }
  const y = copies.get(record.replaced[0]!);
  if (y === undefined) return 'the site\'s output is not computed by the nodes it was lifted from';
  branch.outputs.push(y);
  return { branch, y: record.fresh[0]! };
}

/** The disjunctive normal form of an NNF formula, as conjunctions; undefined past `cap` terms or with data. */
function dnf(f: Formula, cap = 16): Formula[][] | undefined {
  switch (f.op) {
    case 'const':
      return f.value ? [[]] : [];
    case 'lin':
      return [[f]];
    case 'or': {
      const out: Formula[][] = [];
      for (const p of f.parts) {
        const d = dnf(p, cap);
        if (!d || out.length + d.length > cap) return undefined;
        out.push(...d);
      }
      return out;
    }
    case 'and': {
      let acc: Formula[][] = [[]];
      for (const p of f.parts) {
        const d = dnf(p, cap);
        if (!d || acc.length * d.length > cap) return undefined;
        acc = acc.flatMap((c) => d.map((e) => [...c, ...e]));
      }
      return acc;
    }
    default:
      return undefined;
  }
}

const conjunction = (parts: Formula[]): Formula => (parts.length === 0 ? { op: 'const', value: true } : parts.length === 1 ? parts[0]! : { op: 'and', parts });

/** Whether the band plus extra keys of `s` are exactly the keys `spec` keeps, row by row, on a few lengths. */
function supportIsExact(spec: MaskSpec, s: KeySupport): boolean {
  if (s.globalQueries.length > 0 || new Set(s.aligns).size > 1) return false;
  const reach = Math.max(0, ...s.extra.map((e) => e + 1), Number.isFinite(s.lo) ? Math.abs(s.lo) : 0, Number.isFinite(s.hi) ? Math.abs(s.hi) : 0);
  const n = Math.min(2 * reach + 9, 600);
  const lengths = [
    { nq: n, nk: n },
    { nq: Math.max(1, n >> 1), nk: n, past: n - Math.max(1, n >> 1) },
    { nq: 1, nk: n, past: n - 1 },
    { nq: 3, nk: 3 },
  ];
  for (const dims of lengths) {
    const off = queryOffset(s.aligns[0] ?? 'top-left', dims);
    for (let i = 0; i < dims.nq; i++) {
      const p = i + off;
      const want = new Set<number>();
      for (let j = Math.max(0, p + s.lo); j <= Math.min(dims.nk - 1, p + s.hi); j++) want.add(j);
      for (const e of s.extra) if (e < dims.nk) want.add(e);
      const got = rowKeys(spec, i, dims);
      let count = 0;
      for (let k = 0; k < got.length; k += 2) {
        for (let j = got[k]!; j < got[k + 1]!; j++) {
          if (!want.has(j)) return false;
          count++;
        }
      }
      if (count !== want.size) return false;
    }
  }
  return true;
}

/**
 * Builds the patch (see the comment at the top) after the site and points the site's readers at it; returns the
 * record to undo it, or why the site gets none (the rows S leaves without a key then keep the IR's 0).
 */
export function patchUnkeptRows(graph: Graph, x: UnkeptRowsInput): UnkeptRowsRecord | string {
  const { node } = x;
  const p = attentionParams(node);
  const opset = defaultOpsetOf(graph);
  if (opset === undefined || opset < 11) return 'the model\'s opset is below 11 (CumSum, ScatterElements)';
  if (p.layout === 'packed-qkv') return 'packed Q, K and V';
  if (node.inputs[AttentionInput.kvLength]) return 'a key-length input';
  if (node.outputs.length > 3) return 'the site returns its scores';
  const [q, k, v] = [node.inputs[AttentionInput.q], node.inputs[AttentionInput.k], node.inputs[AttentionInput.v]];
  const y = node.outputs[0];
  const rRank = inferShape(x.keyBias)?.length;
  const fillType = inferDtype(x.bias);
  if (!q || !k || !v || !y || rRank === undefined || rRank < 2) return 'the key bias\'s rank is unknown';
  const keyType = inferDtype(x.keyBias);
  const base = `${node.name || y.name}/unkept_rows`;
  // a fill that does not absorb the scores: those rows as the model wrote them, else with the whole bias R
  const asWritten = node.annotations.get(FILL_REPLACES_SCORES) === true ? (x.visited ? asWrittenBranch(graph, node, x.visited, base) : 'the mask nodes are not known') : undefined;
  if (typeof asWritten === 'string') return `the model's fill does not absorb the scores, and ${asWritten}`;
  // (the as-written rows read no region of the bias: only the key bias's type matters, for the unmasked test)
  if (asWritten ? keyType === undefined : fillType === undefined || fillType === 'bool' || (keyType !== fillType && keyType !== 'bool')) return 'the bias is not a float bias';
  const support = keySupport(x.spec);
  if (!support || !supportIsExact(x.spec, support)) return `the keys ${JSON.stringify(x.spec.kind)} keeps are not a band and fixed keys`;
  // the keys S keeps, then the regions of the keys it drops: the model's bias R on each as one key row
  const dropped = asWritten ? [] : dnf(nnf(x.keep, true));
  if (!dropped || (!asWritten && dropped.length === 0)) return 'the keys the spec drops are not a few regions';
  // (on the keys S keeps R is r, but r may be a keep-mask: R is read there too)
  const regions = asWritten ? [] : [[x.keep], ...dropped];
  const rows: { mask: MaskSpec; row: Value }[] = [];
  const rowNodes: Node[] = [];
  for (const [r, parts] of regions.entries()) {
    const f = conjunction(parts);
    const mask = regionSpec(f, x.dims);
    const built = mask && keyRowsResidual(graph, { residual: x.bias, keep: f, readings: x.readings, base: `${base}/region_${r}` });
    if (!mask || !built) return 'the model\'s bias is not one key row on the keys the spec keeps or on those it drops';
    rows.push({ mask, row: built.value });
    rowNodes.push(...built.nodes);
  }

  // which rows keep no attended key, in the graph: a few ops over [B, T] and [S]
  const b = new NodeBuilder(graph, base);
  const i64 = (n: number, what: string) => b.scalar(what, 'i64', n);
  const axisAttr = (a: number) => ({ axis: { type: 'int', value: BigInt(a) } }) as const;
  const seqAxis = p.layout === 'bhsd' ? 2 : 1;
  const pastKey = node.inputs[AttentionInput.pastKey];
  const zero = i64(0, 'zero');
  const one = i64(1, 'one');
  const nq = b.dim(q, seqAxis, 'nq');
  const past = pastKey ? b.dim(pastKey, 2, 'past') : undefined;
  const nk = past ? b.op('Add', [past, b.dim(k, seqAxis, 'new_keys')], 'nk') : b.dim(k, seqAxis, 'nk');
  const bottomRight = b.op('Sub', [nk, nq], 'bottom_right');
  const align = support.aligns[0] ?? 'top-left';
  const offset = align === 'bottom-right' ? bottomRight : align === 'past' ? (past ?? zero) : zero;
  const queries = b.op('Range', [zero, nq, one], 'queries');
  const cols = b.op('Range', [zero, nk, one], 'keys');
  const position = b.op('Add', [queries, offset], 'position');
  const clamp = (t: Value, what: string) => b.op('Min', [b.op('Max', [t, zero], `${what}_low`), nk], what);
  const start = Number.isFinite(support.lo) ? clamp(b.op('Add', [position, i64(support.lo, 'lo')], 'band_lo'), 'start') : b.op('Mul', [queries, zero], 'start');
  const end = Number.isFinite(support.hi) ? clamp(b.op('Add', [position, i64(support.hi + 1, 'hi')], 'band_hi'), 'end') : b.op('Add', [b.op('Mul', [queries, zero], 'end_zero'), nk], 'end');
  // prefix counts of the attended keys, [..., 1, T + 1] (a key bias of size 1 on the key axis broadcasts to T)
  const attendedKeys = keyType === 'bool' ? x.keyBias : b.op('Greater', [x.keyBias, b.scalar('unmasked_above', keyType!, UNMASKED_ABOVE)], 'attended_bias');
  const attended = b.op('Or', [attendedKeys, b.op('Less', [cols, zero], 'no_key')], 'attended');
  const pads = Array<number>(2 * rRank).fill(0);
  pads[rRank - 1] = 1;
  const prefix = b.op('Pad', [b.op('CumSum', [b.cast(attended, 'i64', 'attended_count'), i64(-1, 'key_axis')], 'cumsum'), b.ints('pads', pads)], 'prefix');
  const at = (idx: Value, what: string) => b.op('Gather', [prefix, idx], what, axisAttr(-1));
  let count = b.op('Sub', [at(end, 'to_end'), at(start, 'to_start')], 'band_count');
  for (const e of support.extra) {
    const ix = (d: number, what: string) => b.op('Min', [b.ints(`${what}_${e}`, [e + d]), nk], `${what}_at_${e}`);
    const key = b.op('Sub', [at(ix(1, 'extra_end'), `extra_to_end_${e}`), at(ix(0, 'extra_start'), `extra_to_start_${e}`)], `extra_${e}`);
    const extraKey = i64(e, `extra_key_${e}`);
    const inBand = b.op('And', [b.op('Not', [b.op('Greater', [start, extraKey], `extra_after_${e}`)], `extra_from_${e}`), b.op('Less', [extraKey, end], `extra_to_${e}`)], `extra_in_band_${e}`);
    count = b.op('Add', [count, b.op('Where', [inBand, zero, key], `extra_counted_${e}`)], `count_${e}`);
  }
  const unkept = b.cast(b.op('Not', [b.op('Greater', [count, zero], 'has_key')], 'no_attended_key'), 'i64', 'unkept');
  const anyRow = b.cast(b.op('ReduceMax', [unkept], 'any_unkept', { keepdims: { type: 'int', value: 0n } }), 'bool', 'some_row_unkept');
  if (asWritten) return patchAsWritten(graph, b, anyRow, asWritten);

  // the rows, computed only when there are some (an If): F, R on the rows F, the dense site over them, scattered
  const rowsGraph = new Graph(`${base}/rows`);
  const t = new NodeBuilder(graph, `${base}/rows`);
  const axes = Array.from({ length: rRank - 1 }, (_, a) => a);
  const perRow =
    opset >= 18
      ? t.op('ReduceMax', [unkept, t.ints('batch_axes', axes)], 'unkept_per_row', { keepdims: { type: 'int', value: 0n } })
      : t.op('ReduceMax', [unkept], 'unkept_per_row', { axes: { type: 'ints', value: axes.map(BigInt) }, keepdims: { type: 'int', value: 0n } });
  const f = t.reshape(t.op('NonZero', [perRow], 'nonzero'), [-1], 'unkept_rows');
  // R on the rows F: on each key, the row of the region the key lies in (the last region where no other holds)
  const ix = { rows: t.reshape(f, [-1, 1], 'unkept_rows_2d'), cols, bottomRight, ...(past ? { past } : {}) };
  let rowsBias: Value = rows[rows.length - 1]!.row;
  for (let r = rows.length - 2; r >= 0; r--) {
    const m = specMask(t, rows[r]!.mask, ix);
    rowsBias = m ? t.op('Where', [m, rows[r]!.row, rowsBias], `region_${r}`) : rows[r]!.row;
  }
  const qRows = t.op('Gather', [q, f], 'q_rows', axisAttr(seqAxis));
  // the rows as the site computed them before the proof: a dense site over the F queries with R on them
  const yRows = t.fresh('y_rows');
  const attrs = new Map(node.attrs);
  attrs.set('spec', specAttr(dense));
  const inputs = [qRows, k, v, rowsBias, pastKey, node.inputs[AttentionInput.pastValue]];
  while (inputs.length > 4 && inputs[inputs.length - 1] === undefined) inputs.pop();
  const rowsSite = new Node({ domain: node.domain, op: node.op, name: yRows.name, inputs, outputs: [yRows], attrs });
  const readRows = t.nodes.length; // the nodes from here on read the rows' output: placed after its site
  const rank = p.layout === 'bsd' ? 3 : 4;
  const along = Array<number>(rank).fill(1);
  along[seqAxis] = -1;
  const index = t.op('Expand', [t.reshape(f, along, 'row_index'), t.op('Shape', [yRows], 'rows_shape')], 'row_index_expanded');
  const scattered = t.op('ScatterElements', [y, index, yRows], 'patched', axisAttr(seqAxis), y.type);
  for (const n of [...rowNodes, ...t.nodes.slice(0, readRows), rowsSite, ...t.nodes.slice(readRows)]) rowsGraph.addNode(n);
  lowerAttention(rowsGraph, rowsSite, { opset });
  rowsGraph.outputs.push(scattered);
  const asIs = new Graph(`${base}/as_is`);
  const same = b.op('Identity', [y], 'as_is', {}, y.type);
  asIs.addNode(b.nodes.pop()!);
  asIs.outputs.push(same);

  const patched = b.op('If', [anyRow], 'patched', { then_branch: graphAttr(rowsGraph), else_branch: graphAttr(asIs) }, y.type);
  let place = graph.nodes.indexOf(node) + 1;
  for (const n of b.nodes) graph.addNode(n, place++);
  redirect(graph, y, patched);
  // (the branches read the site's output itself)
  scattered.producer!.setInput(0, y);
  same.producer!.setInput(0, y);
  return { patched, y, nodes: [...b.nodes] };
}

/**
 * The site's output where some row keeps no attended key: the whole site as the model wrote it (the branch), else
 * as rewritten; after the value the site's readers read (the lift's postlude, if any), which they read the If's now.
 *   Y = lifted site  ->  If(F is not empty, the ONNX nodes Y was lifted from, Y)                       (error 0)
 */
function patchAsWritten(graph: Graph, b: NodeBuilder, anyRow: Value, asWritten: { branch: Graph; y: Value }): UnkeptRowsRecord {
  const out = asWritten.y;
  const asIs = new Graph(`${asWritten.branch.name}_as_is`);
  const same = b.op('Identity', [out], 'as_is', {}, out.type);
  asIs.addNode(b.nodes.pop()!);
  asIs.outputs.push(same);
  const patched = b.op('If', [anyRow], 'patched', { then_branch: graphAttr(asWritten.branch), else_branch: graphAttr(asIs) }, out.type);
  let place = graph.nodes.indexOf(out.producer!) + 1;
  for (const n of b.nodes) graph.addNode(n, place++);
  redirect(graph, out, patched);
  same.producer!.setInput(0, out);
  return { patched, y: out, nodes: [...b.nodes] };
}

/** Undoes patchUnkeptRows: the site's readers read its output again; the patch's nodes are left dead (undo.ts removes them). */
export function unpatchUnkeptRows(graph: Graph, node: Node): readonly Node[] {
  const record = node.annotations.get(UNKEPT_ROWS) as UnkeptRowsRecord | undefined;
  if (!record) return [];
  node.annotations.delete(UNKEPT_ROWS);
  redirect(graph, record.patched, record.y);
  // the branches' nodes read outer values (the site's output, the counts): they let go, so that those die too
  for (const g of record.patched.producer?.subgraphs() ?? []) for (const n of g.allNodes()) n.dropInputs();
  return record.nodes;
}
