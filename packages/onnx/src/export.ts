// IR -> ONNX: an OnnxModel back to a ModelProto. Each piece the IR has not changed since import is written
// back as the very proto it came from (node, attribute, tensor, value info, graph); a changed piece is
// rebuilt from the IR, keeping what the IR does not model (doc strings, metadata) from its original.
// An unchanged import therefore exports field for field (and byte for byte) as it came in.

import { ATTNOPT_DOMAIN, type Attr, type Graph, type Node, ONNX_DOMAIN, printSpec, type Value } from '@attnopt/ir';
import {
  type AttributeEntry,
  attributeOrigins,
  graphOrigin,
  isOmitted,
  nodeOrigin,
  sparseOrigin,
  typeUnchanged,
  type ValueInfoEntry,
} from './annotations.js';
import { attrToProto, type AttributeExport } from './attributes.js';
import type { OnnxModel } from './onnx-model.js';
import { tensorToProto } from './tensors.js';
import type { AttributeProto, GraphProto, ModelProto, NodeProto, SparseTensorProto, TensorProto, ValueInfoProto } from './types.js';
import { typeToProto } from './value-types.js';

/** The opset import added when a graph holds attnopt's own ops (attnopt::Attention). */
export const ATTNOPT_OPSET = { domain: ATTNOPT_DOMAIN, version: 1n } as const;

/** The ModelProto of an imported (or newOnnxModel) model. */
export function exportModel(model: OnnxModel): ModelProto {
  const proto = model.proto;
  const graph = exportGraph(model.graph, new Set());
  let opsetImport = proto.opsetImport;
  const usesAttnopt = [...model.graph.allNodes()].some((n) => n.domain === ATTNOPT_DOMAIN);
  if (usesAttnopt && !(opsetImport ?? []).some((o) => (o.domain ?? '') === ATTNOPT_DOMAIN)) {
    opsetImport = [...(opsetImport ?? []), { ...ATTNOPT_OPSET }];
  }
  if (graph === proto.graph && opsetImport === proto.opsetImport) return proto;
  const out: ModelProto = { ...proto, graph };
  if (opsetImport !== undefined) out.opsetImport = opsetImport;
  return out;
}

const sameList = <T>(a: readonly T[], b: readonly T[] | undefined): boolean =>
  a.length === (b?.length ?? 0) && a.every((x, i) => x === b![i]);

/** A repeated field: the new list, or absent when it is empty and was absent. */
const listField = <T>(items: T[], before: readonly T[] | undefined): T[] | undefined =>
  items.length === 0 && before === undefined ? undefined : items;

/** The ValueInfoProto for `v`: its original while name and type are unchanged, else rebuilt from the IR. */
function valueInfo(v: Value, original: ValueInfoProto | undefined): ValueInfoProto {
  if (original !== undefined && typeUnchanged(v)) {
    return original.name === v.name ? original : { ...original, name: v.name };
  }
  const vi: ValueInfoProto = original === undefined ? { name: v.name } : { ...original, name: v.name };
  if (v.type !== undefined) vi.type = typeToProto(v.type);
  else delete vi.type;
  return vi;
}

/** The original entry for the k-th input or output `v`: by position, else by value. */
function entryFor(entries: readonly ValueInfoEntry[] | undefined, v: Value, k: number): ValueInfoProto | undefined {
  if (entries === undefined) return undefined;
  if (entries[k]?.value === v) return entries[k]!.proto;
  return entries.find((e) => e.value === v)?.proto;
}

/** Exports a graph whose enclosing graphs define `enclosing`; returns the original GraphProto when unchanged. */
export function exportGraph(graph: Graph, enclosing: ReadonlySet<Value>): GraphProto {
  const origin = graphOrigin(graph);
  const before = origin?.proto;
  const own = new Set(graph.definedValues());
  const inScope = new Set([...enclosing, ...own]);
  const outputsSet = new Set(graph.outputs);

  const node = graph.nodes.map((n) => exportNode(n, inScope, outputsSet));

  const rank = new Map((origin?.initializerOrder ?? []).map((v, k) => [v, k]));
  const dense = [...graph.initializers, ...graph.inputs.filter((v) => v.initializer !== undefined)].filter(
    (v) => sparseOrigin(v)?.tensor !== v.initializer,
  );
  const ordered = dense
    .map((v, k) => ({ v, key: rank.get(v) ?? rank.size + k }))
    .sort((a, b) => a.key - b.key)
    .map(({ v }) => v);
  const initializer: TensorProto[] = ordered.map((v) => tensorToProto(v.initializer!, v.name));
  const sparseInitializer: SparseTensorProto[] = graph.initializers.flatMap((v) => {
    const s = sparseOrigin(v);
    if (s === undefined || s.tensor !== v.initializer) return [];
    return [s.proto.values?.name === v.name ? s.proto : { ...s.proto, values: { ...s.proto.values, name: v.name } }];
  });

  const input = graph.inputs.map((v, k) => valueInfo(v, entryFor(origin?.inputs, v, k)));
  const output = graph.outputs.map((v, k) => valueInfo(v, entryFor(origin?.outputs, v, k)));

  // value_info: the original entries of values still in scope (in file order; entries naming nothing are
  // kept as they are), then the types of new or retyped node outputs.
  const covered = new Set<Value>();
  const info: ValueInfoProto[] = [];
  for (const e of origin?.valueInfo ?? []) {
    if (e.value === undefined) info.push(e.proto);
    else if (inScope.has(e.value)) {
      covered.add(e.value);
      info.push(valueInfo(e.value, e.proto));
    }
  }
  for (const n of graph.nodes) {
    for (const v of n.outputs) {
      if (covered.has(v) || outputsSet.has(v) || v.type === undefined || typeUnchanged(v)) continue;
      covered.add(v);
      info.push(valueInfo(v, undefined));
    }
  }

  const name = graph.name;
  if (
    before !== undefined &&
    name === (before.name ?? '') &&
    sameList(node, before.node) &&
    sameList(initializer, before.initializer) &&
    sameList(sparseInitializer, before.sparseInitializer) &&
    sameList(input, before.input) &&
    sameList(output, before.output) &&
    sameList(info, before.valueInfo)
  ) {
    return before;
  }
  const out: GraphProto = { ...before };
  if (name !== '' || before?.name !== undefined) out.name = name;
  const set = <K extends 'node' | 'initializer' | 'sparseInitializer' | 'input' | 'output' | 'valueInfo'>(key: K, items: NonNullable<GraphProto[K]>) => {
    const field = listField(items as unknown[], before?.[key] as unknown[] | undefined);
    if (field === undefined) delete out[key];
    else out[key] = field as GraphProto[K];
  };
  set('node', node);
  set('initializer', initializer);
  set('sparseInitializer', sparseInitializer);
  set('input', input);
  set('output', output);
  set('valueInfo', info);
  return out;
}

function exportAttribute(name: string, attr: Attr, entry: AttributeEntry | undefined, ctx: AttributeExport): AttributeProto {
  if (entry !== undefined && entry.attr === attr) {
    const p = entry.proto;
    let out: AttributeProto = p;
    if (attr.type === 'graph') {
      const g = ctx.exportGraph(attr.value);
      if (g !== p.g) out = { ...p, g };
    } else if (attr.type === 'graphs') {
      const graphs = attr.value.map(ctx.exportGraph);
      if (!sameList(graphs, p.graphs)) out = { ...p, graphs };
    }
    return out.name === name ? out : { ...out, name };
  }
  return attrToProto(name, attr, ctx);
}

/** The NodeProto for `node`: its original while op, name, input/output names and attributes are unchanged. */
function exportNode(node: Node, inScope: ReadonlySet<Value>, graphOutputs: ReadonlySet<Value>): NodeProto {
  const before = nodeOrigin(node);
  const entries = attributeOrigins(node);
  const ctx: AttributeExport = {
    exportGraph: (g) => exportGraph(g, inScope),
    specText: (a) => printSpec(a.value),
  };
  const attribute = [...node.attrs].map(([name, attr]) => exportAttribute(name, attr, entries?.get(name), ctx));
  const input = node.inputs.map((v) => v?.name ?? '');
  const output = node.outputs.map((v) => (isOmitted(v, graphOutputs) ? '' : v.name));
  const beforeDomain = before?.domain === 'ai.onnx' ? ONNX_DOMAIN : (before?.domain ?? ONNX_DOMAIN);
  if (
    before !== undefined &&
    node.op === (before.opType ?? '') &&
    node.domain === beforeDomain &&
    node.name === (before.name ?? '') &&
    sameList(input, before.input) &&
    sameList(output, before.output) &&
    sameList(attribute, before.attribute)
  ) {
    return before;
  }
  const out: NodeProto = { ...before };
  out.input = input;
  out.output = output;
  if (node.name !== '' || before?.name !== undefined) out.name = node.name;
  out.opType = node.op;
  if (node.domain !== beforeDomain) {
    if (node.domain === ONNX_DOMAIN) delete out.domain;
    else out.domain = node.domain;
  }
  const attrs = listField(attribute, before?.attribute);
  if (attrs === undefined) delete out.attribute;
  else out.attribute = attrs;
  return out;
}
