// verify: run an original and an optimized model in onnxruntime on the same inputs and measure how much of
// the original's behaviour the optimized one keeps: per output max abs / rel error, and for logits top-1
// agreement and mean KL divergence, for embeddings mean cosine similarity.

import ort from 'onnxruntime-node';
import type { CalibrationSample } from './calibrate/index.js';
import { toOrt } from './calibrate/ort-tensor.js';
import type { AttnoptModel } from './model.js';
import { CERTIFIED_METADATA } from './optimize.js';

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
}

export interface VerifyReport {
  readonly outputs: readonly OutputComparison[];
  /** Median time of one run of the original, summed over samples. */
  readonly msOriginal: number;
  readonly msOptimized: number;
  /** The max-abs error the optimized model's metadata certifies per site (0 for exact), or null when absent. */
  readonly certified: number | null;
  /** Whether every output stayed within the certified error plus float rounding (atol 1e-5, rtol 1e-5). */
  readonly withinCertified: boolean | null;
}

export interface VerifyOptions {
  /** Treat an output as logits when its last axis has at least this many entries (default 2) and its name says so. */
  readonly logitsPattern?: RegExp;
}

/** The certified bound recorded by `optimize` in the model's metadata, or null. */
export function certifiedBound(model: AttnoptModel): number | null {
  const entry = model.proto.metadataProps?.find((e) => e.key === CERTIFIED_METADATA);
  if (entry?.value === undefined) return null;
  const parsed = JSON.parse(entry.value) as { sites: Record<string, number> };
  return Math.max(0, ...Object.values(parsed.sites));
}

function softmax(row: Float64Array): Float64Array {
  const m = Math.max(...row);
  const e = row.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

function compare(name: string, a: ort.Tensor, b: ort.Tensor, logits: boolean): OutputComparison {
  const shape = [...a.dims];
  if (shape.join() !== [...b.dims].join()) {
    throw new Error(`output ${name}: the optimized model gives shape [${b.dims.join(', ')}], the original [${a.dims.join(', ')}]`);
  }
  const x = Float64Array.from(a.data as ArrayLike<number>, Number);
  const y = Float64Array.from(b.data as ArrayLike<number>, Number);
  let maxAbs = 0;
  let maxRel = 0;
  for (let k = 0; k < x.length; k++) {
    const d = Math.abs(x[k]! - y[k]!);
    const nanMismatch = Number.isNaN(x[k]) !== Number.isNaN(y[k]);
    const abs = nanMismatch || (x[k] !== y[k] && !(d >= 0)) ? Infinity : d;
    maxAbs = Math.max(maxAbs, abs);
    if (abs > 0) maxRel = Math.max(maxRel, abs / Math.max(Math.abs(x[k]!), 1e-30));
  }
  const out: OutputComparison = { name, shape, maxAbsError: maxAbs, maxRelError: maxRel };
  const isFloat = a.type === 'float32' || a.type === 'float64' || a.type === 'float16';
  const last = shape[shape.length - 1] ?? 1;
  if (!isFloat || shape.length < 2 || last < 2) return out;
  const rows = x.length / last;
  if (logits) {
    let agree = 0;
    let kl = 0;
    for (let r = 0; r < rows; r++) {
      const p = softmax(x.subarray(r * last, (r + 1) * last));
      const q = softmax(y.subarray(r * last, (r + 1) * last));
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

/** Outputs of one run, and the median time of RUNS runs after a warm-up (the two models alternate runs). */
async function timedRuns(a: ort.InferenceSession, b: ort.InferenceSession, feeds: Record<string, ort.Tensor>) {
  const outA = await a.run(feeds);
  const outB = await b.run(feeds);
  const ta: number[] = [];
  const tb: number[] = [];
  for (let k = 0; k < RUNS; k++) {
    for (const [session, times] of [[a, ta], [b, tb]] as const) {
      const t0 = performance.now();
      await session.run(feeds);
      times.push(performance.now() - t0);
    }
  }
  const median = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  return { outA, outB, msA: median(ta), msB: median(tb) };
}

/**
 * Runs both models (ONNX files, so external data beside them loads, or bytes) on every sample and compares
 * their outputs; times are medians of alternating runs. `optimized` gives the certified bound from its metadata.
 */
export async function verifyModels(
  original: string | Uint8Array,
  optimizedModel: string | Uint8Array,
  optimized: AttnoptModel,
  samples: Iterable<CalibrationSample>,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const logitsName = options.logitsPattern ?? /logit|score|class|prob/i;
  const opts: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  const open = (m: string | Uint8Array) => ort.InferenceSession.create(m as string, opts);
  const a = await open(original);
  const b = await open(optimizedModel);
  const worst = new Map<string, OutputComparison>();
  let msA = 0;
  let msB = 0;
  for (const sample of samples) {
    const feeds = Object.fromEntries(Object.entries(sample).map(([k, t]) => [k, toOrt(t, k)]));
    const r = await timedRuns(a, b, feeds);
    msA += r.msA;
    msB += r.msB;
    for (const name of a.outputNames) {
      const o = r.outA[name]!;
      const p = r.outB[name];
      if (p === undefined) throw new Error(`the optimized model has no output ${name}`);
      const c = compare(name, o, p, logitsName.test(name));
      const prev = worst.get(name);
      worst.set(name, prev === undefined || c.maxAbsError > prev.maxAbsError ? c : prev);
    }
  }
  await a.release();
  await b.release();
  const outputs = [...worst.values()];
  const certified = certifiedBound(optimized);
  const withinCertified =
    certified === null ? null : outputs.every((o) => o.maxAbsError <= certified + 1e-5 + 1e-5 * o.maxAbsError);
  return { outputs, msOriginal: msA, msOptimized: msB, certified, withinCertified };
}

