// Model-local functions (ModelProto.functions: the modules torch's dynamo exporter and onnxscript write as
// functions) written out at their call sites, so that passes see the nodes inside; a call whose nodes no pass
// changed is put back as the call, so a model nothing improved is written as it was read.
//   y = f(x), f = { y = g(h(x)) }   ->   t = h(x); y = g(t)   (values renamed `<call>/<name>`)   -> and back
// A call is written out only where its function is exactly defined for it: the model's default-domain opset,
// attribute references resolved from the call (or the function's defaults), no references inside subgraphs.

import { type Graph, Node, Value } from '@attnopt/ir';
import { ANNOTATION, type LocalFunctions, nodeOrigin } from './annotations.js';
import { importFunctionBody } from './import.js';
import { importError } from './import-error.js';
import { quoteName } from './limits.js';
import type { AttributeProto, FunctionProto, GraphProto, NodeProto } from './types.js';

/** One call written out: enough to put it back while its nodes are as they were written. */
export interface InlinedCall {
  readonly call: Node;
  /** The call as `describe()` named it before it was written out. */
  readonly described: string;
  readonly callInputs: readonly (Value | undefined)[];
  /** The body's nodes in the graph, each with its inputs as written out. */
  readonly nodes: readonly Node[];
  readonly nodeInputs: readonly (readonly (Value | undefined)[])[];
  /** The call's outputs and the body values that replaced them, pairwise. */
  readonly outputs: readonly (readonly [Value, Value])[];
}

/** Calls inside written-out calls, at most this deep (module nesting is a few levels; a deeper chain recurses). */
const MAX_CALL_DEPTH = 64;

const isDefaultDomain = (d: string | undefined) => (d ?? '') === '' || d === 'ai.onnx';

/** The model's local functions as import recorded them on its main graph, or undefined. */
export function localFunctions(graph: Graph): LocalFunctions | undefined {
  return graph.annotations.get(ANNOTATION.functions) as LocalFunctions | undefined;
}

/** The local function named `op` in `domain` (with `overload`), when the model defines one. */
export function localFunction(fns: LocalFunctions, domain: string | undefined, op: string | undefined, overload: string | undefined): FunctionProto | undefined {
  return fns.functions.find((f) => f.name === op && (f.domain ?? '') === (domain ?? '') && (f.overload ?? '') === (overload ?? ''));
}

/** The function `node` calls, when it calls a model-local one. */
export function calledFunction(fns: LocalFunctions, node: Node): FunctionProto | undefined {
  return localFunction(fns, node.domain, node.op, nodeOrigin(node)?.overload);
}

/** Where an error about `fn` points. */
const functionPath = (fn: FunctionProto) => `function ${quoteName(`${fn.domain ?? ''}::${fn.name ?? ''}`)}`;

/** Whether an attribute (or one in a subgraph below it) refers to a call attribute. */
function refersInGraph(g: GraphProto | undefined): boolean {
  return (g?.node ?? []).some((n) => (n.attribute ?? []).some((a) => a.refAttrName !== undefined || refersInGraph(a.g) || (a.graphs ?? []).some(refersInGraph)));
}

/** Why `fn` cannot be written out at its calls, or undefined. */
export function inlineProblem(fns: LocalFunctions, fn: FunctionProto): string | undefined {
  const model = fns.opsetImport.find((o) => isDefaultDomain(o.domain))?.version;
  const own = (fn.opsetImport ?? []).find((o) => isDefaultDomain(o.domain))?.version;
  if (own !== undefined && model !== undefined && own !== model) return `it imports opset ${own} where the model imports ${model}`;
  if ((fn.node ?? []).some((n) => (n.attribute ?? []).some((a) => refersInGraph(a.g) || (a.graphs ?? []).some(refersInGraph)))) {
    return 'it refers to call attributes inside a subgraph';
  }
  return undefined;
}

/** The body's nodes with each attribute reference replaced by the call's attribute (or the default), or dropped. */
function resolvedNodes(fn: FunctionProto, call: NodeProto | undefined): NodeProto[] {
  const given = new Map((call?.attribute ?? []).map((a) => [a.name ?? '', a]));
  const defaults = new Map((fn.attributeProto ?? []).map((a) => [a.name ?? '', a]));
  return (fn.node ?? []).map((n) => {
    if (!(n.attribute ?? []).some((a) => a.refAttrName !== undefined)) return n;
    const attribute = (n.attribute ?? []).flatMap((a): AttributeProto[] => {
      if (a.refAttrName === undefined) return [a];
      const value = given.get(a.refAttrName) ?? defaults.get(a.refAttrName);
      return value === undefined ? [] : [{ ...value, name: a.name }];
    });
    return { ...n, attribute };
  });
}

/**
 * Writes out every call in `graph` (its main level; calls inside written-out bodies too) of a local function
 * `wanted` accepts and `inlineProblem` does not refuse. Returns the calls in the order written out.
 */
export function inlineLocalFunctions(graph: Graph, wanted: (fn: FunctionProto, fns: LocalFunctions) => boolean): InlinedCall[] {
  const fns = localFunctions(graph);
  if (fns === undefined) return [];
  const taken = new Set([...graph.definedValues()].map((v) => v.name));
  const fresh = (name: string) => {
    let out = name;
    for (let k = 1; taken.has(out); k++) out = `${name}_${k}`;
    taken.add(out);
    return out;
  };
  const done: InlinedCall[] = [];
  const depth = new Map<Node, number>();
  for (let k = 0; k < graph.nodes.length; k++) {
    const call = graph.nodes[k]!;
    const fn = calledFunction(fns, call);
    if (fn === undefined || !wanted(fn, fns) || inlineProblem(fns, fn) !== undefined) continue;
    // a function that calls itself (not valid ONNX) would be written out forever
    const level = (depth.get(call) ?? 0) + 1;
    if (level > MAX_CALL_DEPTH) {
      throw importError({ file: fns.file, path: functionPath(fn) }, `it is called ${MAX_CALL_DEPTH} calls deep at ${call.describe()} (does a function call itself?)`);
    }
    const prefix = `${call.name || call.outputs[0]?.name || call.op}/`;
    const described = call.describe();
    const proto: GraphProto = {
      name: fn.name ?? '',
      input: (fn.input ?? []).map((name) => ({ name })),
      output: (fn.output ?? []).map((name) => ({ name })),
      node: resolvedNodes(fn, nodeOrigin(call)),
    };
    const unread = call.outputs.findIndex((o, i) => i >= (fn.output ?? []).length && (o.uses().length > 0 || graph.outputs.includes(o)));
    if (unread >= 0) throw importError({ file: fns.file, path: functionPath(fn) }, `${described} reads its output ${unread}, which the function does not define (it has ${fn.output?.length ?? 0})`);
    const body = importFunctionBody(proto, { file: fns.file, path: `${functionPath(fn)} called by ${described}` }, fns.externalData);
    const nodes = body.nodes.splice(0);
    for (const n of nodes) {
      depth.set(n, level);
      n.graph = undefined;
      n.name = n.name === '' ? '' : fresh(`${prefix}${n.name}`);
      for (const o of n.outputs) o.name = fresh(`${prefix}${o.name}`);
    }
    // the body's inputs read as the call's (an input the call omits reads as omitted)
    body.inputs.forEach((input, i) => {
      for (const { node, index } of [...input.uses()]) node.setInput(index, call.inputs[i]);
    });
    const outs = body.outputs.map((o) => {
      const i = body.inputs.indexOf(o);
      return i >= 0 ? call.inputs[i] : o;
    });
    // an output that is an input of the call, as it stands: an Identity gives it its own value
    const pairs: (readonly [Value, Value])[] = [];
    call.outputs.forEach((o, i) => {
      let b = outs[i];
      if (b === undefined) return; // unread (checked before anything changed)
      if (b.producer === undefined || !nodes.includes(b.producer)) {
        const id = new Node({ op: 'Identity', name: fresh(`${prefix}output${i}`), inputs: [b], outputs: [new Value(fresh(`${prefix}output${i}`))] });
        nodes.push(id);
        b = id.outputs[0]!;
      }
      pairs.push([o, b]);
    });
    const callInputs = [...call.inputs];
    nodes.forEach((n, j) => graph.addNode(n, k + 1 + j));
    for (const [o, b] of pairs) {
      o.replaceAllUsesWith(b, graph);
      const name = o.name;
      o.name = fresh(`${name}__attnopt_call`);
      b.name = name;
    }
    graph.removeNode(call);
    done.push({ call, described, callInputs, nodes, nodeInputs: nodes.map((n) => [...n.inputs]), outputs: pairs });
    k--; // the body's first node now stands at k: calls inside it are written out in turn
  }
  return done;
}

/**
 * Puts back, last written first, every call whose nodes are all still in `graph` as written out, none of whose
 * inner values anything else reads. Returns how many were put back.
 */
export function rerollLocalFunctions(graph: Graph, calls: readonly InlinedCall[]): number {
  let count = 0;
  for (const c of [...calls].reverse()) {
    if (c.nodes.some((n, j) => n.graph !== graph || n.inputs.length !== c.nodeInputs[j]!.length || n.inputs.some((v, i) => v !== c.nodeInputs[j]![i]))) continue;
    const inside = new Set(c.nodes);
    const results = new Set(c.outputs.map(([, b]) => b));
    const leaks = c.nodes.some((n) => n.outputs.some((v) => !results.has(v) && (graph.outputs.includes(v) || v.uses().some((u) => !inside.has(u.node)))));
    if (leaks) continue;
    const at = Math.min(...c.nodes.map((n) => graph.nodes.indexOf(n)));
    for (const [o, b] of c.outputs) {
      const name = b.name;
      b.name = `${name}__attnopt_inlined`;
      o.name = name;
      b.replaceAllUsesWith(o, graph);
    }
    c.callInputs.forEach((v, i) => c.call.setInput(i, v));
    graph.addNode(c.call, at);
    for (const n of [...c.nodes].reverse()) graph.removeNode(n);
    count++;
  }
  return count;
}
