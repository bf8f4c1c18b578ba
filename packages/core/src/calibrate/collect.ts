// Collecting the Q, K, V (bias, past K/V, output) each attention site sees on calibration inputs.
//
// onnxruntime cannot run attnopt::Attention, and recognition may feed a site from values its preludes
// created (a Transpose or Reshape that the original graph never computed). So calibration runs neither the
// original graph nor the recognized one as is: it takes a copy of the recognized model, lowers every
// Attention node to standard ONNX ops (lowerAttentionPass: the site inputs stay real values, preludes
// included, and each site output keeps its name), exposes each site's input and output values as extra graph
// outputs, and runs that model in onnxruntime-node, one sample at a time. The tests check the lowered copy
// computes the original model's outputs and that the reference attention on the collected tensors gives
// each site's collected output.
//
// With runtime 'attnopt-cpu' no onnxruntime is involved: attnopt's CPU executor (runGraph) runs a copy of the
// recognized graph as it is (Attention nodes through the generated kernels) and fetches the site values by
// name. Where the kernels refuse a site (one whose scores output is read), the lowered copy is run instead,
// in the executor too. Every node is checked before the first sample runs: an op the executor lacks fails
// with the model file and every unsupported node named.

import { totalmem } from 'node:os';
import ort from 'onnxruntime-node';
import { toOrt } from './ort-tensor.js';
import { type ExecDType, type ExecTensor, execTensor, type GraphPlan, planGraph, runGraph, toNumbers, UnsupportedOpsError } from '@attnopt/runtime-cpu';
import {
  AttentionInput,
  AttentionOutput,
  attentionParams,
  type Graph,
  isAttention,
  type Node,
  type Value,
} from '@attnopt/ir';
import {
  DataLocation,
  encodeModel,
  ExternalDataResolver,
  exportModel,
  importModel,
  inlineLocalFunctions,
  isExternal,
  mapTensors,
  type ModelProto,
} from '@attnopt/onnx';
import { lowerAttentionPass } from '@attnopt/passes';
import type { AttnoptModel } from '../model.js';
import { checkSample } from './folder.js';
import { type ModelInput, modelInputs } from './model-inputs.js';
import { type SiteSample, type SiteSamples, type SiteTensor, siteDimsOf, siteSampleBytes } from './site-samples.js';
import { type CalibrationSample, type HostTensor, hostTensorFromBytes, hostToFloat64 } from './tensor.js';

process.env.ORT_DISABLE_TELEMETRY ??= '1';

const ROLES = { q: AttentionInput.q, k: AttentionInput.k, v: AttentionInput.v, bias: AttentionInput.bias, pastKey: AttentionInput.pastKey, pastValue: AttentionInput.pastValue } as const;
type Role = keyof typeof ROLES | 'y';

export interface CollectOptions {
  /** Read at most this many samples (the rest are not read). Default: all. */
  readonly maxSamples?: number;
  /**
   * Fail with a clear message once the collected tensors would exceed this many bytes. Default a quarter of this
   * machine's memory, at least 1 GiB (the CLI refuses beforehand a length whose run cannot fit: run-memory.ts).
   */
  readonly maxBytes?: number;
  /** Also collect each site's output (y). Default true. */
  readonly outputs?: boolean;
  /** Opset the lowered Attention nodes use; default the model's default-domain opset (at least 13). */
  readonly opset?: number;
  /** What runs the model: onnxruntime-node (default) or attnopt's CPU executor ('attnopt-cpu'). */
  readonly runtime?: Runtime;
}

/** The runtimes calibration and verification can run models on. */
export type Runtime = 'onnxruntime' | 'attnopt-cpu';
export const RUNTIMES: readonly Runtime[] = ['onnxruntime', 'attnopt-cpu'];

/** Throws naming the choices when `runtime` is not one of RUNTIMES. */
export function checkRuntime(runtime: string): Runtime {
  if (!(RUNTIMES as readonly string[]).includes(runtime)) throw new Error(`unknown runtime "${runtime}": one of ${RUNTIMES.join(', ')}`);
  return runtime as Runtime;
}

/** Where a site's tensors come from in the calibration model. */
interface SitePlan {
  readonly id: string;
  readonly node: Node;
  readonly values: Partial<Record<Role, Value>>;
  readonly skipped?: string;
}

/** The calibration model: the lowered copy with site values as outputs, and the plan to read them back. */
export interface CalibrationModel {
  /**
   * ONNX bytes (external data inlined) of the model that ran: the lowered copy onnxruntime runs, or with
   * 'attnopt-cpu' the graph the executor ran (encoded when first read).
   */
  readonly bytes: Uint8Array;
  readonly sites: readonly { id: string; params: SiteSamples['params']; values: Readonly<Record<string, string>>; skipped?: string }[];
}

type SiteSummary = CalibrationModel['sites'][number];

const defaultOpset = (proto: ModelProto): number => {
  const d = proto.opsetImport?.find((o) => (o.domain ?? '') === '');
  return Math.max(13, Number(d?.version ?? 21n));
};

/** The default-domain opset the model declares (the semantics its nodes are run with); 21 when absent. */
const declaredOpset = (proto: ModelProto): number => {
  const d = proto.opsetImport?.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx');
  return Number(d?.version ?? 21n);
};

/** A copy of `model` (the recognized graph): exported and imported again, external data resolved from its file. */
function copyModel(model: AttnoptModel): { copy: AttnoptModel; resolver?: ExternalDataResolver } {
  const resolver = model.file !== undefined ? new ExternalDataResolver(model.file) : undefined;
  const copy = importModel(exportModel(model), { ...(model.file !== undefined ? { file: model.file } : {}), ...(resolver ? { externalData: resolver } : {}) });
  return resolver ? { copy, resolver } : { copy };
}

/** The model calibration runs (see the comment at the top of this file): bytes for onnxruntime, and its sites. */
export function calibrationModel(model: AttnoptModel, options: Pick<CollectOptions, 'outputs' | 'opset'> = {}): CalibrationModel {
  const { bytes, sites } = buildCalibrationModel(model, options);
  return { bytes, sites };
}

/** Every site of the copy's graph with the values to collect, unnamed values given fresh names. */
function sitePlans(graph: Graph, options: Pick<CollectOptions, 'outputs'>): SitePlan[] {
  const topLevel = new Set(graph.nodes);
  const used = new Set<string>();
  for (const v of graph.definedValues()) used.add(v.name);
  return [...graph.allNodes()].filter(isAttention).map((node, k) => {
    const id = `site${k}`;
    if (!topLevel.has(node)) return { id, node, values: {}, skipped: 'the site is inside a subgraph (an If / Loop / Scan body, a BeamSearch or Sampling decoder), whose values cannot be graph outputs' };
    const values: Partial<Record<Role, Value>> = {};
    for (const [role, index] of Object.entries(ROLES) as [Role, number][]) {
      const v = node.inputs[index];
      if (v !== undefined) values[role] = v;
    }
    if (options.outputs ?? true) values.y = node.outputs[AttentionOutput.y]!;
    for (const [role, v] of Object.entries(values) as [Role, Value][]) {
      if (v.name === '') {
        let name = `attnopt_calibration_${id}_${role}`;
        while (used.has(name)) name += '_';
        v.name = name;
        used.add(name);
      }
    }
    return { id, node, values };
  });
}

const summaries = (plans: readonly SitePlan[]): SiteSummary[] =>
  plans.map((p) => ({
    id: p.id,
    params: attentionParams(p.node),
    values: Object.fromEntries(Object.entries(p.values).map(([r, v]) => [r, v.name])),
    ...(p.skipped !== undefined ? { skipped: p.skipped } : {}),
  }));

/** Lowers every Attention node of the copy (lowerAttentionPass) and points the plans at the values of the same names. */
function lowerCopy(model: AttnoptModel, copy: AttnoptModel, plans: SitePlan[], opset: number | undefined): void {
  const graph = copy.graph;
  // Lowering replaces each Attention output by a value of the same name: look every value up by name again.
  const names = plans.map((p) => Object.entries(p.values).map(([r, v]) => [r, v.name] as const));
  lowerAttentionPass({ opset: opset ?? defaultOpset(copy.proto) }).run(graph);
  const byName = new Map<string, Value>();
  for (const v of graph.definedValues()) byName.set(v.name, v);
  plans.forEach((p, k) => {
    for (const [role, name] of names[k]!) {
      const v = byName.get(name);
      if (v === undefined) throw new Error(`${model.file ?? 'model'}: ${p.id}: value "${name}" (${role}) is gone after lowering`);
      (p.values as Record<string, Value>)[role] = v;
    }
  });
}

const isFedIn = (graph: Graph) => (v: Value) => graph.inputs.includes(v) || v.initializer !== undefined;

/** The copy as ONNX bytes, external tensors inlined from `resolver`. */
function inlinedBytes(copy: AttnoptModel, resolver: ExternalDataResolver | undefined): Uint8Array {
  let proto = exportModel(copy);
  if (resolver !== undefined) {
    proto = mapTensors(proto, 'ModelProto', (t) => {
      if (!isExternal(t)) return t;
      const inlined = { ...t, rawData: resolver.read(t), dataLocation: DataLocation.DEFAULT };
      delete inlined.externalData;
      return inlined;
    });
  }
  return encodeModel(proto);
}

function buildCalibrationModel(model: AttnoptModel, options: Pick<CollectOptions, 'outputs' | 'opset'>): CalibrationModel & { plans: SitePlan[]; graph: Graph } {
  const { copy, resolver } = copyModel(model);
  const graph = copy.graph;
  const plans = sitePlans(graph, options);
  const sites = summaries(plans);
  lowerCopy(model, copy, plans, options.opset);
  const isFed = isFedIn(graph);
  for (const p of plans) {
    for (const v of Object.values(p.values)) if (!isFed(v) && !graph.outputs.includes(v)) graph.outputs.push(v);
  }
  return { bytes: inlinedBytes(copy, resolver), sites, plans, graph };
}

/** What the CPU executor runs: the recognized copy (or its lowered form), planned, and the site values to fetch. */
interface CpuCalibration {
  readonly graph: Graph;
  readonly plan: GraphPlan;
  readonly opset: number;
  readonly plans: SitePlan[];
  readonly sites: SiteSummary[];
  readonly fetch: string[];
  readonly bytes: () => Uint8Array;
}

/** The UnsupportedOpsError of planGraph with the model file named (the original error as its cause). */
function unsupportedError(where: string, e: unknown): unknown {
  return e instanceof UnsupportedOpsError ? new Error(`${where}: ${e.message}`, { cause: e }) : e;
}

function buildCpuCalibration(model: AttnoptModel, options: Pick<CollectOptions, 'outputs' | 'opset'>): CpuCalibration {
  const where = model.file ?? 'model';
  const { copy, resolver } = copyModel(model);
  const graph = copy.graph;
  const opset = declaredOpset(copy.proto);
  const plans = sitePlans(graph, options);
  const sites = summaries(plans);
  // the executor runs a model-local function by its nodes, written out at each call
  inlineLocalFunctions(graph, () => true);
  let plan: GraphPlan;
  try {
    plan = planGraph(graph, { opset });
  } catch (e) {
    // sites the kernels refuse (a scores output that is read): run the lowered copy, as onnxruntime does
    if (!(e instanceof UnsupportedOpsError) || !e.nodes.every((n) => n.domain === 'attnopt' && n.op === 'Attention')) throw unsupportedError(where, e);
    lowerCopy(model, copy, plans, options.opset);
    try {
      plan = planGraph(graph, { opset });
    } catch (e2) {
      throw unsupportedError(where, e2);
    }
  }
  const isFed = isFedIn(graph);
  const fetch = [...new Set(plans.flatMap((p) => Object.values(p.values).filter((v) => !isFed(v)).map((v) => v.name)))];
  return { graph, plan, opset, plans, sites, fetch, bytes: () => inlinedBytes(copy, resolver) };
}

const DTYPE_OF: Record<string, string> = { float32: 'f32', float64: 'f64', float16: 'f16', bool: 'bool' };

function siteTensorFromOrt(t: ort.Tensor, name: string): SiteTensor {
  const shape = [...t.dims];
  if (t.type === 'float32') return { dtype: 'f32', shape, data: Float32Array.from(t.data as Float32Array) };
  if (t.type === 'float64') return { dtype: 'f64', shape, data: Float64Array.from(t.data as Float64Array) };
  if (t.type === 'float16' || t.type === 'bool' || t.type.startsWith('int') || t.type.startsWith('uint')) {
    const src = t.data as ArrayLike<number | bigint>;
    const data = new Float32Array(src.length);
    if (t.type === 'float16') {
      const bits = src as Uint16Array;
      data.set(hostToFloat64({ dtype: 'f16', shape, data: bits }));
    } else for (let k = 0; k < src.length; k++) data[k] = Number(src[k]!);
    return { dtype: DTYPE_OF[t.type] ?? t.type, shape, data };
  }
  throw new Error(`value "${name}": cannot collect ${t.type} tensors`);
}

/** An executor tensor as a site tensor (copied: float32/float64 kept, float16, bool and integers as float32). */
function siteTensorFromExec(t: ExecTensor): SiteTensor {
  const shape = [...t.shape];
  if (t.dtype === 'f32') return { dtype: 'f32', shape, data: Float32Array.from(t.data as Float32Array) };
  if (t.dtype === 'f64') return { dtype: 'f64', shape, data: Float64Array.from(t.data as Float64Array) };
  return { dtype: t.dtype, shape, data: Float32Array.from(toNumbers(t)) };
}

const EXEC_DTYPES: Partial<Record<string, ExecDType>> = { f32: 'f32', f64: 'f64', f16: 'f16', i64: 'i64', i32: 'i32', i8: 'i8', u8: 'u8', bool: 'bool' };

/** A calibration tensor as an executor tensor (same elements, not copied); throws naming the input. */
export function toExecTensor(t: HostTensor, name: string): ExecTensor {
  const dtype = EXEC_DTYPES[t.dtype];
  if (dtype === undefined) throw new Error(`input "${name}": the CPU executor has no ${t.dtype} tensors`);
  return execTensor(dtype, t.shape, t.data as ExecTensor['data']);
}

function siteTensorFromHost(t: HostTensor): SiteTensor {
  const data = t.dtype === 'f64' ? Float64Array.from(t.data as Float64Array) : Float32Array.from(hostToFloat64(t));
  return { dtype: t.dtype, shape: [...t.shape], data };
}

type SampleSource = Iterable<CalibrationSample> | AsyncIterable<CalibrationSample>;

/** One sample through the runtime: the computed site values by name (fed values and initializers aside). */
interface SampleRunner {
  readonly plans: readonly SitePlan[];
  readonly graph: Graph;
  run(sample: CalibrationSample, index: number): Promise<(name: string) => SiteTensor | undefined>;
  release(): Promise<void>;
  result(): CalibrationModel;
}

/** The lowering writes Range (opset 11): below that onnxruntime cannot run a lowered copy of the model. */
const LOWEST_CALIBRATION_OPSET = 11;

/** Every site skipped for `why`: nothing is built or run (the sites are kept as the model wrote them). */
function skippingRunner(model: AttnoptModel, why: string): SampleRunner {
  const { copy } = copyModel(model);
  const plans = sitePlans(copy.graph, { outputs: false }).map((p) => ({ ...p, values: {}, skipped: p.skipped ?? why }));
  return {
    plans,
    graph: copy.graph,
    run: async () => () => undefined,
    release: async () => {},
    result: () => ({ bytes: encodeModel(exportModel(copy)), sites: summaries(plans) }),
  };
}

async function ortRunner(model: AttnoptModel, inputs: readonly ModelInput[], options: CollectOptions): Promise<SampleRunner> {
  const where = model.file ?? 'model';
  const opset = declaredOpset(model.proto);
  if (opset < LOWEST_CALIBRATION_OPSET && options.opset === undefined) {
    return skippingRunner(model, `the model's opset ${opset} is below ${LOWEST_CALIBRATION_OPSET}, the lowest at which attnopt's lowering (it writes Range) runs in onnxruntime; raise the model's opset to calibrate it`);
  }
  const calib = buildCalibrationModel(model, options);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(calib.bytes, { graphOptimizationLevel: 'disabled', logSeverityLevel: 4 }); // errors come back as exceptions, named below
  } catch (e) {
    // a model file onnxruntime refuses as the exporter wrote it (a type mismatch in the file) is the model's
    // problem, not the lowering's: say so, with onnxruntime's own words on the file
    const asWritten =
      model.file === undefined
        ? undefined
        : await ort.InferenceSession.create(model.file, { graphOptimizationLevel: 'disabled', logSeverityLevel: 4 }).then(
            async (s) => (await s.release(), undefined),
            (e2: Error) => e2.message,
          );
    if (asWritten !== undefined) throw new Error(`${where}: onnxruntime cannot load the model as written, before any rewrite: ${asWritten}`);
    throw new Error(`${where}: onnxruntime cannot load the lowered calibration model: ${(e as Error).message}`);
  }
  const wanted = new Set<string>();
  for (const p of calib.plans) for (const v of Object.values(p.values)) if (calib.graph.outputs.includes(v)) wanted.add(v.name);
  return {
    plans: calib.plans,
    graph: calib.graph,
    run: async (sample, index) => {
      // every site in a subgraph (a BeamSearch decoder): nothing to read, nothing to run
      if (wanted.size === 0) return () => undefined;
      const feeds: Record<string, ort.Tensor> = {};
      for (const i of inputs) feeds[i.name] = toOrt(sample[i.name]!, i.name);
      let out: ort.InferenceSession.OnnxValueMapType;
      try {
        out = await session.run(feeds, [...wanted]);
      } catch (e) {
        throw new Error(`${where}: sample ${index}: onnxruntime failed: ${(e as Error).message}`);
      }
      return (name) => {
        const o = out[name];
        return o === undefined ? undefined : siteTensorFromOrt(o as ort.Tensor, name);
      };
    },
    release: () => session.release(),
    result: () => ({ bytes: calib.bytes, sites: calib.sites }),
  };
}

function cpuRunner(model: AttnoptModel, inputs: readonly ModelInput[], options: CollectOptions): SampleRunner {
  const where = model.file ?? 'model';
  const calib = buildCpuCalibration(model, options);
  return {
    plans: calib.plans,
    graph: calib.graph,
    run: async (sample, index) => {
      const feeds: Record<string, ExecTensor> = {};
      for (const i of inputs) feeds[i.name] = toExecTensor(sample[i.name]!, i.name);
      let out: Record<string, ExecTensor>;
      try {
        out = await runGraph(calib.graph, feeds, { plan: calib.plan, opset: calib.opset, fetch: calib.fetch });
      } catch (e) {
        throw new Error(`${where}: sample ${index}: the CPU executor failed: ${(e as Error).message}`, { cause: e });
      }
      return (name) => {
        const o = out[name];
        return o === undefined ? undefined : siteTensorFromExec(o);
      };
    },
    release: async () => {},
    result: () => {
      let bytes: Uint8Array | undefined;
      return {
        get bytes() {
          return (bytes ??= calib.bytes());
        },
        sites: calib.sites,
      };
    },
  };
}

/**
 * Runs the calibration model on each sample in turn and yields, per sample, each site's tensors (sites in a
 * subgraph yield nothing). Nothing from one sample is kept by the generator after it is yielded.
 */
export async function* siteTensorStream(
  model: AttnoptModel,
  samples: SampleSource,
  options: CollectOptions = {},
): AsyncGenerator<{ index: number; sites: ReadonlyMap<string, SiteSample> }, CalibrationModel> {
  const where = model.file ?? 'model';
  const inputs = modelInputs(model.graph, where);
  const runtime = checkRuntime(options.runtime ?? 'onnxruntime');
  const runner = runtime === 'attnopt-cpu' ? cpuRunner(model, inputs, options) : await ortRunner(model, inputs, options);
  try {
    let index = 0;
    for await (const sample of samples) {
      if (options.maxSamples !== undefined && index >= options.maxSamples) break;
      checkSample(sample, inputs, `sample ${index}`);
      const computed = await runner.run(sample, index);
      const sites = new Map<string, SiteSample>();
      for (const p of runner.plans) {
        if (p.skipped !== undefined) continue;
        const get = (v: Value | undefined): SiteTensor | undefined => {
          if (v === undefined) return undefined;
          const fed = sample[v.name];
          if (fed !== undefined && runner.graph.inputs.includes(v)) return siteTensorFromHost(fed);
          if (v.initializer !== undefined) {
            const t = v.initializer;
            return siteTensorFromHost(hostTensorFromBytes(t.dtype, t.shape, t.bytes()));
          }
          const o = computed(v.name);
          if (o === undefined) throw new Error(`${where}: ${p.id}: value "${v.name}" was not computed`);
          return o;
        };
        const params = attentionParams(p.node);
        const q = get(p.values.q)!;
        const entry: Record<string, unknown> = { q };
        for (const role of ['k', 'v', 'bias', 'pastKey', 'pastValue', 'y'] as const) {
          const t = get(p.values[role]);
          if (t !== undefined) entry[role] = t;
        }
        const k = entry.k as SiteTensor | undefined;
        const pastKey = entry.pastKey as SiteTensor | undefined;
        entry.dims = siteDimsOf(params, q.shape, k?.shape, pastKey?.shape);
        sites.set(p.id, entry as unknown as SiteSample);
      }
      yield { index, sites };
      index++;
    }
  } finally {
    await runner.release();
  }
  return runner.result();
}

/**
 * Q, K, V (bias, past K/V, output) of every site of a recognized model on each calibration sample, per site
 * id (`site<k>` as inspectModel numbers them). `model` must be the recognized model (attnopt::Attention nodes
 * in its graph); it is not modified. Samples are run one at a time; the collected tensors are kept, up to
 * options.maxBytes.
 */
export async function collectSiteTensors(model: AttnoptModel, samples: SampleSource, options: CollectOptions = {}): Promise<SiteSamples[]> {
  const maxBytes = options.maxBytes ?? Math.max(2 ** 30, totalmem() / 4);
  const stream = siteTensorStream(model, samples, options);
  const collected = new Map<string, SiteSample[]>();
  let bytes = 0;
  let calib: CalibrationModel | undefined;
  for (;;) {
    const next = await stream.next();
    if (next.done) {
      calib = next.value;
      break;
    }
    for (const [id, s] of next.value.sites) {
      bytes += siteSampleBytes(s);
      if (bytes > maxBytes) {
        await stream.return(undefined as never);
        throw new Error(
          `${model.file ?? 'model'}: sample ${next.value.index}: the collected site tensors take over ${maxBytes} bytes (maxBytes): ` +
            'give fewer or shorter samples, raise maxBytes, or consume siteTensorStream sample by sample',
        );
      }
      let list = collected.get(id);
      if (list === undefined) collected.set(id, (list = []));
      list.push(s);
    }
  }
  return calib.sites.map((s) => ({ ...s, samples: collected.get(s.id) ?? [] }));
}
