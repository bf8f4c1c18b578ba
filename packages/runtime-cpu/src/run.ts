// runGraph: executes a planned graph on the CPU in topological order. Feeds are checked against the graph
// inputs' declared dtypes and static dims; every value is dropped once its last reader has run; errors
// name the node (or input) and the problem.

import { type Graph, type Node, type Value } from '@attnopt/ir';
import type { CpuKernelOptions, CpuWorkerPool } from '@attnopt/backend-cpu';
import type { GuardEvent, OpContext } from './kernel.js';
import { type GraphPlan, planGraph, type PlanOptions } from './plan.js';
import { byteSize, type ExecTensor, fromIrTensor, shapeString } from './tensor.js';

const quoted = (name: string): string => JSON.stringify(name);

/** What one step saw, for observers (calibration statistics, memory profiles). */
export interface NodeEvent {
  readonly node: Node;
  readonly step: number;
  readonly inputs: readonly (ExecTensor | undefined)[];
  readonly outputs: readonly (ExecTensor | undefined)[];
  /** Bytes of the values alive after this step (initializers not counted). */
  readonly liveBytes: number;
}

export interface RunOptions extends PlanOptions {
  /** Settings of the attnopt::Attention kernels (backend wasm or js, block sizes); a site's guard comes from its own params. */
  readonly attention?: CpuKernelOptions;
  /** Runs attention sites on these worker threads; the calling thread otherwise. */
  readonly pool?: CpuWorkerPool;
  /** Values to return besides the graph outputs (kept alive to the end), by name. */
  readonly fetch?: readonly string[];
  /** Called after every node with its inputs and outputs. */
  readonly onNode?: (event: NodeEvent) => void;
  /** Called after each call of a guarded attention site with its fallback (rows recomputed over the baseline). */
  readonly onGuard?: (event: GuardEvent) => void;
  /** A plan made earlier by planGraph for this graph (skips planning). */
  readonly plan?: GraphPlan;
  /** The enclosing graphs' values a subgraph reads (set by the executor when a node runs a branch). */
  readonly outer?: ReadonlyMap<Value, ExecTensor>;
}

/** Plans of the subgraphs run so far (an If runs its branch on every call). */
const branchPlans = new WeakMap<Graph, GraphPlan>();

function checkFeed(v: Value, t: ExecTensor): void {
  const type = v.type;
  if (type === undefined) return;
  const where = `graph input ${quoted(v.name)}`;
  if (type.kind !== 'tensor') throw new Error(`${where}: ${type.kind} inputs are not supported`);
  if (type.dtype !== t.dtype) throw new Error(`${where}: feed is ${t.dtype}, the graph declares ${type.dtype}`);
  const shape = type.shape;
  if (shape === undefined) return;
  const bad =
    shape.length !== t.shape.length || shape.some((d, k) => typeof d === 'number' && d !== t.shape[k]);
  if (bad) throw new Error(`${where}: feed shape ${shapeString(t.shape)} does not match the declared [${shape.join(', ')}]`);
}

/** Runs `graph` on `feeds` (graph input name -> tensor); returns the graph outputs (and fetched values) by name. */
export async function runGraph(graph: Graph, feeds: Readonly<Record<string, ExecTensor>>, options: RunOptions = {}): Promise<Record<string, ExecTensor>> {
  const plan = options.plan ?? planGraph(graph, { ...options, ...(options.outer ? { nested: true } : {}) });
  if (plan.graph !== graph) throw new Error(`the plan given is for graph "${plan.graph.name}", not "${graph.name}"`);
  const env = new Map<Value, ExecTensor>();
  const constants = new Set<Value>();
  const known = new Set(graph.inputs.map((v) => v.name));
  for (const name of Object.keys(feeds)) if (!known.has(name)) throw new Error(`feed ${JSON.stringify(name)} is not an input of graph "${graph.name}"`);
  for (const v of graph.inputs) {
    const t = feeds[v.name];
    if (t !== undefined) {
      checkFeed(v, t);
      env.set(v, t);
    } else if (v.initializer) {
      env.set(v, fromIrTensor(v.initializer, `graph input ${quoted(v.name)}`));
      constants.add(v);
    } else {
      throw new Error(`graph "${graph.name}": input ${quoted(v.name)} has no feed`);
    }
  }
  for (const v of graph.initializers) {
    env.set(v, fromIrTensor(v.initializer!, `initializer ${quoted(v.name)}`));
    constants.add(v);
  }
  // a subgraph reads the enclosing graphs' values as they are: never freed here
  for (const [v, t] of options.outer ?? []) {
    if (env.has(v)) continue;
    env.set(v, t);
    constants.add(v);
  }
  const runSubgraph = async (sub: Graph): Promise<readonly ExecTensor[]> => {
    let subPlan = branchPlans.get(sub);
    if (subPlan === undefined) branchPlans.set(sub, (subPlan = planGraph(sub, { opset: plan.opset, nested: true })));
    const { fetch: _fetch, onNode: _onNode, plan: _plan, ...inherited } = options;
    const out = await runGraph(sub, {}, { ...inherited, plan: subPlan, outer: env });
    return sub.outputs.map((v) => out[v.name]!);
  };

  const wanted = new Set<Value>(graph.outputs);
  if (options.fetch) {
    const byName = new Map<string, Value>();
    for (const v of graph.definedValues()) byName.set(v.name, v);
    for (const name of options.fetch) {
      const v = byName.get(name);
      if (!v) throw new Error(`fetch ${JSON.stringify(name)}: graph "${graph.name}" has no value of that name`);
      wanted.add(v);
    }
  }
  // values freed after each step
  const freeAfter: Value[][] = plan.steps.map(() => []);
  for (const [v, k] of plan.lastUse) if (!wanted.has(v) && k < plan.steps.length) freeAfter[k]!.push(v);

  // bytes of distinct element arrays alive (a view from Reshape or Identity shares its input's array)
  let liveBytes = 0;
  const holders = new Map<ExecTensor['data'], number>();
  const hold = (t: ExecTensor) => {
    const n = holders.get(t.data) ?? 0;
    if (n === 0) liveBytes += byteSize(t);
    holders.set(t.data, n + 1);
  };
  const release = (t: ExecTensor) => {
    const n = holders.get(t.data)!;
    if (n === 1) {
      holders.delete(t.data);
      liveBytes -= byteSize(t);
    } else holders.set(t.data, n - 1);
  };
  for (const [v, t] of env) if (!constants.has(v)) hold(t);
  for (let step = 0; step < plan.steps.length; step++) {
    const { node, kernel } = plan.steps[step]!;
    const inputs = node.inputs.map((v, k) => {
      if (v === undefined) return undefined;
      const t = env.get(v);
      if (t === undefined) throw new Error(`${node.describe()}: input ${k} ${quoted(v.name)} has no value (an omitted optional output of its producer?)`);
      return t;
    });
    for (let k = 0; k < kernel.minInputs; k++) {
      if (inputs[k] === undefined) throw new Error(`${node.describe()}: required input ${k} is missing`);
    }
    const ctx: OpContext = { node, opset: plan.opset, inputs, attention: options.attention ?? {}, pool: options.pool, onGuard: options.onGuard, runSubgraph };
    let outputs;
    try {
      outputs = await kernel.run(ctx);
    } catch (e) {
      throw new Error(`${node.describe()}: ${(e as Error).message}`, { cause: e });
    }
    node.outputs.forEach((v, k) => {
      const t = outputs[k];
      if (t === undefined) return;
      if (!constants.has(v) && env.has(v)) release(env.get(v)!);
      env.set(v, t);
      if (!constants.has(v)) hold(t);
    });
    for (const v of freeAfter[step]!) {
      const t = env.get(v);
      if (t === undefined || constants.has(v)) continue;
      env.delete(v);
      release(t);
    }
    options.onNode?.({ node, step, inputs, outputs, liveBytes });
  }

  const result: Record<string, ExecTensor> = {};
  for (const v of wanted) {
    const t = env.get(v);
    if (t === undefined) throw new Error(`graph "${graph.name}": output ${quoted(v.name)} was not produced`);
    result[v.name] = t;
  }
  return result;
}
