// Measuring a rewrite before it stays: the cost model ranks the forms, and where its prediction is off (small head
// sizes, many small nodes, a runtime's dispatch overhead on a machine it was not fitted on) a chosen form can run
// slower than the site as written. So each site the chooser rewrites is built twice as a model of its own (the
// site as written and in its chosen form, lowered as optimize lowers them), both are timed side by side on the
// site's calibration inputs (at most MEASURED_SAMPLES of them), and the rewrite stays only where it runs in at
// most MEASURED_GAIN of the written time; otherwise the site is kept as written, the measurement saying why.
//   SiteDecision(chosen F)  ->  SiteDecision(chosen F, measuredTime)          (F measured faster)
//   SiteDecision(chosen F)  ->  keepAsWritten(measuredTime, reason)           (F measured no faster)

import { createHash } from 'node:crypto';
import { AttentionInput, attentionParams, type DType, floatToHalf, type Node } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { inferDtype, keepAsWritten, type LowerOptions, type SiteCalibration, type SiteDecision, siteVariant } from '@attnopt/passes';
import type { HostTensor } from '../calibrate/tensor.js';
import type { SitePair, SiteTimer, SiteTiming } from './site-timer.js';

/**
 * A rewrite stays when it runs in at most this fraction of the written time: the medians of alternating rounds
 * on a shared machine move by a few percent run to run, and a form that changes what the site computes (guarded,
 * statistical) should buy more than that.
 */
export const MEASURED_GAIN = 0.95;

/** Calibration samples a site is timed on (round r on sample r mod their count). */
export const MEASURED_SAMPLES = 4;

export interface MeasureContext {
  /** How the sites are lowered (the lower pass's options: opset, ONNX Attention for banded sites). */
  readonly lowering: LowerOptions;
  readonly timer: SiteTimer;
  /** The runtime's name, for the record (onnxruntime-node). */
  readonly runtime: string;
  /**
   * Timings by what decides them (both models' bytes, the inputs' shapes, the predicted fallback rate to the
   * percent), with the site first timed: the layers of a model that share a form are timed once.
   */
  readonly timings?: Map<string, { readonly timing: SiteTiming; readonly site: string }>;
}

const ms = (s: number) => `${(s * 1e3).toPrecision(3)} ms`;
const inputsSaid = (n: number) => (n === 1 ? 'the calibration input' : `${n} calibration inputs`);

/** A calibration tensor (float data) as the site input's dtype; undefined where that dtype is not fed here. */
function asDtype(t: { shape: readonly number[]; data: ArrayLike<number> }, dtype: DType): HostTensor | undefined {
  switch (dtype) {
    case 'f32':
      return { dtype, shape: t.shape, data: Float32Array.from(t.data) };
    case 'f64':
      return { dtype, shape: t.shape, data: Float64Array.from(t.data) };
    case 'f16': // calibration widened it to float32; back to its 16-bit patterns
      return { dtype, shape: t.shape, data: Uint16Array.from(t.data, floatToHalf) };
    case 'bool': // the passes read a boolean keep-mask as a 0 / -inf bias
      return { dtype, shape: t.shape, data: Uint8Array.from(t.data, (x) => (x === -Infinity ? 0 : 1)) };
    default:
      return undefined;
  }
}

/** The site inputs (by index) from a calibration sample; kvLength as every key valid. Throws naming what is missing. */
function siteFeeds(node: Node, sample: SiteCalibration['samples'][number]): (HostTensor | undefined)[] {
  const byRole = [sample.q, sample.k, sample.v, sample.bias, sample.pastKey, sample.pastValue];
  const keys = (() => {
    const p = attentionParams(node);
    const k = sample.k ?? sample.q;
    const axis = p.layout === 'bhsd' ? 2 : 1;
    return (k.shape[axis] ?? 0) + (sample.pastKey?.shape[2] ?? 0);
  })();
  return node.inputs.map((v, k) => {
    if (v === undefined) return undefined;
    const dtype = inferDtype(v);
    if (dtype === undefined) throw new Error(`input ${k} (${v.name}) has no known dtype`);
    if (k === AttentionInput.kvLength) {
      const batch = sample.q.shape[0] ?? 1;
      if (dtype === 'i64') return { dtype, shape: [batch], data: new BigInt64Array(batch).fill(BigInt(keys)) };
      if (dtype === 'i32') return { dtype, shape: [batch], data: new Int32Array(batch).fill(keys) };
      throw new Error(`kvLength input of dtype ${dtype}`);
    }
    const t = byRole[k];
    if (t === undefined) throw new Error(`no calibration tensor for input ${k} (${v.name})`);
    const host = asDtype(t, dtype);
    if (host === undefined) throw new Error(`input ${k} (${v.name}) is ${dtype}, which is not timed here (float32, float16, float64 and bool are)`);
    return host;
  });
}

/** The site as written and in `decision`'s form, as ONNX bytes, with the inputs both read (per sample). */
function sitePair(node: Node, decision: SiteDecision, calibration: SiteCalibration, ctx: MeasureContext): SitePair {
  const samples = calibration.samples.slice(0, MEASURED_SAMPLES);
  if (samples.length === 0) throw new Error('no calibration sample');
  // the inputs keep the model's own (symbolic) shapes: concrete ones would let the runtime fold the index
  // arithmetic of a lowering away, which it cannot do in the model
  const bytes = (d: SiteDecision | undefined) => exportOnnx(newOnnxModel(siteVariant(node, d, ctx.lowering), { opset: ctx.lowering.opset }));
  const feeds = samples.map((sample) => {
    const named: Record<string, HostTensor> = {};
    siteFeeds(node, sample).forEach((t, k) => {
      if (t !== undefined) named[`in${k}`] = t;
    });
    return named;
  });
  return { written: bytes(undefined), chosen: bytes(decision), feeds };
}

const digest = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** What a timing depends on: both models, the inputs' shapes and dtypes, the predicted fallback rate (to 1%). */
function timingKey(pair: SitePair, decision: SiteDecision): string {
  const inputs = pair.feeds.map((f) => Object.entries(f).map(([name, t]) => `${name}:${t.dtype}[${t.shape.join(',')}]`).join(' '));
  return [digest(pair.written), digest(pair.chosen), ...inputs, (decision.fallbackRate ?? 0).toFixed(2)].join('|');
}

/**
 * `decision` for the site `node`, measured (see the comment at the top): as it is with its measuredTime when the
 * chosen form is faster, kept as written when not. A decision that keeps the site is returned as it is; one that
 * cannot be measured (an input dtype not fed here, a model the runtime refuses) too, with a note saying why.
 */
/** Whether a decision rewrites its site (measureDecision times only those). */
export const rewritesSite = (decision: SiteDecision): boolean =>
  decision.reasonDense === undefined && !(decision.groups === undefined && decision.guard === undefined && decision.chosen === decision.before);

export async function measureDecision(node: Node, decision: SiteDecision, calibration: SiteCalibration, ctx: MeasureContext): Promise<SiteDecision> {
  if (!rewritesSite(decision)) return decision;
  let timing: SiteTiming;
  let timedAt: string | undefined;
  try {
    const pair = sitePair(node, decision, calibration, ctx);
    const key = timingKey(pair, decision);
    const known = ctx.timings?.get(key);
    timing = known?.timing ?? (await ctx.timer(pair));
    timedAt = known?.site;
    if (!known) ctx.timings?.set(key, { timing, site: decision.id });
  } catch (e) {
    return { ...decision, notes: [...decision.notes, `not measured in ${ctx.runtime} (the cost model's choice stands): ${(e as Error).message}`] };
  }
  const measuredTime = { runtime: ctx.runtime, ...timing };
  const said =
    `${ms(timing.chosenSeconds)} chosen against ${ms(timing.writtenSeconds)} as written in ${ctx.runtime} (medians of ${timing.rounds} alternating rounds on ${inputsSaid(Math.min(MEASURED_SAMPLES, calibration.samples.length))}` +
    `${timedAt !== undefined ? `, timed at ${timedAt}: the same models, input shapes and predicted fallback` : ''})`;
  if (timing.chosenSeconds <= MEASURED_GAIN * timing.writtenSeconds) return { ...decision, measuredTime, notes: [...decision.notes, `measured ${said}`] };
  const reason = `${decision.chosen} was the cost model's choice (${ms(decision.timeBefore)} -> ${ms(decision.timeAfter)} predicted) but measured ${said}: a rewrite stays only at ${MEASURED_GAIN}x the written time or less`;
  return { ...keepAsWritten(decision, attentionParams(node).spec, reason), measuredTime };
}
