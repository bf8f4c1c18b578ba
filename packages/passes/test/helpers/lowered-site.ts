// One attnopt::Attention site with symbolic batch and sequence lengths, lowered to standard ONNX, exported,
// and run in onnxruntime at a chosen length against referenceAttention (float64). Inputs are drawn in
// [-amp, amp) and rounded to the model's float type first, so the reference sees exactly what onnxruntime
// sees (data-dependent specs hash those values).

import { type AttentionParams, attentionNode, Graph, SplitMix64, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { compareArrays, referenceAttention, type ReferenceInputs, type Tolerance } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { type LowerOptions, lowerAttentionPass } from '../../src/lower/index.js';
import { ortTensor, ortValues, runModel } from './ort.js';

export interface Site {
  readonly params: AttentionParams;
  readonly batch: number;
  /** Extra keys beyond the queries (nk = nq + extraKeys). */
  readonly extraKeys?: number;
  readonly past?: number;
  /** A lengths input: true draws kvLength[b] = T - 5 (b odd) or T; a function gives kvLength[b] from T and b. */
  readonly kvLength?: boolean | ((keys: number, batch: number) => number);
  readonly dtype?: 'f32' | 'f64';
}

export interface Lowered {
  readonly bytes: Uint8Array;
  readonly graph: Graph;
}

/** The site lowered with `options` and exported at options.opset. */
export function lowerSite(s: Site, options: LowerOptions): Lowered {
  const { numHeads: H, kvNumHeads: Hk, headDim: D, vHeadDim: Dv, layout } = s.params;
  const f = s.dtype ?? 'f32';
  const by = (heads: number, seq: string, d: number) =>
    layout === 'bsd' ? ['batch', seq, heads * d] : layout === 'bshd' ? ['batch', seq, heads, d] : ['batch', heads, seq, d];
  const g = new Graph('lowered_site');
  const input = (name: string, dtype: 'f32' | 'f64' | 'i64', shape: (string | number)[]) => g.addInput(new Value(name, tensorType(dtype, shape)));
  const packed = layout === 'packed-qkv';
  const q = packed ? input('q', f, ['batch', 'seq', (H + 2 * Hk) * D]) : input('q', f, by(H, 'seq', D));
  const k = packed ? undefined : input('k', f, by(Hk, 'kseq', D));
  const v = packed ? undefined : input('v', f, by(Hk, 'kseq', Dv));
  const pastKey = s.past ? input('past_key', f, ['batch', Hk, 'past', D]) : undefined;
  const pastValue = s.past ? input('past_value', f, ['batch', Hk, 'past', Dv]) : undefined;
  const kvLength = s.kvLength ? input('kv_length', 'i64', ['batch']) : undefined;
  const y = new Value('y', tensorType(f));
  const pk = new Value('present_key', tensorType(f));
  const pv = new Value('present_value', tensorType(f));
  g.addNode(
    attentionNode(
      s.params,
      { q, ...(k ? { k } : {}), ...(v ? { v } : {}), ...(pastKey ? { pastKey, pastValue: pastValue! } : {}), ...(kvLength ? { kvLength } : {}) },
      { y, presentKey: pk, presentValue: pv },
      'attn',
    ),
  );
  g.outputs.push(y, pk, pv);
  runPipeline(g, [lowerAttentionPass(options)]);
  return { bytes: exportOnnx(newOnnxModel(g, { opset: options.opset })), graph: g };
}

export interface RunResult {
  readonly maxAbsError: number;
  readonly mismatches: string[];
  /** max |reference y| (the scale the error is read against). */
  readonly maxAbsRef: number;
  /** The tolerance used. */
  readonly tol: Tolerance;
}

/** A fixed tolerance, or one derived from the inputs and max |reference y| (conditioning-aware checks). */
export type SiteTolerance = Tolerance | ((inputs: ReferenceInputs, maxAbsRef: number) => Tolerance);

/**
 * Runs the lowered site at query length nq and compares Y with the reference within atol + rtol |ref|; with
 * presentExact also the present K/V outputs with the reference's (past ++ K, past ++ V), exactly.
 */
export async function runSite(l: Lowered, s: Site, nq: number, seed: number, tolerance: SiteTolerance, amp = 1, options: { presentExact?: boolean } = {}): Promise<RunResult> {
  const { numHeads: H, kvNumHeads: Hk, headDim: D, vHeadDim: Dv, layout } = s.params;
  const B = s.batch;
  const f = s.dtype ?? 'f32';
  const nk = layout === 'packed-qkv' ? nq : nq + (s.extraKeys ?? 0);
  const rng = new SplitMix64(seed);
  const round = f === 'f32' ? Math.fround : (x: number) => x;
  const rand = (n: number) => Array.from({ length: n }, () => round(amp * (rng.nextFloat() * 2 - 1)));
  const by = (heads: number, seq: number, d: number): number[] =>
    layout === 'bsd' ? [B, seq, heads * d] : layout === 'bshd' ? [B, seq, heads, d] : [B, heads, seq, d];
  const feeds: Record<string, ReturnType<typeof ortTensor>> = {};
  const data: Record<string, { shape: number[]; values: number[] }> = {};
  const put = (name: string, shape: number[], values = rand(shape.reduce((a, c) => a * c, 1)), dtype: 'f32' | 'f64' | 'i64' = f) => {
    data[name] = { shape, values };
    feeds[name] = ortTensor(dtype, shape, values);
  };
  if (layout === 'packed-qkv') put('q', [B, nq, (H + 2 * Hk) * D]);
  else {
    put('q', by(H, nq, D));
    put('k', by(Hk, nk, D));
    put('v', by(Hk, nk, Dv));
  }
  if (s.past) {
    put('past_key', [B, Hk, s.past, D]);
    put('past_value', [B, Hk, s.past, Dv]);
  }
  const total = (s.past ?? 0) + nk;
  const lengthOf = typeof s.kvLength === 'function' ? s.kvLength : (keys: number, b: number) => Math.max(1, keys - (b % 2) * 5);
  if (s.kvLength) put('kv_length', [B], Array.from({ length: B }, (_, b) => lengthOf(total, b)), 'i64');
  const out = await runModel(l.bytes, feeds);
  const t = (name: string) => ({ shape: data[name]!.shape, data: Float64Array.from(data[name]!.values) });
  const ref: ReferenceInputs = {
    q: t('q'),
    ...(layout !== 'packed-qkv' ? { k: t('k'), v: t('v') } : {}),
    ...(s.past ? { pastKey: t('past_key'), pastValue: t('past_value') } : {}),
    ...(s.kvLength ? { kvLength: data.kv_length!.values } : {}),
  };
  const want = referenceAttention(s.params, ref);
  const maxAbsRef = want.y.data.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
  const tol = typeof tolerance === 'function' ? tolerance(ref, maxAbsRef) : tolerance;
  const cmp = compareArrays(ortValues(out.y!), want.y.data, tol);
  const mismatches = cmp.mismatches.map((m) => `y[${m.index}] = ${m.actual}, reference ${m.expected}`);
  if (options.presentExact) {
    for (const [name, ref] of [['present_key', want.presentKey], ['present_value', want.presentValue]] as const) {
      const got = out[name]!;
      if (got.dims.join() !== ref.shape.join()) mismatches.push(`${name} shape [${got.dims.join(', ')}], reference [${ref.shape.join(', ')}]`);
      else mismatches.push(...compareArrays(ortValues(got), ref.data, { atol: 0, rtol: 0 }).mismatches.map((m) => `${name}[${m.index}] = ${m.actual}, reference ${m.expected}`));
    }
  }
  return {
    maxAbsError: cmp.maxAbsError,
    mismatches,
    maxAbsRef,
    tol,
  };
}
