// The Attention op: attnopt's first-class attention site.
//   Y = softmax(softcap(scale * Q Kᵀ) + bias, restricted to the keys `spec` keeps) V
// with GQA/MQA (numHeads query heads share kvNumHeads key/value heads), any head size, optional
// additive (or boolean) bias, past K/V and per-batch valid key lengths. In the bhsd layout the head sizes may
// be left to run time (headDim / vHeadDim 0): every op then reads D from the last axis of Q, K, V.

import { type Attr, floatAttr, intAttr, specAttr, stringAttr } from './attributes.js';
import { isDType, type DType } from './dtype.js';
import { Node, type Value } from './graph.js';
import { type AttentionSpec, validateSpec } from './spec/spec.js';

export const ATTNOPT_DOMAIN = 'attnopt';
export const ATTENTION_OP = 'Attention';

/**
 * How Q, K, V (and the output) are laid out:
 * - `bsd`: [batch, seq, heads * headDim] (ONNX 3D inputs);
 * - `bhsd`: [batch, heads, seq, headDim] (ONNX 4D inputs);
 * - `bshd`: [batch, seq, heads, headDim];
 * - `packed-qkv`: Q holds [batch, seq, (numHeads + 2 kvNumHeads) * headDim], K and V are absent.
 */
export type AttentionLayout = 'bsd' | 'bhsd' | 'bshd' | 'packed-qkv';
export const ATTENTION_LAYOUTS: readonly AttentionLayout[] = ['bsd', 'bhsd', 'bshd', 'packed-qkv'];

/**
 * Which stage of the score pipeline the optional `scores` output holds, in pipeline order: `qk` (scale Q Kᵀ),
 * `softcapped` (after the softcap; equal to qk without one), `masked` (after the bias and the spec's mask:
 * the softmax input), `softmax` (the probabilities).
 */
export type ScoresMode = 'qk' | 'softcapped' | 'masked' | 'softmax';
export const SCORES_MODES: readonly ScoresMode[] = ['qk', 'softcapped', 'masked', 'softmax'];

/**
 * The ScoresMode that reproduces ONNX `Attention`'s qk_matmul_output_mode as the ONNX reference
 * implementation and node tests compute it (the softcap comes before the mask): modes 0 and 1 hold the
 * softcapped scores before any mask, 2 the softmax input, 3 the softmax.
 */
export function scoresModeFromOnnx(mode: number): ScoresMode {
  switch (mode) {
    case 0:
    case 1:
      return 'softcapped';
    case 2:
      return 'masked';
    case 3:
      return 'softmax';
    default:
      throw new Error(`ONNX Attention qk_matmul_output_mode must be 0..3, got ${mode}`);
  }
}

export interface AttentionParams {
  readonly numHeads: number;
  readonly kvNumHeads: number;
  /** Head size of Q and K; RUNTIME_HEAD_DIM (0, bhsd only) = read from the last axis of Q and K at run time. */
  readonly headDim: number;
  /** Head size of V and of the output (usually headDim); RUNTIME_HEAD_DIM (0, bhsd only) = read from V. */
  readonly vHeadDim: number;
  /** Multiplies Q Kᵀ; usually 1 / sqrt(headDim). */
  readonly scale: number;
  /** softcap * tanh(x / softcap) on the scaled scores before the bias; 0 = none. */
  readonly softcap: number;
  readonly layout: AttentionLayout;
  readonly spec: AttentionSpec;
  readonly scoresMode?: ScoresMode;
  /** The dtype the softmax is computed in, when it differs from the inputs'. */
  readonly softmaxPrecision?: DType;
  /**
   * Guarded tier (BOUNDS.md (b')): per query row, bound the mass the spec drops from per-block key summaries and
   * recompute densely (over every key the model's own mask allows) each row whose output bound exceeds `budget`.
   */
  readonly guard?: AttentionGuard;
}

/**
 * Run-time certificate of a guarded site: output error budget (max abs per coordinate), key block size of the
 * summaries, and the site's own spec before sparsification (what a falling-back row attends to; `spec` keeps a
 * subset of it).
 */
export interface AttentionGuard {
  readonly budget: number;
  readonly blockSize: number;
  readonly baseline: AttentionSpec;
  /**
   * The block summaries the score bound takes: 'box-ball' (the default when absent) the smaller per (row, block) of
   * Quest's box bound and the ball around the box centre; 'box' the box alone, cheaper to compute where the ball
   * tightened no row's certificate on the calibration data. Both are sound for every input; a kernel may also take
   * the ball under 'box' (only tighter).
   */
  readonly summaries?: GuardSummaries;
  /**
   * The kept keys' log Z_S the certificate divides by: 'kept-sum' (the default when absent) their log-sum-exp, read
   * as the largest kept logit minus the log of its softmax probability; 'max-logit' the largest kept logit alone, a
   * lower bound looser by -log of that probability, one pass over the sparse form's probabilities cheaper, taken
   * where it recomputed no calibration row the log-sum-exp certified. Both are sound for every input; a kernel may
   * take the log-sum-exp under 'max-logit' (only tighter).
   */
  readonly logZ?: GuardLogZ;
}

export const GUARD_SUMMARY_SETS = ['box', 'box-ball'] as const;
export type GuardSummaries = (typeof GUARD_SUMMARY_SETS)[number];
export const GUARD_LOG_Z = ['kept-sum', 'max-logit'] as const;
export type GuardLogZ = (typeof GUARD_LOG_Z)[number];

/** Input positions of the Attention op (absent optional inputs are `undefined`). */
export const AttentionInput = { q: 0, k: 1, v: 2, bias: 3, pastKey: 4, pastValue: 5, kvLength: 6 } as const;
/** Output positions of the Attention op. */
export const AttentionOutput = { y: 0, presentKey: 1, presentValue: 2, scores: 3 } as const;

export interface AttentionInputs {
  readonly q: Value;
  readonly k?: Value;
  readonly v?: Value;
  /** Additive float bias or boolean keep-mask, broadcastable to [batch, heads, nq, nk]. */
  readonly bias?: Value;
  readonly pastKey?: Value;
  readonly pastValue?: Value;
  /** [batch] int64: keys at index >= kvLength[b] are padding (ONNX nonpad_kv_seqlen). */
  readonly kvLength?: Value;
}

export interface AttentionOutputs {
  readonly y: Value;
  readonly presentKey?: Value;
  readonly presentValue?: Value;
  readonly scores?: Value;
}

/** headDim / vHeadDim value meaning "the head size is read from the inputs at run time" (bhsd layout only). */
export const RUNTIME_HEAD_DIM = 0;

/** The words every consumer that needs a static head size uses to refuse RUNTIME_HEAD_DIM. */
export const RUNTIME_HEAD_DIM_REASON = 'head size is only known at run time';

/** Whether headDim or vHeadDim is left to run time (RUNTIME_HEAD_DIM). */
export function hasRuntimeHeadDim(p: Pick<AttentionParams, 'headDim' | 'vHeadDim'>): boolean {
  return p.headDim === RUNTIME_HEAD_DIM || p.vHeadDim === RUNTIME_HEAD_DIM;
}

/**
 * Throws `<where>: head size is only known at run time ...` when `p` leaves a head size to run time; for the
 * consumers that need static head sizes (kernels, cost, sparsification). `what` says what needs them.
 */
export function requireStaticHeadDims(p: Pick<AttentionParams, 'headDim' | 'vHeadDim'>, where: string, what: string): void {
  if (!hasRuntimeHeadDim(p)) return;
  throw new Error(
    `${where}: ${RUNTIME_HEAD_DIM_REASON} (headDim ${p.headDim}, vHeadDim ${p.vHeadDim}: read from the inputs), and ${what} needs a static head size`,
  );
}

export function validateAttentionParams(p: AttentionParams): AttentionParams {
  const fail = (msg: string): never => {
    throw new Error(`invalid Attention: ${msg}`);
  };
  const positive = (name: string, x: number) => {
    if (!Number.isSafeInteger(x) || x < 1) fail(`${name} must be an integer >= 1, got ${x}`);
  };
  positive('numHeads', p.numHeads);
  positive('kvNumHeads', p.kvNumHeads);
  const headSize = (name: string, x: number) => {
    if (x === RUNTIME_HEAD_DIM) {
      if (p.layout !== 'bhsd') fail(`${name} 0 (${RUNTIME_HEAD_DIM_REASON}) needs the bhsd layout, got ${String(p.layout)}`);
      return;
    }
    if (!Number.isSafeInteger(x) || x < 1) fail(`${name} must be an integer >= 1 (or 0 in the bhsd layout: read at run time), got ${x}`);
  };
  headSize('headDim', p.headDim);
  headSize('vHeadDim', p.vHeadDim);
  if (p.numHeads % p.kvNumHeads !== 0) fail(`numHeads ${p.numHeads} is not a multiple of kvNumHeads ${p.kvNumHeads}`);
  if (!Number.isFinite(p.scale)) fail(`scale must be finite, got ${p.scale}`);
  if (!(p.softcap >= 0) || !Number.isFinite(p.softcap)) fail(`softcap must be finite and >= 0, got ${p.softcap}`);
  if (!ATTENTION_LAYOUTS.includes(p.layout)) fail(`unknown layout ${String(p.layout)}`);
  if (p.layout === 'packed-qkv' && p.vHeadDim !== p.headDim) fail('packed-qkv needs vHeadDim == headDim');
  if (p.scoresMode !== undefined && !SCORES_MODES.includes(p.scoresMode)) fail(`unknown scoresMode ${String(p.scoresMode)}`);
  if (p.guard !== undefined) {
    if (!(p.guard.budget >= 0) || !Number.isFinite(p.guard.budget)) fail(`guard budget must be finite and >= 0, got ${p.guard.budget}`);
    if (!Number.isSafeInteger(p.guard.blockSize) || p.guard.blockSize < 1) fail(`guard blockSize must be an integer >= 1, got ${p.guard.blockSize}`);
    if (p.guard.summaries !== undefined && !GUARD_SUMMARY_SETS.includes(p.guard.summaries)) fail(`unknown guard summaries ${String(p.guard.summaries)}`);
    if (p.guard.logZ !== undefined && !GUARD_LOG_Z.includes(p.guard.logZ)) fail(`unknown guard logZ ${String(p.guard.logZ)}`);
    validateSpec(p.guard.baseline);
  }
  validateSpec(p.spec);
  return p;
}

/** The attributes of an Attention node carrying `params`. */
export function attentionAttrs(params: AttentionParams): Map<string, Attr> {
  const p = validateAttentionParams(params);
  const attrs = new Map<string, Attr>([
    ['numHeads', intAttr(p.numHeads)],
    ['kvNumHeads', intAttr(p.kvNumHeads)],
    ['headDim', intAttr(p.headDim)],
    ['vHeadDim', intAttr(p.vHeadDim)],
    ['scale', floatAttr(p.scale)],
    ['softcap', floatAttr(p.softcap)],
    ['layout', stringAttr(p.layout)],
    ['spec', specAttr(p.spec)],
  ]);
  if (p.scoresMode !== undefined) attrs.set('scoresMode', stringAttr(p.scoresMode));
  if (p.softmaxPrecision !== undefined) attrs.set('softmaxPrecision', stringAttr(p.softmaxPrecision));
  if (p.guard !== undefined) {
    attrs.set('guardBudget', floatAttr(p.guard.budget));
    attrs.set('guardBlockSize', intAttr(p.guard.blockSize));
    attrs.set('guardBaseline', specAttr(p.guard.baseline));
    if (p.guard.summaries !== undefined) attrs.set('guardSummaries', stringAttr(p.guard.summaries));
    if (p.guard.logZ !== undefined) attrs.set('guardLogZ', stringAttr(p.guard.logZ));
  }
  return attrs;
}

/** A new Attention node (not yet in a graph). */
export function attentionNode(
  params: AttentionParams,
  inputs: AttentionInputs,
  outputs: AttentionOutputs,
  name = '',
): Node {
  const ins = [inputs.q, inputs.k, inputs.v, inputs.bias, inputs.pastKey, inputs.pastValue, inputs.kvLength];
  while (ins.length > 1 && ins[ins.length - 1] === undefined) ins.pop();
  const outs = [outputs.y, outputs.presentKey, outputs.presentValue, outputs.scores];
  while (outs.length > 1 && outs[outs.length - 1] === undefined) outs.pop();
  if (outs.some((o) => o === undefined)) {
    throw new Error('Attention outputs: an omitted output cannot precede a present one');
  }
  return new Node({
    domain: ATTNOPT_DOMAIN,
    op: ATTENTION_OP,
    name,
    inputs: ins,
    outputs: outs as Value[],
    attrs: attentionAttrs(params),
  });
}

export function isAttention(node: Node): boolean {
  return node.domain === ATTNOPT_DOMAIN && node.op === ATTENTION_OP;
}

/** Reads and validates the parameters of an Attention node; errors name the node. */
export function attentionParams(node: Node): AttentionParams {
  const where = node.describe();
  const get = (name: string): Attr => {
    const a = node.attrs.get(name);
    if (!a) throw new Error(`${where}: missing attribute ${name}`);
    return a;
  };
  const int = (name: string): number => {
    const a = get(name);
    if (a.type !== 'int') throw new Error(`${where}: attribute ${name} must be an int, got ${a.type}`);
    return Number(a.value);
  };
  const float = (name: string): number => {
    const a = get(name);
    if (a.type !== 'float') throw new Error(`${where}: attribute ${name} must be a float, got ${a.type}`);
    return a.value;
  };
  const str = (name: string): string => {
    const a = get(name);
    if (a.type !== 'string') throw new Error(`${where}: attribute ${name} must be a string, got ${a.type}`);
    return a.value;
  };
  const specA = get('spec');
  if (specA.type !== 'spec') throw new Error(`${where}: attribute spec must be a spec, got ${specA.type}`);
  const guardOf = (): AttentionGuard => {
    const baseline = get('guardBaseline');
    if (baseline.type !== 'spec') throw new Error(`${where}: attribute guardBaseline must be a spec, got ${baseline.type}`);
    const summaries = node.attrs.has('guardSummaries') ? str('guardSummaries') : undefined;
    if (summaries !== undefined && !(GUARD_SUMMARY_SETS as readonly string[]).includes(summaries)) throw new Error(`${where}: unknown guardSummaries ${summaries}`);
    const logZ = node.attrs.has('guardLogZ') ? str('guardLogZ') : undefined;
    if (logZ !== undefined && !(GUARD_LOG_Z as readonly string[]).includes(logZ)) throw new Error(`${where}: unknown guardLogZ ${logZ}`);
    return {
      budget: float('guardBudget'),
      blockSize: int('guardBlockSize'),
      baseline: baseline.value,
      ...(summaries !== undefined ? { summaries: summaries as GuardSummaries } : {}),
      ...(logZ !== undefined ? { logZ: logZ as GuardLogZ } : {}),
    };
  };
  const precision = node.attrs.has('softmaxPrecision') ? str('softmaxPrecision') : undefined;
  if (precision !== undefined && !isDType(precision)) throw new Error(`${where}: unknown softmaxPrecision ${precision}`);
  const params: AttentionParams = {
    numHeads: int('numHeads'),
    kvNumHeads: int('kvNumHeads'),
    headDim: int('headDim'),
    vHeadDim: int('vHeadDim'),
    scale: float('scale'),
    softcap: float('softcap'),
    layout: str('layout') as AttentionLayout,
    spec: specA.value,
    ...(node.attrs.has('scoresMode') ? { scoresMode: str('scoresMode') as ScoresMode } : {}),
    ...(precision !== undefined ? { softmaxPrecision: precision } : {}),
    ...(node.attrs.has('guardBudget') ? { guard: guardOf() } : {}),
  };
  try {
    return validateAttentionParams(params);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
}

/** Query heads per key/value head (1 for MHA, numHeads for MQA). */
export function groupSize(p: AttentionParams): number {
  return p.numHeads / p.kvNumHeads;
}

/** The key/value head that query head h reads (heads of a group are consecutive, as ONNX defines). */
export function kvHeadOf(p: AttentionParams, h: number): number {
  return Math.floor(h / groupSize(p));
}
