// The entry point for other compilers: check an attention kernel against the float64 reference on generated
// problems, and get fast-check's report with a shrunk counterexample when it fails.
//
//   import { checkAttentionKernel } from '@attnopt/properties';
//   const result = checkAttentionKernel((problem) => myKernel(problem.params, problem.inputs), { dtype: 'float32' });
//   if (!result.ok) console.error(result.report);
//
// A problem is { params, inputs } exactly as `referenceAttention(params, inputs)` takes them (@attnopt/reference):
// params: numHeads, kvNumHeads, headDim, vHeadDim, scale, softcap, layout ('bsd' | 'bhsd' | 'bshd' | 'packed-qkv'),
// spec (which keys each query sees); inputs: q, k, v in that layout as row-major float64 tensors { shape, data }
// (packed-qkv: q only), optional bias (float additive or boolean keep-mask, broadcast to [batch, heads, nq, nk]),
// optional pastKey / pastValue ([batch, kvNumHeads, past, dim]), and with the option `kvLength` an optional
// kvLength (per batch: keys at or past it are padding, which may hold NaN and must not reach Y; without past keys
// the spec's past offset is kvLength[b] - nq). The kernel returns Y's data in the layout of Q
// (packed-qkv: bsd), as `referenceAttention(...).y.data`. A fully masked row must give 0 (ONNX `Attention`).
// For float32 / float16 every input value is representable in that dtype (rounded before the reference runs),
// so the kernel and the reference see the same numbers.
// Comparison: |y - ref| <= atol + rtol |ref| elementwise; NaN and infinities compared exactly (reference closeTo).

import fc from 'fast-check';
import { type AttentionSpec, dense, floatToHalf, halfToFloat } from '@attnopt/ir';
import { compareArrays, type ReferenceInputs, referenceAttention, type Tolerance } from '@attnopt/reference';
import { type AttentionProblem, type AttentionProblemOptions, attentionProblemArbitrary } from './arbitraries/attention-inputs.js';
import { maskSpecArbitrary } from './arbitraries/spec.js';

export type KernelDType = 'float64' | 'float32' | 'float16';

/** Default tolerances per dtype of the kernel under test (against the float64 reference). */
export const KERNEL_TOLERANCES: Readonly<Record<KernelDType, Tolerance>> = {
  float64: { atol: 1e-10, rtol: 1e-10 },
  float32: { atol: 1e-5, rtol: 1e-4 },
  // float16 inputs (rounded before the reference runs), float32 accumulation, output rounded to float16: the
  // float32 tolerance plus half an f16 ulp (2^-11 relative, 2^-25 absolute below the normal range), with margin
  float16: { atol: 2e-5, rtol: 1e-3 },
};

/** Default maxLogit: scores up to 200 in one problem in three, past float32's exp overflow at 88.7. */
export const DEFAULT_MAX_LOGIT = 200;

/** What the kernel receives: the params and inputs of `referenceAttention`. */
export interface KernelProblem {
  readonly params: AttentionProblem['params'];
  readonly inputs: ReferenceInputs;
}

export type AttentionKernel = (problem: KernelProblem) => Float32Array | Float64Array;

export interface KernelCheckOptions extends AttentionProblemOptions {
  /** The dtype the kernel computes in: picks the default tolerance and rounds the inputs to it (default float32). */
  readonly dtype?: KernelDType;
  /** Overrides the dtype's tolerance. */
  readonly tolerance?: Tolerance;
  /**
   * Widens the scores: one problem in three gets Q scaled so that its largest |scale q . k| is this (e.g. 200,
   * past float32's exp overflow at 88.7), so a kernel without max-subtraction fails (the bound
   * |scale| max|q| max|k| d is set to it, so the largest score is at most this). Default DEFAULT_MAX_LOGIT; 0:
   * scores as drawn (values in [-1, 1]). The tolerance stays the dtype's: a float32 kernel computing q . k in
   * float32 adds about d ulp(maxLogit) to each score, so keep maxLogit x d x 2^-24 well under rtol.
   */
  readonly maxLogit?: number;
  /** fast-check runs (default 200) and seed (default: fast-check's, reported on failure). */
  readonly numRuns?: number;
  readonly seed?: number;
}

const roundTo = (dtype: KernelDType) =>
  dtype === 'float64' ? (x: number) => x : dtype === 'float32' ? Math.fround : (x: number) => halfToFloat(floatToHalf(x));

function roundProblem(p: AttentionProblem, dtype: KernelDType): KernelProblem {
  if (dtype === 'float64') return { params: p.params, inputs: p.inputs };
  const r = roundTo(dtype);
  const t = <T extends { shape: readonly number[]; data: Float64Array } | undefined>(x: T): T =>
    (x === undefined ? x : { shape: x.shape, data: x.data.map(r) }) as T;
  const bias = p.inputs.bias;
  const inputs: ReferenceInputs = {
    q: t(p.inputs.q),
    ...(p.inputs.k ? { k: t(p.inputs.k) } : {}),
    ...(p.inputs.v ? { v: t(p.inputs.v) } : {}),
    ...(bias ? { bias: bias.data instanceof Float64Array ? t({ shape: bias.shape, data: bias.data }) : bias } : {}),
    ...(p.inputs.pastKey && p.inputs.pastValue ? { pastKey: t(p.inputs.pastKey), pastValue: t(p.inputs.pastValue) } : {}),
    ...(p.inputs.kvLength ? { kvLength: p.inputs.kvLength } : {}),
  };
  return { params: p.params, inputs };
}

/** Default specs: dense and index-only mask specs (no data-dependent leaves, no low-rank forms). */
export function defaultKernelSpecs(maxLen = 16): fc.Arbitrary<AttentionSpec> {
  return fc.oneof(fc.constant<AttentionSpec>(dense), maskSpecArbitrary({ maxLen, dataDependent: false }));
}

/**
 * The property behind checkAttentionKernel: for any generated problem, the kernel's Y matches
 * referenceAttention(params, inputs).y within the tolerance (default per dtype, KERNEL_TOLERANCES).
 */
export function attentionKernelProperty(kernel: AttentionKernel, options: KernelCheckOptions = {}): fc.IPropertyWithHooks<[AttentionProblem]> {
  const dtype = options.dtype ?? 'float32';
  const tol = options.tolerance ?? KERNEL_TOLERANCES[dtype];
  const maxLen = options.maxLen ?? 16;
  const base = attentionProblemArbitrary({ range: 1, ...options, maxLen, spec: options.spec ?? defaultKernelSpecs(maxLen) });
  const maxLogit = options.maxLogit ?? DEFAULT_MAX_LOGIT;
  const arb = maxLogit > 0 ? fc.tuple(base, fc.integer({ min: 0, max: 2 })).map(([p, pick]) => (pick === 0 ? withLargeLogits(p, maxLogit) : p)) : base;
  return fc.property(arb, (raw) => {
    const problem = roundProblem(raw, dtype);
    const expected = referenceAttention(problem.params, problem.inputs).y.data;
    const actual = kernel(problem);
    if (actual.length !== expected.length) throw new Error(`kernel returned ${actual.length} values, expected ${expected.length}`);
    const cmp = compareArrays(actual, expected, tol);
    if (!cmp.ok) {
      throw new Error(
        `kernel differs from the reference beyond atol ${tol.atol}, rtol ${tol.rtol}: ${JSON.stringify(cmp.mismatches)} (max abs error ${cmp.maxAbsError})`,
      );
    }
  });
}

/** The problem with Q scaled so that max |scale q . k| over its heads is `maxLogit` (unchanged when all scores are 0). */
function withLargeLogits(p: AttentionProblem, maxLogit: number): AttentionProblem {
  const { q, k } = p.inputs;
  if (!k) return p; // packed-qkv: Q holds K and V too; leave it
  // the largest |q| and |k| (a NaN padding key left out: `>` is false for it)
  let big = 0;
  for (let t = 0; t < q.data.length; t++) if (Math.abs(q.data[t]!) > big) big = Math.abs(q.data[t]!);
  let bigK = 0;
  for (let t = 0; t < k.data.length; t++) if (Math.abs(k.data[t]!) > bigK) bigK = Math.abs(k.data[t]!);
  const scale = p.params.scale;
  const reach = Math.abs(scale) * big * bigK * p.params.headDim; // >= every |scale q . k|
  if (!(reach > 0)) return p;
  const factor = maxLogit / reach;
  return { ...p, inputs: { ...p.inputs, q: { shape: q.shape, data: q.data.map((x) => x * factor) } } };
}

export interface KernelCheckResult {
  readonly ok: boolean;
  /** fast-check's report (seed, path, shrunk counterexample, error), or undefined when ok. */
  readonly report: string | undefined;
  /** The shrunk failing problem. */
  readonly counterexample: KernelProblem | undefined;
  readonly details: fc.RunDetails<[AttentionProblem]>;
}

/** Runs the kernel against the reference on generated problems; never throws for a failing kernel. */
export function checkAttentionKernel(kernel: AttentionKernel, options: KernelCheckOptions = {}): KernelCheckResult {
  const details = fc.check(attentionKernelProperty(kernel, options), {
    numRuns: options.numRuns ?? 200,
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
  });
  const ce = details.counterexample?.[0];
  return {
    ok: !details.failed,
    report: details.failed
      ? `${fc.defaultReportMessage(details) ?? ''}\n${details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)}`
      : undefined,
    counterexample: ce ? roundProblem(ce, options.dtype ?? 'float32') : undefined,
    details,
  };
}

/** checkAttentionKernel that throws fast-check's report (for use inside a test). */
export function assertAttentionKernel(kernel: AttentionKernel, options: KernelCheckOptions = {}): void {
  const r = checkAttentionKernel(kernel, options);
  if (!r.ok) throw new Error(r.report);
}
