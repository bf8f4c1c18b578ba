// Running the attention kernel: host-side preparation (layout strides, present K/V, bias encoding, the
// block lists from the spec's block classification, the dispatch plan) and execution on a WgslRuntime.

import {
  type AttentionParams,
  BlockClass,
  classifyBlockRow,
  floatToHalf,
  halfToFloat,
  isDataDependent,
  isLowRank,
  type MaskDims,
  type MaskSpec,
  validateAttentionParams,
} from '@attnopt/ir';
import {
  attentionProgram,
  type KernelConfig,
  kernelConfig,
  type KernelLimits,
  MASKED_BIAS_FILL,
  type StorageDType,
} from './attention-program.js';
import { prepareDataLeaves } from './data-leaves.js';
import { prepareLowRank } from './low-rank.js';
import type { WgslRuntime } from './runtime.js';
import { type Dispatch, dispatchPlan, encodeSteps, runSteps } from './sequence.js';
import type { WgslProgram } from './wgsl/builder.js';

export { type Dispatch, dispatchPlan } from './sequence.js';

/** A row-major host tensor; a boolean keep-mask has Uint8Array data (1 = keep). */
export interface HostTensor {
  readonly shape: readonly number[];
  readonly data: ArrayLike<number>;
}

/** The inputs of `referenceAttention` (@attnopt/reference), any numeric arrays. */
export interface WgslAttentionInputs {
  readonly q: HostTensor;
  readonly k?: HostTensor;
  readonly v?: HostTensor;
  readonly bias?: HostTensor;
  /** [batch, kvNumHeads, past, dim] whatever the layout. */
  readonly pastKey?: HostTensor;
  readonly pastValue?: HostTensor;
  readonly kvLength?: ArrayLike<number>;
}

export interface AttentionRunOptions {
  /** Storage dtype of Q, K, V and Y (accumulation is always f32). Default f32. */
  readonly dtype?: StorageDType;
  /** Limits to plan for (default: the device's); must not exceed the device's. */
  readonly limits?: KernelLimits;
  /**
   * The subgroup kernel (default: when the device offers the `subgroups` feature) or the tiled kernel.
   * Low-rank specs run as kernel sequences and ignore it.
   */
  readonly subgroups?: boolean;
}

/** Element strides of a (batch, head, row, column) tensor: base + b * sb + h * sh + row * ss + column. */
export interface Strides {
  base: number;
  sb: number;
  sh: number;
  ss: number;
}

/** The problem's extents and element strides in its layout. */
export interface AttentionShape {
  readonly batch: number;
  readonly nq: number;
  /** This call's keys (without past). */
  readonly nkNew: number;
  readonly past: number;
  readonly q: Strides;
  readonly k: Strides;
  readonly v: Strides;
  readonly y: Strides;
}

/** Extents and strides of Q, K, V and Y for params.layout (packed-qkv: Q holds Q, K, V; Y is bsd). */
export function attentionShape(p: AttentionParams, inputs: WgslAttentionInputs): AttentionShape {
  const { numHeads: H, kvNumHeads: G, headDim: d, vHeadDim: dv } = p;
  const qs = inputs.q.shape;
  const batch = qs[0]!;
  const past = inputs.pastKey?.shape[2] ?? 0;
  const seqMajor = (heads: number, dim: number, s: number, base = 0, row = heads * dim): Strides => ({ base, sb: s * row, sh: dim, ss: row });
  const headMajor = (heads: number, dim: number, s: number): Strides => ({ base: 0, sb: heads * s * dim, sh: s * dim, ss: dim });
  const need = (t: HostTensor | undefined, name: string): HostTensor => {
    if (!t) throw new Error(`WGSL attention: layout ${p.layout} needs input ${name}`);
    return t;
  };
  switch (p.layout) {
    case 'packed-qkv': {
      const nq = qs[1]!;
      const row = (H + 2 * G) * d;
      if (qs[2] !== row) throw new Error(`WGSL attention: packed Q needs last dimension ${row}, got ${qs[2]}`);
      return {
        batch,
        nq,
        nkNew: nq,
        past,
        q: seqMajor(H, d, nq, 0, row),
        k: seqMajor(G, d, nq, H * d, row),
        v: seqMajor(G, d, nq, (H + G) * d, row),
        y: seqMajor(H, dv, nq),
      };
    }
    case 'bhsd': {
      const nq = qs[2]!;
      const nk = need(inputs.k, 'k').shape[2]!;
      return { batch, nq, nkNew: nk, past, q: headMajor(H, d, nq), k: headMajor(G, d, nk), v: headMajor(G, dv, nk), y: headMajor(H, dv, nq) };
    }
    case 'bsd':
    case 'bshd': {
      const nq = qs[1]!;
      const nk = need(inputs.k, 'k').shape[1]!;
      return { batch, nq, nkNew: nk, past, q: seqMajor(H, d, nq), k: seqMajor(G, d, nk), v: seqMajor(G, dv, nk), y: seqMajor(H, dv, nq) };
    }
  }
}

/** Per batch and query block, the key blocks to visit: entry = keyBlock * 2 + (mask work needed ? 1 : 0). */
export interface BlockLists {
  /** [batch * nQBlocks + 1] offsets into entries. */
  readonly start: Uint32Array<ArrayBuffer>;
  readonly entries: Uint32Array<ArrayBuffer>;
  /** Per batch: valid keys (kvLength) and the spec's `past` offset, interleaved. */
  readonly batchInfo: Int32Array<ArrayBuffer>;
  /** Key blocks skipped as Empty (or past kvLength), and visited Full (mask-free) and Partial. */
  readonly skipped: number;
  readonly full: number;
  readonly partial: number;
}

/**
 * Block lists from classifyBlockRow: Empty blocks are dropped, Full blocks run mask-free, Partial blocks
 * evaluate the predicate (every block, for a spec with data-dependent leaves). kvLength folds in: blocks at or past kvLength[b] are dropped, a block straddling
 * it needs the mask. The spec's `past` per batch follows referenceAttention: past length when pastKey is
 * given, else kvLength[b] - nq when kvLength is given, else 0.
 */
export function blockLists(
  spec: MaskSpec,
  dims: { batch: number; nq: number; nk: number; past: number; hasPast: boolean; kvLength?: ArrayLike<number> },
  blockQ: number,
  blockK: number,
): BlockLists {
  const nQB = Math.ceil(dims.nq / blockQ);
  const nKB = Math.ceil(dims.nk / blockK);
  const start = new Uint32Array(dims.batch * nQB + 1);
  const entries: number[] = [];
  const batchInfo = new Int32Array(2 * dims.batch);
  let skipped = 0;
  let full = 0;
  let partial = 0;
  // Data-dependent key sets are known on the device only: every block is visited with the predicate.
  const dataDependent = isDataDependent(spec);
  for (let b = 0; b < dims.batch; b++) {
    const valid = dims.kvLength === undefined ? dims.nk : dims.kvLength[b]!;
    const past = dims.hasPast ? dims.past : dims.kvLength !== undefined ? valid - dims.nq : 0;
    batchInfo[2 * b] = valid;
    batchInfo[2 * b + 1] = past;
    const md: MaskDims = { nq: dims.nq, nk: dims.nk, past };
    for (let r = 0; r < nQB; r++) {
      const cls =
        spec.kind === 'dense'
          ? new Uint8Array(nKB).fill(BlockClass.Full)
          : dataDependent
            ? new Uint8Array(nKB).fill(BlockClass.Partial)
            : classifyBlockRow(spec, r, blockQ, blockK, md);
      for (let c = 0; c < nKB; c++) {
        if (cls[c] === BlockClass.Empty || c * blockK >= valid) {
          skipped++;
          continue;
        }
        const straddles = Math.min(dims.nk, (c + 1) * blockK) > valid;
        const needMask = cls[c] === BlockClass.Partial || straddles;
        if (needMask) partial++;
        else full++;
        entries.push(c * 2 + (needMask ? 1 : 0));
      }
      start[b * nQB + r + 1] = entries.length;
    }
  }
  return { start, entries: Uint32Array.from(entries), batchInfo, skipped, full, partial };
}

/** The `blocks` buffer of the attention kernel: CSR starts, entries at entriesBase, batch info at infoBase. */
export function packBlocks(lists: BlockLists): { data: Uint32Array<ArrayBuffer>; entriesBase: number; infoBase: number } {
  const entriesBase = lists.start.length;
  const infoBase = entriesBase + lists.entries.length;
  const data = new Uint32Array(infoBase + lists.batchInfo.length);
  data.set(lists.start, 0);
  data.set(lists.entries, entriesBase);
  data.set(new Uint32Array(lists.batchInfo.buffer, lists.batchInfo.byteOffset, lists.batchInfo.length), infoBase);
  return { data, entriesBase, infoBase };
}

/** What a run will do: config, program, dispatches and buffer sizes, all within `limits`. */
export interface AttentionPlan {
  readonly config: KernelConfig;
  readonly program: WgslProgram;
  readonly shape: AttentionShape;
  readonly nk: number;
  readonly headSplits: number;
  readonly nQBlocks: number;
  readonly workgroups: number;
  readonly dispatches: readonly Dispatch[];
}

/** Plans a run under `limits` (pure: no device needed). Throws when a tensor exceeds maxStorageBufferBindingSize. */
export function planAttention(
  params: AttentionParams,
  inputs: WgslAttentionInputs,
  options: { dtype: StorageDType; limits: KernelLimits; subgroups?: boolean },
): AttentionPlan {
  const p = validateAttentionParams(params);
  const shape = attentionShape(p, inputs);
  const config = kernelConfig(p, {
    dtype: options.dtype,
    bias: inputs.bias !== undefined,
    limits: options.limits,
    subgroups: options.subgroups ?? false,
  });
  if (config.threads > options.limits.maxComputeInvocationsPerWorkgroup || config.threads > options.limits.maxComputeWorkgroupSizeX) {
    throw new Error(`WGSL attention: ${config.threads} invocations per workgroup exceed the limits`);
  }
  const program = attentionProgram(config);
  if (program.workgroupBytes > options.limits.maxComputeWorkgroupStorageSize) {
    throw new Error(`WGSL attention: ${program.workgroupBytes} B of workgroup memory exceeds the limit`);
  }
  const group = p.numHeads / p.kvNumHeads;
  const headSplits = Math.ceil(group / config.headsPerWorkgroup);
  const nQBlocks = Math.ceil(shape.nq / config.blockQ);
  const workgroups = shape.batch * p.kvNumHeads * headSplits * nQBlocks;
  const nk = shape.past + shape.nkNew;
  const bytes = options.dtype === 'f16' ? 2 : 4;
  const largest = Math.max(
    inputs.q.data.length,
    shape.batch * p.kvNumHeads * nk * Math.max(p.headDim, p.vHeadDim),
    shape.batch * p.numHeads * shape.nq * p.vHeadDim,
  );
  if (largest * bytes > options.limits.maxStorageBufferBindingSize) {
    throw new Error(
      `WGSL attention: a ${largest * bytes} B tensor exceeds maxStorageBufferBindingSize ${options.limits.maxStorageBufferBindingSize}; ` +
        'split the call by batch on the host (not automatic yet)',
    );
  }
  return { config, program, shape, nk, headSplits, nQBlocks, workgroups, dispatches: dispatchPlan(workgroups, options.limits.maxComputeWorkgroupsPerDimension) };
}

export function encode(values: ArrayLike<number>, dtype: StorageDType): Float32Array<ArrayBuffer> | Uint16Array<ArrayBuffer> {
  if (dtype === 'f32') return Float32Array.from(values);
  const out = new Uint16Array(values.length);
  for (let k = 0; k < values.length; k++) out[k] = floatToHalf(values[k]!);
  return out;
}

/** Gathers a tensor given by strides into bhsd [batch, heads, s, dim] (host side, for present K/V). */
export function gatherBhsd(data: ArrayLike<number>, st: Strides, batch: number, heads: number, s: number, dim: number): Float64Array {
  const out = new Float64Array(batch * heads * s * dim);
  let o = 0;
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < s; i++) {
        const off = st.base + b * st.sb + h * st.sh + i * st.ss;
        for (let c = 0; c < dim; c++) out[o++] = data[off + c]!;
      }
  return out;
}

export function concatPast(past: HostTensor, now: Float64Array, batch: number, heads: number, p: number, s: number, dim: number): Float64Array {
  const out = new Float64Array(batch * heads * (p + s) * dim);
  for (let bh = 0; bh < batch * heads; bh++) {
    for (let x = 0; x < p * dim; x++) out[bh * (p + s) * dim + x] = past.data[bh * p * dim + x]!;
    out.set(now.subarray(bh * s * dim, (bh + 1) * s * dim), bh * (p + s) * dim + p * dim);
  }
  return out;
}

/** The bias as f32 (-inf and boolean false become MASKED_BIAS_FILL) with broadcast strides. */
function encodeBias(bias: HostTensor, target: readonly [number, number, number, number]) {
  const rank = bias.shape.length;
  if (rank < 1 || rank > 4) throw new Error(`attention bias must have rank 1 to 4, got [${bias.shape.join(', ')}]`);
  const shape4 = [...new Array<number>(4 - rank).fill(1), ...bias.shape];
  for (let k = 0; k < 3; k++) {
    if (shape4[k] !== 1 && shape4[k] !== target[k]) throw new Error(`attention bias [${bias.shape.join(', ')}] does not broadcast to [${target.join(', ')}]`);
  }
  const width = shape4[3]!;
  if (width > target[3]) throw new Error(`attention bias has ${width} keys, more than the ${target[3]} keys`);
  const isBool = bias.data instanceof Uint8Array;
  const data = new Float32Array(bias.data.length);
  for (let k = 0; k < data.length; k++) {
    const x = bias.data[k]!;
    data[k] = isBool ? (x ? 0 : MASKED_BIAS_FILL) : x === -Infinity ? MASKED_BIAS_FILL : x;
  }
  const si = width;
  const sh = shape4[2]! * si;
  const sb = shape4[1]! * sh;
  return { data, sb: shape4[0] === 1 ? 0 : sb, sh: shape4[1] === 1 ? 0 : sh, si: shape4[2] === 1 ? 0 : si, width };
}

/** A run whose inputs are on the device: `run()` dispatches (repeatable, for timing), `read()` downloads Y. */
export interface PreparedAttention {
  /** The plan of the attention kernel; absent for low-rank specs (a kernel sequence: see `kernels`). */
  readonly plan?: AttentionPlan;
  /** Names of the programs dispatched, in order. */
  readonly kernels: readonly string[];
  /** Key blocks visited (Full / Partial) and skipped per the spec's block classification. */
  readonly blocks: Pick<BlockLists, 'full' | 'partial' | 'skipped'>;
  run(): Promise<void>;
  /** Y in the layout of Q (packed-qkv: bsd) as float32. */
  read(): Promise<Float32Array>;
  release(): void;
}

/** Q, K, V on the device (present K/V = past ++ this call's keys, bhsd) with their strides. */
export interface DeviceInputs {
  readonly q: GPUBuffer;
  readonly k: GPUBuffer;
  readonly v: GPUBuffer;
  readonly qSt: Strides;
  readonly kSt: Strides;
  readonly vSt: Strides;
  /** Present keys. */
  readonly nk: number;
}

/** Checks kvLength and past, uploads Q, K and V in `dtype`; the buffers go to `owned`. */
export function uploadInputs(
  rt: WgslRuntime,
  p: AttentionParams,
  inputs: WgslAttentionInputs,
  shape: AttentionShape,
  dtype: StorageDType,
  owned: GPUBuffer[],
): DeviceInputs {
  const { batch, nkNew, past } = shape;
  const nk = past + nkNew;
  if ((inputs.pastKey === undefined) !== (inputs.pastValue === undefined)) throw new Error('pastKey and pastValue must be given together');
  if (inputs.kvLength !== undefined) {
    if (inputs.kvLength.length !== batch) throw new Error(`kvLength needs ${batch} entries`);
    for (let b = 0; b < batch; b++) {
      const L = inputs.kvLength[b]!;
      if (!Number.isSafeInteger(L) || L < 0 || L > nk) throw new Error(`kvLength[${b}] = ${L} must be an integer in [0, ${nk}]`);
    }
  }
  const up = (data: ArrayBufferView<ArrayBuffer>): GPUBuffer => {
    const b = rt.upload(data, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
    owned.push(b);
    return b;
  };
  const q = up(encode(inputs.q.data, dtype));
  if (past > 0) {
    // Present K/V = past ++ this call's keys, in bhsd.
    const kData = p.layout === 'packed-qkv' ? inputs.q.data : inputs.k!.data;
    const vData = p.layout === 'packed-qkv' ? inputs.q.data : inputs.v!.data;
    const kNow = gatherBhsd(kData, shape.k, batch, p.kvNumHeads, nkNew, p.headDim);
    const vNow = gatherBhsd(vData, shape.v, batch, p.kvNumHeads, nkNew, p.vHeadDim);
    return {
      q,
      k: up(encode(concatPast(inputs.pastKey!, kNow, batch, p.kvNumHeads, past, nkNew, p.headDim), dtype)),
      v: up(encode(concatPast(inputs.pastValue!, vNow, batch, p.kvNumHeads, past, nkNew, p.vHeadDim), dtype)),
      qSt: shape.q,
      kSt: { base: 0, sb: p.kvNumHeads * nk * p.headDim, sh: nk * p.headDim, ss: p.headDim },
      vSt: { base: 0, sb: p.kvNumHeads * nk * p.vHeadDim, sh: nk * p.vHeadDim, ss: p.vHeadDim },
      nk,
    };
  }
  if (p.layout === 'packed-qkv') return { q, k: q, v: q, qSt: shape.q, kSt: shape.k, vSt: shape.v, nk };
  return { q, k: up(encode(inputs.k!.data, dtype)), v: up(encode(inputs.v!.data, dtype)), qSt: shape.q, kSt: shape.k, vSt: shape.v, nk };
}

/** Downloads `elems` values of Y stored in `dtype` as float32. */
export async function readOutput(rt: WgslRuntime, y: GPUBuffer, elems: number, dtype: StorageDType): Promise<Float32Array> {
  const bytes = await rt.download(y, elems * (dtype === 'f16' ? 2 : 4));
  if (dtype === 'f32') return new Float32Array(bytes, 0, elems);
  return Float32Array.from(new Uint16Array(bytes, 0, elems), halfToFloat);
}

/** The uniforms of the attention kernel for a plan (less wg_base / wg_per_row, set per dispatch). */
export function attentionUniforms(
  plan: AttentionPlan,
  p: AttentionParams,
  strides: { q: Strides; k: Strides; v: Strides },
  packed: { entriesBase: number; infoBase: number },
  bias?: { sb: number; sh: number; si: number; width: number },
): Record<string, number> {
  const { shape, nk } = plan;
  return {
    wg_total: plan.workgroups,
    n_qblocks: plan.nQBlocks,
    head_splits: plan.headSplits,
    kv_heads: p.kvNumHeads,
    group: p.numHeads / p.kvNumHeads,
    nq: shape.nq,
    nk,
    q_base: strides.q.base,
    q_sb: strides.q.sb,
    q_sh: strides.q.sh,
    q_ss: strides.q.ss,
    k_base: strides.k.base,
    k_sb: strides.k.sb,
    k_sh: strides.k.sh,
    k_ss: strides.k.ss,
    v_base: strides.v.base,
    v_sb: strides.v.sb,
    v_sh: strides.v.sh,
    v_ss: strides.v.ss,
    y_sb: shape.y.sb,
    y_sh: shape.y.sh,
    y_ss: shape.y.ss,
    bias_sb: bias?.sb ?? 0,
    bias_sh: bias?.sh ?? 0,
    bias_si: bias?.si ?? 0,
    bias_width: bias?.width ?? 0,
    entries_base: packed.entriesBase,
    info_base: packed.infoBase,
    off_br: nk - shape.nq,
    scale: p.scale,
    softcap: p.softcap,
  };
}

export async function prepareAttention(
  rt: WgslRuntime,
  params: AttentionParams,
  inputs: WgslAttentionInputs,
  options: AttentionRunOptions = {},
): Promise<PreparedAttention> {
  const dtype = options.dtype ?? 'f32';
  if (dtype === 'f16' && !rt.features.f16) throw new Error('WGSL attention: f16 storage needs the shader-f16 feature, not offered by this adapter');
  const subgroups = options.subgroups ?? rt.features.subgroups;
  if (subgroups && !rt.features.subgroups) throw new Error('WGSL attention: the subgroup kernel needs the subgroups feature, not offered by this adapter');
  const limits = options.limits ?? rt.limits;
  const p = validateAttentionParams(params);
  if (isLowRank(p.spec)) return prepareLowRank(rt, p, inputs, { dtype, limits });
  const plan = planAttention(p, inputs, { dtype, limits, subgroups });
  const { shape, config, program } = plan;
  const { batch, nq, past } = shape;
  const nk = plan.nk;
  const owned: GPUBuffer[] = [];
  const dev = uploadInputs(rt, p, inputs, shape, dtype, owned);
  const up = (data: ArrayBufferView<ArrayBuffer>): GPUBuffer => {
    const b = rt.upload(data, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
    owned.push(b);
    return b;
  };
  const yElems = batch * p.numHeads * nq * p.vHeadDim;
  const yBuf = rt.acquire(yElems * (dtype === 'f16' ? 2 : 4), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
  owned.push(yBuf);

  const lists = blockLists(
    config.spec,
    { batch, nq, nk, past, hasPast: inputs.pastKey !== undefined, ...(inputs.kvLength !== undefined ? { kvLength: inputs.kvLength } : {}) },
    config.blockQ,
    config.blockK,
  );
  const packed = packBlocks(lists);
  const bias = inputs.bias ? encodeBias(inputs.bias, [batch, p.numHeads, nq, nk]) : undefined;
  const data = await prepareDataLeaves(rt, p, inputs, shape, dev, dtype, owned);
  const storage = [dev.q, dev.k, dev.v, yBuf, up(packed.data), ...(bias ? [up(bias.data)] : []), ...(data ? [data.buffer] : [])];
  const uniforms = { ...attentionUniforms(plan, p, { q: dev.qSt, k: dev.kSt, v: dev.vSt }, packed, bias), ...data?.uniforms };
  const steps = await encodeSteps(rt, [...(data?.steps ?? []), { program, storage, uniforms, workgroups: plan.workgroups }], owned, limits.maxComputeWorkgroupsPerDimension);

  return {
    plan,
    kernels: [...(data?.steps ?? []).map((s) => s.program.name), program.name],
    blocks: { full: lists.full, partial: lists.partial, skipped: lists.skipped },
    run: () => runSteps(rt, program.name, steps),
    read: () => readOutput(rt, yBuf, yElems, dtype),
    release() {
      for (const b of owned) rt.release(b);
      owned.length = 0;
    },
  };
}

/** Runs attention on the device and returns Y (layout of Q; packed-qkv: bsd) as float32. */
export async function runAttention(
  rt: WgslRuntime,
  params: AttentionParams,
  inputs: WgslAttentionInputs,
  options: AttentionRunOptions = {},
): Promise<Float32Array> {
  const prepared = await prepareAttention(rt, params, inputs, options);
  try {
    await prepared.run();
    return await prepared.read();
  } finally {
    prepared.release();
  }
}
