// verify: run an original and an optimized model on the same inputs (in onnxruntime, or with runtime
// 'attnopt-cpu' in attnopt's CPU executor) and measure how much of the original's behaviour the optimized one
// keeps: per output max abs / rel error, and for logits top-1 agreement and mean KL divergence, for embeddings
// mean cosine similarity. Every comparison is judged: against the optimized model's certificate when its
// metadata holds one, else against a tolerance relative to the output's scale; and against the top-1, KL and
// cosine thresholds a caller sets.
// The certificate speaks of the models as written (ONNX semantics). onnxruntime's graph optimizations (the
// 'all' level a deployment uses) may compute a model differently (fused kernels round differently, and a fused
// kernel may read an attribute default the written op does not), so in onnxruntime both models also run with
// graph optimizations off: the certificate is checked on those runs, and how far the optimizations move the
// original itself is reported beside the deployed comparison.

import { type ExecTensor, type GraphPlan, planGraph, runGraph, toNumbers, UnsupportedOpsError } from '@attnopt/runtime-cpu';
import { type Graph, halfToFloat, softmaxRow } from '@attnopt/ir';
import { importOnnx, inlineLocalFunctions } from '@attnopt/onnx';
import ort from 'onnxruntime-node';
import type { CalibrationSample } from './calibrate/index.js';
import { checkRuntime, type Runtime, toExecTensor } from './calibrate/collect.js';
import { toOrt } from './calibrate/ort-tensor.js';
import type { AttnoptModel } from './model.js';
import { recognize } from './recognize.js';
import { CERTIFIED_METADATA } from './optimize.js';
import { maxOf } from './extremes.js';
import { cpuGuardProbes, GuardFallbackTally, type GuardFallbackRate, measureGuardFallback } from './guard-fallback.js';
import { type BitsSum, nextIdBits, targetIds, type VerifyMetric } from './bits-per-byte.js';

export interface OutputComparison {
  readonly name: string;
  readonly shape: readonly number[];
  readonly maxAbsError: number;
  readonly maxRelError: number;
  /** For outputs whose last axis is a distribution over classes (logits): share of rows with the same argmax. */
  readonly top1Agreement?: number;
  /** For logits: mean KL(softmax(original) || softmax(optimized)) over rows. */
  readonly meanKL?: number;
  /** For embeddings (float outputs of rank >= 2 that are not logits): mean cosine similarity of last-axis rows. */
  readonly meanCosine?: number;
  /**
   * onnxruntime only: the max abs error with graph optimizations off in both sessions (the models as written),
   * on which the certificate is checked.
   */
  readonly asWrittenMaxAbsError?: number;
  /** onnxruntime only: how far its graph optimizations move the original's own output (max abs). */
  readonly originalDrift?: number;
  /** The float rounding allowed beside the certified error: atol = rtol = this (by the output's element type). */
  readonly rounding: number;
  /** The output's scale: the largest |element| of the original's output over all samples (finite elements). */
  readonly scale: number;
  /**
   * Byte-level LMs (logits [batch, seq, 256] over the next byte of input_ids, or metric 'bpb'): bits per byte of
   * both models over every predicted position of every sample, and delta = optimized - original (> 0: worse).
   */
  readonly bitsPerByte?: { readonly original: number; readonly optimized: number; readonly delta: number; readonly positions: number };
}

/** What verify judges the comparison against, beside the certificate. */
export interface VerifyThresholds {
  /**
   * Used when the optimized model carries no certificate: every output's max abs error (as written, where
   * onnxruntime runs them) must be at most tolerance x its scale (the largest |element| of the original's
   * output; 1 when that is 0). Default 1e-4.
   */
  readonly tolerance?: number;
  /** Logits outputs: the share of rows whose argmax agrees must be at least this (0..1). */
  readonly minTop1?: number;
  /** Logits outputs: mean KL(softmax(original) || softmax(optimized)) must be at most this. */
  readonly maxKL?: number;
  /** Embedding outputs: mean cosine similarity of last-axis rows must be at least this. */
  readonly minCosine?: number;
  /** Byte LMs: bits per byte of the optimized model minus the original's must be at most this. */
  readonly maxBpbDelta?: number;
}

export const DEFAULT_TOLERANCE = 1e-4;

export interface VerifyReport {
  readonly outputs: readonly OutputComparison[];
  /** Median time of one run of the original, summed over samples. */
  readonly msOriginal: number;
  readonly msOptimized: number;
  /**
   * The largest max-abs error the optimized model's metadata states per site (0 for exact; guarded sites hold it on
   * every input, statistical ones on their calibration data: the key keeps its name `certified`), or null when absent.
   */
  readonly certified: number | null;
  /** The thresholds judged (the tolerance only when there is no certificate), as given or by default. */
  readonly thresholds: VerifyThresholds;
  /** Every threshold an output missed, in words (the certificate's too); empty when all held. */
  readonly failures: readonly string[];
  /** Whether the optimized model passed: within its certificate (or the tolerance) and every threshold. */
  readonly passed: boolean;
  /**
   * Whether every output stayed within the stated error (`certified`) plus float rounding: each output's `rounding`
   * (1e-5 for float32 / float64 outputs, 4e-3 (8 ulps near 1) for float16, 0 for integers) as atol and rtol,
   * plus, in onnxruntime, the original's own drift under graph optimizations (a measured floor of how much
   * the same model moves when only the order of its float operations changes). Judged on the as-written
   * runs where they exist.
   */
  readonly withinCertified: boolean | null;
  /**
   * Per guarded site, the share of (batch, head, query row) triples its run-time certificate sent to the dense
   * fallback on these inputs, in the runtime that ran them (empty when the model has no guarded site).
   */
  readonly guardFallback?: readonly GuardFallbackRate[];
}

export interface VerifyOptions {
  /** Treat an output as logits when its last axis has at least this many entries (default 2) and its name says so. */
  readonly logitsPattern?: RegExp;
  /** What runs both models: onnxruntime-node (default) or attnopt's CPU executor ('attnopt-cpu'). */
  readonly runtime?: Runtime;
  /** The thresholds the comparison is judged against (see VerifyThresholds). */
  readonly thresholds?: VerifyThresholds;
  /**
   * Bits per byte: 'auto' (default) scores a logits output [batch, seq, 256] against the next byte of an integer
   * input_ids; 'bpb' scores any logits [batch, seq, V] against input_ids (or the only integer input) and fails
   * when they do not pair.
   */
  readonly metric?: VerifyMetric;
  /** Timed runs of each model per sample after the warm-up run, whose median is reported (default 5, at least 1). */
  readonly runs?: number;
}



/** The largest per-site error bound `optimize` recorded in the model's metadata (`attnopt.certified`), or null. */
export function certifiedBound(model: AttnoptModel): number | null {
  const entry = model.proto.metadataProps?.find((e) => e.key === CERTIFIED_METADATA);
  if (entry?.value === undefined) return null;
  const parsed = JSON.parse(entry.value) as { sites: Record<string, number> };
  return maxOf(Object.values(parsed.sites), 0);
}

/** One output of one run, whatever ran it: shape, its float rounding (0: not a float tensor), the elements as float64. */
interface OutputValues {
  readonly shape: readonly number[];
  readonly rounding: number;
  readonly values: Float64Array;
}

const ROUNDING = { wide: 1e-5, half: 4e-3 } as const;

/** onnxruntime-node gives float16 elements as their bit patterns (a Uint16Array): decoded here. */
function fromOrtTensor(t: ort.Tensor): OutputValues {
  const data = t.data as ArrayLike<number | bigint>;
  const half = t.type === 'float16';
  return {
    shape: [...t.dims],
    rounding: half ? ROUNDING.half : t.type === 'float32' || t.type === 'float64' ? ROUNDING.wide : 0,
    values: half && data instanceof Uint16Array ? Float64Array.from(data, halfToFloat) : Float64Array.from(data, Number),
  };
}

const fromExecTensor = (t: ExecTensor): OutputValues => ({
  shape: t.shape,
  rounding: t.dtype === 'f16' ? ROUNDING.half : t.dtype === 'f32' || t.dtype === 'f64' ? ROUNDING.wide : 0,
  values: toNumbers(t),
});

/** |x - y| for two elements; NaN against a number, or unequal infinities: Infinity (NaN against NaN: 0). */
function elementError(x: number, y: number): number {
  if (Number.isNaN(x) && Number.isNaN(y)) return 0;
  if (x === y) return 0; // equal infinities too
  const d = Math.abs(x - y);
  return d >= 0 ? d : Infinity;
}

/** Max abs difference of two runs' elements. */
function maxAbsDiff(x: Float64Array, y: Float64Array): number {
  let maxAbs = 0;
  for (let k = 0; k < x.length; k++) maxAbs = Math.max(maxAbs, elementError(x[k]!, y[k]!));
  return maxAbs;
}

function compare(name: string, a: OutputValues, b: OutputValues, logits: boolean): OutputComparison {
  const shape = [...a.shape];
  if (shape.join() !== b.shape.join()) {
    throw new Error(`output ${name}: the optimized model gives shape [${b.shape.join(', ')}], the original [${a.shape.join(', ')}]`);
  }
  const x = a.values;
  const y = b.values;
  let maxAbs = 0;
  let maxRel = 0;
  let scale = 0;
  for (let k = 0; k < x.length; k++) {
    if (Number.isFinite(x[k]!)) scale = Math.max(scale, Math.abs(x[k]!));
    const abs = elementError(x[k]!, y[k]!);
    maxAbs = Math.max(maxAbs, abs);
    if (abs > 0) maxRel = Math.max(maxRel, abs / Math.max(Math.abs(x[k]!), 1e-30));
  }
  const out: OutputComparison = { name, shape, maxAbsError: maxAbs, maxRelError: maxRel, rounding: a.rounding, scale };
  const isFloat = a.rounding > 0;
  const last = shape[shape.length - 1] ?? 1;
  if (!isFloat || shape.length < 2 || last < 2) return out;
  const rows = x.length / last;
  if (logits) {
    let agree = 0;
    let kl = 0;
    for (let r = 0; r < rows; r++) {
      const p = softmaxRow(x.subarray(r * last, (r + 1) * last));
      const q = softmaxRow(y.subarray(r * last, (r + 1) * last));
      let ap = 0;
      let aq = 0;
      for (let c = 0; c < last; c++) {
        if (p[c]! > p[ap]!) ap = c;
        if (q[c]! > q[aq]!) aq = c;
        if (p[c]! > 0) kl += p[c]! * Math.log(p[c]! / Math.max(q[c]!, 1e-300));
      }
      if (ap === aq) agree++;
    }
    return { ...out, top1Agreement: agree / rows, meanKL: kl / rows };
  }
  let cos = 0;
  for (let r = 0; r < rows; r++) {
    let dot = 0;
    let nx = 0;
    let ny = 0;
    for (let c = r * last; c < (r + 1) * last; c++) {
      dot += x[c]! * y[c]!;
      nx += x[c]! ** 2;
      ny += y[c]! ** 2;
    }
    cos += nx === 0 && ny === 0 ? 1 : dot / Math.sqrt(nx * ny);
  }
  return { ...out, meanCosine: cos / rows };
}

const RUNS = 5;

/** The outputs of one run by name. */
type Outputs = (name: string) => OutputValues | undefined;

/** One model opened in a runtime: its output names, and a run on a prepared sample. */
interface ModelRunner {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /**
   * Prepares a sample's feeds once; the returned function runs the model on them (as often as asked) and
   * gives the outputs by name (converted when read, so timed runs do not pay for it).
   */
  prepare(sample: CalibrationSample): () => Promise<Outputs>;
  release(): Promise<void>;
}

async function ortRunner(model: string | Uint8Array, label: string, level: 'all' | 'disabled' = 'all'): Promise<ModelRunner> {
  const opts: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: level, logSeverityLevel: 4 }; // errors come back as exceptions
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(model as string, opts);
  } catch (e) {
    const message = (e as Error).message;
    // an op onnxruntime does not register (ONNX's preview FlexAttention...) may run in attnopt's executor, which lifts fused attention
    const hint = /is not a registered function\/op/.test(message) ? " (attnopt's CPU executor may run it: --runtime attnopt-cpu)" : '';
    throw new Error(`${label}: onnxruntime cannot load it: ${message}${hint}`, { cause: e });
  }
  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    prepare: (sample) => {
      const feeds = Object.fromEntries(Object.entries(sample).map(([k, t]) => [k, toOrt(t, k)]));
      return async () => {
        let out: ort.InferenceSession.OnnxValueMapType;
        try {
          out = await session.run(feeds);
        } catch (e) {
          throw new Error(`${label}: onnxruntime failed: ${(e as Error).message}`, { cause: e });
        }
        return (name) => (out[name] ? fromOrtTensor(out[name] as ort.Tensor) : undefined);
      };
    },
    release: () => session.release(),
  };
}

/**
 * The model in attnopt's CPU executor: imported and planned before anything runs (unsupported ops named with
 * `label`). A model the executor cannot run as written is recognized first (see below). The guarded sites'
 * fallback (flags of lowered sites, the guarded kernel's count for attnopt::Attention nodes) is tallied on the
 * first run of each sample.
 */
function cpuRunner(model: string | Uint8Array, label: string): ModelRunner & { guardFallback(): GuardFallbackRate[] } {
  const imported = importOnnx(model);
  const graph: Graph = imported.graph;
  const d = imported.proto.opsetImport?.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx');
  const opset = Number(d?.version ?? 21n);
  // the executor runs a model-local function by its nodes, written out at each call
  inlineLocalFunctions(graph, () => true);
  let plan: GraphPlan;
  try {
    plan = planGraph(graph, { opset });
  } catch (e) {
    if (!(e instanceof UnsupportedOpsError)) throw e;
    // fused attention ops (ONNX Attention, com.microsoft MultiHeadAttention...) run once recognized as
    // attnopt::Attention, computing what they computed; anything still refused is named
    recognize(graph);
    try {
      plan = planGraph(graph, { opset });
    } catch (e2) {
      throw e2 instanceof UnsupportedOpsError ? new Error(`${label}: ${e2.message}`, { cause: e2 }) : e2;
    }
  }
  const probes = cpuGuardProbes(graph);
  const tally = new GuardFallbackTally();
  return {
    inputNames: graph.inputs.filter((v) => v.initializer === undefined).map((v) => v.name),
    outputNames: graph.outputs.map((v) => v.name),
    prepare: (sample) => {
      const feeds = Object.fromEntries(Object.entries(sample).map(([k, t]) => [k, toExecTensor(t, k)]));
      let tallied = false;
      return async () => {
        const first = !tallied;
        tallied = true;
        let out: Record<string, ExecTensor>;
        try {
          out = await runGraph(graph, feeds, {
            plan,
            opset,
            ...(first && probes.flags.size > 0 ? { fetch: [...probes.flags.keys()] } : {}),
            ...(first && probes.nodes.size > 0 ? { onGuard: (e) => tally.add(probes.nodes.get(e.node) ?? e.node.name, e.rows, e.fallbackRows, e.recomputedRows) } : {}),
          });
        } catch (e) {
          throw new Error(`${label}: the CPU executor failed: ${(e as Error).message}`, { cause: e });
        }
        if (first) for (const [name, site] of probes.flags) tally.addFlags(site, out[name]!.data as ArrayLike<number>, out[name]!.shape);
        return (name) => (out[name] ? fromExecTensor(out[name]) : undefined);
      };
    },
    release: async () => {},
    guardFallback: () => tally.rates(),
  };
}


/** Outputs of one run, and the median time of `runs` runs after a warm-up (the two models alternate runs). */
async function timedRuns(a: () => Promise<Outputs>, b: () => Promise<Outputs>, runs: number) {
  const outA = await a();
  const outB = await b();
  const ta: number[] = [];
  const tb: number[] = [];
  for (let k = 0; k < runs; k++) {
    for (const [run, times] of [[a, ta], [b, tb]] as const) {
      const t0 = performance.now();
      await run();
      times.push(performance.now() - t0);
    }
  }
  const median = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  return { outA, outB, msA: median(ta), msB: median(tb) };
}

/** How two models' interfaces differ (inputs read, outputs written), or undefined when they agree. */
function modelsMismatch(a: ModelRunner, b: ModelRunner): string | undefined {
  const list = (xs: readonly string[]) => `[${xs.join(', ')}]`;
  const same = (x: readonly string[], y: readonly string[]) => x.length === y.length && x.every((n) => y.includes(n));
  if (!same(a.inputNames, b.inputNames)) return `the original reads inputs ${list(a.inputNames)}, the optimized ${list(b.inputNames)}`;
  const missing = a.outputNames.filter((n) => !b.outputNames.includes(n));
  if (missing.length > 0) return `the optimized model has no output ${list(missing)} (its outputs: ${list(b.outputNames)})`;
  return undefined;
}

/** A model given as a path names itself in messages; bytes are named by their role. */
const labelOf = (m: string | Uint8Array, role: string): string => (typeof m === 'string' ? m : `the ${role} model (bytes)`);

/**
 * Runs both models (ONNX files, so external data beside them loads, or bytes) on every sample and compares
 * their outputs; times are medians of alternating runs. `optimized` gives the certified bound from its metadata.
 * With runtime 'attnopt-cpu' both models are planned before anything runs: an op the executor lacks fails
 * naming the model file and every unsupported node.
 */
export async function verifyModels(
  original: string | Uint8Array,
  optimizedModel: string | Uint8Array,
  optimized: AttnoptModel,
  samples: Iterable<CalibrationSample>,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const logitsName = options.logitsPattern ?? /logit|score|class|prob/i;
  const runtime = checkRuntime(options.runtime ?? 'onnxruntime');
  const runs = options.runs ?? RUNS;
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`verify: runs must be a whole number >= 1, got ${runs}`);
  const open = (m: string | Uint8Array, role: string) => (runtime === 'attnopt-cpu' ? cpuRunner(m, labelOf(m, role)) : ortRunner(m, labelOf(m, role)));
  const a = await open(original, 'original');
  let b: ModelRunner & { guardFallback?(): GuardFallbackRate[] };
  try {
    b = await open(optimizedModel, 'optimized');
  } catch (e) {
    await a.release();
    throw e;
  }
  const mismatch = modelsMismatch(a, b);
  if (mismatch !== undefined) {
    await a.release();
    await b.release();
    throw new Error(`the models do not match: ${mismatch} (is it the model optimize wrote from this original?)`);
  }
  const list = [...samples];
  const metric = options.metric ?? 'auto';
  const worst = new Map<string, OutputComparison>();
  const bits = new Map<string, { a: BitsSum; b: BitsSum }>(); // per logits output, summed over samples
  const deployed: Outputs[] = []; // the original's outputs per sample (onnxruntime: to measure its drift)
  let msA = 0;
  let msB = 0;
  try {
    for (const sample of list) {
      const r = await timedRuns(a.prepare(sample), b.prepare(sample), runs);
      msA += r.msA;
      msB += r.msB;
      if (runtime === 'onnxruntime') deployed.push(r.outA);
      const ids = targetIds(sample, metric);
      for (const name of a.outputNames) {
        const o = r.outA(name)!;
        const p = r.outB(name);
        if (p === undefined) throw new Error(`the optimized model has no output ${name}`);
        const c = compare(name, o, p, logitsName.test(name));
        if (ids !== undefined && logitsName.test(name) && o.rounding > 0) addBits(bits, name, o, p, ids, metric);
        const prev = worst.get(name);
        const kept = prev === undefined || c.maxAbsError > prev.maxAbsError ? c : prev;
        worst.set(name, { ...kept, scale: Math.max(c.scale, prev?.scale ?? 0) });
      }
    }
  } finally {
    await a.release();
    await b.release();
  }
  if (metric === 'bpb' && bits.size === 0) {
    throw new Error('bits per byte: no float logits output [batch, seq, vocab] paired with an integer input_ids (or a single integer input) of [batch, seq]');
  }
  let outputs = [...worst.values()].map((o) => withBits(o, bits.get(o.name)));
  if (runtime === 'onnxruntime') outputs = await withAsWritten(original, optimizedModel, list, deployed, outputs);
  const guardFallback = runtime === 'onnxruntime' ? await measureGuardFallback(optimizedModel, list) : b.guardFallback!();
  const certified = certifiedBound(optimized);
  const withinCertified =
    certified === null
      ? null
      : outputs.every((o) => {
          const err = o.asWrittenMaxAbsError ?? o.maxAbsError;
          // an infinite error (a number against NaN, unequal infinities) is never within a bound
          return Number.isFinite(err) && err <= certified + o.rounding + o.rounding * err + (o.originalDrift ?? 0);
        });
  const thresholds: VerifyThresholds = { ...(certified === null ? { tolerance: options.thresholds?.tolerance ?? DEFAULT_TOLERANCE } : {}), ...withoutTolerance(options.thresholds) };
  const failures = judge(outputs, certified, withinCertified, thresholds);
  return { outputs, msOriginal: msA, msOptimized: msB, certified, withinCertified, thresholds, failures, passed: failures.length === 0, ...(guardFallback ? { guardFallback } : {}) };
}

/** Adds one sample's bits of both models to the sums of output `name` (when its shape pairs with the ids). */
function addBits(sums: Map<string, { a: BitsSum; b: BitsSum }>, name: string, o: OutputValues, p: OutputValues, ids: NonNullable<ReturnType<typeof targetIds>>, metric: VerifyMetric): void {
  const a = nextIdBits(o.values, o.shape, ids, name, metric);
  const b = nextIdBits(p.values, p.shape, ids, name, metric);
  if (a === undefined || b === undefined) return;
  const prev = sums.get(name) ?? { a: { bits: 0, positions: 0 }, b: { bits: 0, positions: 0 } };
  const add = (x: BitsSum, y: BitsSum): BitsSum => ({ bits: x.bits + y.bits, positions: x.positions + y.positions });
  sums.set(name, { a: add(prev.a, a), b: add(prev.b, b) });
}

function withBits(o: OutputComparison, sum: { a: BitsSum; b: BitsSum } | undefined): OutputComparison {
  if (sum === undefined || sum.a.positions === 0) return o;
  const original = sum.a.bits / sum.a.positions;
  const optimized = sum.b.bits / sum.b.positions;
  return { ...o, bitsPerByte: { original, optimized, delta: optimized - original, positions: sum.a.positions } };
}

function withoutTolerance(t: VerifyThresholds | undefined): VerifyThresholds {
  if (t === undefined) return {};
  const { tolerance: _, ...rest } = t;
  return rest;
}

const fmt = (x: number) => x.toPrecision(3);

/** Every threshold an output missed, in words. */
function judge(outputs: readonly OutputComparison[], certified: number | null, withinCertified: boolean | null, t: VerifyThresholds): string[] {
  const failures: string[] = [];
  if (withinCertified === false) failures.push(`an output differs by more than the stated max error ${fmt(certified ?? 0)} (plus float rounding and the original's drift)`);
  for (const o of outputs) {
    const err = o.asWrittenMaxAbsError ?? o.maxAbsError;
    if (t.tolerance !== undefined) {
      const allowed = t.tolerance * (o.scale > 0 ? o.scale : 1);
      if (!(err <= allowed)) {
        failures.push(`${o.name}: max abs error ${fmt(err)} is over the tolerance ${t.tolerance} x the output's scale ${fmt(o.scale)} = ${fmt(allowed)} (no certificate in the model)`);
      }
    }
    if (t.minTop1 !== undefined && o.top1Agreement !== undefined && !(o.top1Agreement >= t.minTop1)) {
      failures.push(`${o.name}: top-1 agreement ${(100 * o.top1Agreement).toFixed(2)}% is under --min-top1 ${t.minTop1}`);
    }
    if (t.maxKL !== undefined && o.meanKL !== undefined && !(o.meanKL <= t.maxKL)) {
      failures.push(`${o.name}: mean KL ${fmt(o.meanKL)} is over --max-kl ${t.maxKL}`);
    }
    if (t.minCosine !== undefined && o.meanCosine !== undefined && !(o.meanCosine >= t.minCosine)) {
      failures.push(`${o.name}: mean cosine ${o.meanCosine.toFixed(6)} is under --min-cosine ${t.minCosine}`);
    }
    if (t.maxBpbDelta !== undefined && o.bitsPerByte !== undefined && !(o.bitsPerByte.delta <= t.maxBpbDelta)) {
      const b = o.bitsPerByte;
      failures.push(`${o.name}: bits per byte ${b.optimized.toFixed(4)} against the original's ${b.original.toFixed(4)}: delta ${b.delta.toFixed(4)} is over --max-bpb-delta ${t.maxBpbDelta}`);
    }
  }
  return failures;
}

/**
 * Both models again in onnxruntime with graph optimizations off (the models as written): each comparison gets
 * the as-written error and how far the deployed (optimized-graph) original lies from the written one.
 */
async function withAsWritten(
  original: string | Uint8Array,
  optimizedModel: string | Uint8Array,
  samples: readonly CalibrationSample[],
  deployed: readonly Outputs[],
  outputs: readonly OutputComparison[],
): Promise<OutputComparison[]> {
  const asWritten = new Map<string, number>();
  const drift = new Map<string, number>();
  const keepMax = (m: Map<string, number>, k: string, v: number) => m.set(k, Math.max(m.get(k) ?? 0, v));
  const a = await ortRunner(original, labelOf(original, 'original'), 'disabled');
  try {
    const b = await ortRunner(optimizedModel, labelOf(optimizedModel, 'optimized'), 'disabled');
    try {
      for (const [k, sample] of samples.entries()) {
        const outA = await a.prepare(sample)();
        const outB = await b.prepare(sample)();
        for (const o of outputs) {
          const x = outA(o.name)!.values;
          keepMax(asWritten, o.name, maxAbsDiff(x, outB(o.name)!.values));
          keepMax(drift, o.name, maxAbsDiff(x, deployed[k]!(o.name)!.values));
        }
      }
    } finally {
      await b.release();
    }
  } finally {
    await a.release();
  }
  return outputs.map((o) => ({ ...o, asWrittenMaxAbsError: asWritten.get(o.name)!, originalDrift: drift.get(o.name)! }));
}
