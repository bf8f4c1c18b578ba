// ONNX -> IR: a ModelProto's main graph becomes an IR Graph; every node is kept (unknown ops as generic
// nodes with their attributes untouched), names are resolved in lexical scope (a subgraph reads the values
// of its enclosing graphs as the same Value objects), and the original protos are kept on annotations.

import {
  ATTENTION_OP,
  ATTNOPT_DOMAIN,
  type Attr,
  DEFAULT_OPSET_ANNOTATION,
  Graph,
  Node,
  parseSpec,
  tensorType,
  Value,
} from '@attnopt/ir';
import { ANNOTATION, type AttributeEntry, type GraphOrigin, type LocalFunctions, type ValueInfoEntry } from './annotations.js';
import { attrFromProto } from './attributes.js';
import type { ExternalDataResolver } from './external-data.js';
import { describeNodeProto, importError, type Where, within } from './import-error.js';
import { MAX_NODES, quoteName } from './limits.js';
import type { OnnxModel } from './onnx-model.js';
import { sparseTensorFromProto, tensorFromProto } from './tensors.js';
import type { GraphProto, ModelProto, NodeProto, ValueInfoProto } from './types.js';
import { typeFromProto } from './value-types.js';

export interface ImportOptions {
  /** The model file, for messages and external data. */
  readonly file?: string;
  /** Reads external tensor data (readModel's `externalData`); without it, reading an external tensor fails. */
  readonly externalData?: ExternalDataResolver;
}

/**
 * Names visible in one graph: its own definitions, then those of enclosing graphs. A valid model defines
 * each name once; files that define one twice (the corpus has some) resolve a use at node position `at`
 * to the latest definition before it, or to the first when none comes before (an unsorted graph). A name
 * whose every definition is a constant (an initializer or a Constant node) resolves to its last one
 * everywhere, as onnxruntime loads such a file ("the model will use the latest encountered initializer"), so
 * the model means here what it computes there. The verifier then reports the graph as invalid; import keeps
 * it as it is.
 */
class Scope {
  private readonly own = new Map<string, { at: number; value: Value; constant: boolean }[]>();
  constructor(
    private readonly parent: Scope | undefined,
    /** Position, in the parent graph, of the node holding this graph. */
    private readonly atInParent: number,
  ) {}

  define(name: string, value: Value, at: number, constant = false): void {
    const defs = this.own.get(name);
    if (defs === undefined) this.own.set(name, [{ at, value, constant }]);
    else defs.push({ at, value, constant });
  }

  ownValue(name: string): Value | undefined {
    return this.own.get(name)?.[0]?.value;
  }

  lookup(name: string, at: number): Value | undefined {
    const defs = this.own.get(name);
    if (defs === undefined) return this.parent?.lookup(name, this.atInParent);
    if (defs.length > 1 && defs.every((d) => d.constant)) return defs.reduce((last, d) => (d.at >= last.at ? d : last)).value;
    let before: { at: number; value: Value } | undefined;
    for (const d of defs) if (d.at < at && (before === undefined || d.at >= before.at)) before = d;
    return (before ?? defs[0]!).value;
  }
}

/** Position of graph inputs and initializers (before every node), and of graph outputs (after every node). */
const BEFORE_NODES = -1;
const AFTER_NODES = Number.POSITIVE_INFINITY;

interface Ctx {
  readonly externalData: ExternalDataResolver | undefined;
}

const ONNX_DOMAINS = new Set(['', 'ai.onnx']);
/** Attributes of attnopt::Attention written as spec text: the spec, and the baseline of a guarded site. */
const SPEC_ATTRIBUTES = new Set(['spec', 'guardBaseline']);

/** Imports a decoded model. Errors (OnnxImportError) name the file, the graph and node, and the problem. */
export function importModel(model: ModelProto, options: ImportOptions = {}): OnnxModel {
  const where: Where = { file: options.file, path: 'model' };
  if (model.graph === undefined) throw importError(where, 'the model has no graph');
  const graph = importGraph(model.graph, undefined, 0, { file: options.file, path: `graph ${quoteName(model.graph.name ?? '')}` }, {
    externalData: options.externalData,
  });
  recordTypes(graph);
  const opset = model.opsetImport?.find((o) => ONNX_DOMAINS.has(o.domain ?? ''))?.version;
  if (opset !== undefined) recordOpset(graph, Number(opset));
  if ((model.functions ?? []).length > 0) {
    graph.annotations.set(ANNOTATION.functions, { functions: model.functions!, opsetImport: model.opsetImport ?? [], file: options.file, externalData: options.externalData } satisfies LocalFunctions);
  }
  const out: OnnxModel = { graph, proto: model };
  if (options.file !== undefined) out.file = options.file;
  return out;
}

/**
 * A function body as a graph of its own (no enclosing scope: a function reads only its inputs): the graph
 * `g` names the body's inputs and outputs, untyped where the function says nothing of their types.
 */
export function importFunctionBody(g: GraphProto, where: Where, externalData: ExternalDataResolver | undefined): Graph {
  return importGraph(g, undefined, 0, where, { externalData });
}

/** Records the default-domain opset on the graph and its subgraphs (DEFAULT_OPSET_ANNOTATION). */
function recordOpset(graph: Graph, opset: number): void {
  graph.annotations.set(DEFAULT_OPSET_ANNOTATION, opset);
  for (const n of graph.nodes) for (const sub of n.subgraphs()) recordOpset(sub, opset);
}

/** Remembers every value's type as imported, so export can tell which ValueInfoProtos still hold. */
function recordTypes(graph: Graph): void {
  for (const v of graph.definedValues()) v.annotations.set(ANNOTATION.type, v.type);
  for (const n of graph.nodes) for (const sub of n.subgraphs()) recordTypes(sub);
}

function importGraph(g: GraphProto, parent: Scope | undefined, atInParent: number, where: Where, ctx: Ctx): Graph {
  const graph = new Graph(g.name ?? '');
  const scope = new Scope(parent, atInParent);
  const fail = (at: Where) => (problem: string): never => {
    throw importError(at, problem);
  };
  const typeOf = (vi: ValueInfoProto, at: Where) => typeFromProto(vi.type, fail(at));

  // Graph inputs; an initializer of the same name is the input's default value (IR version < 4 lists every
  // initializer among the inputs): the input Value then holds the tensor.
  const inputs: ValueInfoEntry[] = [];
  for (const vi of g.input ?? []) {
    const name = vi.name ?? '';
    const at = within(where, `input ${quoteName(name)}`);
    const v = new Value(name, typeOf(vi, at));
    scope.define(name, v, BEFORE_NODES);
    graph.addInput(v);
    inputs.push({ proto: vi, value: v });
  }
  const initializerOrder: Value[] = [];
  for (const t of g.initializer ?? []) {
    const name = t.name ?? '';
    const at = within(where, `initializer ${quoteName(name)}`);
    const tensor = tensorFromProto(t, { externalData: ctx.externalData, fail: fail(at) });
    const input = scope.ownValue(name);
    if (input !== undefined && graph.inputs.includes(input) && input.initializer === undefined) {
      input.initializer = tensor;
      input.type ??= tensorType(tensor.dtype, tensor.shape);
      initializerOrder.push(input);
      continue;
    }
    const v = new Value(name, tensorType(tensor.dtype, tensor.shape), tensor);
    scope.define(name, v, BEFORE_NODES, true);
    graph.addInitializer(v);
    initializerOrder.push(v);
  }
  for (const s of g.sparseInitializer ?? []) {
    const name = s.values?.name ?? '';
    const at = within(where, `sparse initializer ${quoteName(name)}`);
    const tensor = sparseTensorFromProto(s, { externalData: ctx.externalData, fail: fail(at) });
    const v = new Value(name, { kind: 'sparse', dtype: tensor.dtype, shape: tensor.shape }, tensor);
    v.annotations.set(ANNOTATION.sparse, { proto: s, tensor });
    scope.define(name, v, BEFORE_NODES);
    graph.addInitializer(v);
  }

  // Node outputs are made up front: ONNX graphs must be sorted, but not every file is (the verifier says so),
  // and a subgraph may read any value of its enclosing graph.
  const nodes = g.node ?? [];
  if (nodes.length > MAX_NODES) fail(where)(`the graph has ${nodes.length} nodes, more than the ${MAX_NODES} attnopt reads`);
  for (const [k, n] of nodes.entries()) {
    if (!n.opType) fail(within(where, `node #${k}`))('the node has no op_type (every ONNX node names its operator)');
  }
  const nodeWhere = nodes.map((n, k) => within(where, describeNodeProto(n.name, n.domain, n.opType, k)));
  const outputs = nodes.map((n, k) =>
    (n.output ?? []).map((name, j) => {
      if (name === '') return omittedOutput(n, j, scope, k);
      const v = new Value(name);
      scope.define(name, v, k, n.opType === 'Constant' && ONNX_DOMAINS.has(n.domain ?? ''));
      return v;
    }),
  );

  const valueInfo = (g.valueInfo ?? []).map((vi): ValueInfoEntry => {
    const v = scope.lookup(vi.name ?? '', AFTER_NODES);
    const type = typeOf(vi, within(where, `value_info ${quoteName(vi.name ?? '')}`));
    if (v !== undefined) v.type ??= type;
    return { proto: vi, value: v };
  });
  const graphOutputs = (g.output ?? []).map((vi): ValueInfoEntry => {
    const name = vi.name ?? '';
    const at = within(where, `output ${quoteName(name)}`);
    const v = scope.lookup(name, AFTER_NODES) ?? fail(at)('the graph output is defined nowhere in scope (not an input, initializer or node output)');
    const type = typeOf(vi, at);
    v.type ??= type;
    graph.outputs.push(v);
    return { proto: vi, value: v };
  });

  nodes.forEach((n, k) => {
    const at = nodeWhere[k]!;
    const inputs = (n.input ?? []).map((name, i) => {
      if (name === '') return undefined;
      return scope.lookup(name, k) ?? fail(at)(
        `input ${i} ${quoteName(name)} is defined nowhere in scope (not a graph input, initializer or node output of this graph or an enclosing one)`,
      );
    });
    const domain = ONNX_DOMAINS.has(n.domain ?? '') ? '' : n.domain!;
    const op = n.opType ?? '';
    const attrs = new Map<string, Attr>();
    const entries = new Map<string, AttributeEntry>();
    for (const a of n.attribute ?? []) {
      const name = a.name ?? '';
      const attrAt = within(at, `attribute ${name}`);
      let attr = attrFromProto(a, {
        externalData: ctx.externalData,
        fail: fail(attrAt),
        importGraph: (sub) => importGraph(sub, scope, k, within(attrAt, `graph ${quoteName(sub.name ?? '')}`), ctx),
      });
      if (domain === ATTNOPT_DOMAIN && op === ATTENTION_OP && SPEC_ATTRIBUTES.has(name) && attr.type === 'string') {
        try {
          attr = { type: 'spec', value: parseSpec(attr.value) };
        } catch (e) {
          fail(attrAt)(`not an attention spec: ${(e as Error).message}`);
        }
      }
      if (attrs.has(name)) fail(attrAt)('the attribute is given twice');
      attrs.set(name, attr);
      entries.set(name, { attr, proto: a });
    }
    const node = new Node({ domain, op, name: n.name ?? '', inputs, outputs: outputs[k]!, attrs });
    node.annotations.set(ANNOTATION.node, n);
    node.annotations.set(ANNOTATION.attributes, entries);
    graph.addNode(node);
  });

  const origin: GraphOrigin = { proto: g, inputs, outputs: graphOutputs, valueInfo, initializerOrder };
  graph.annotations.set(ANNOTATION.graph, origin);
  return graph;
}

/**
 * ONNX omits an optional output by naming it ''; the IR needs a Value there, so it gets a placeholder with a
 * name unused in scope. Export writes '' again while nothing reads the placeholder.
 */
function omittedOutput(n: NodeProto, index: number, scope: Scope, at: number): Value {
  const base = `${n.name || n.output?.find((o) => o !== '') || n.opType || 'node'}:omitted${index}`;
  let name = base;
  for (let k = 1; scope.lookup(name, AFTER_NODES) !== undefined; k++) name = `${base}.${k}`;
  const v = new Value(name);
  v.annotations.set(ANNOTATION.omitted, name);
  scope.define(name, v, at);
  return v;
}
