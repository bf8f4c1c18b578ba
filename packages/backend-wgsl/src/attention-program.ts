// The flash-attention WGSL kernel: one workgroup per (batch, key/value head, head split, query block).
// Its threads are `headsPerWorkgroup` query heads of one GQA group x `blockQ` query rows: every K/V tile is
// loaded into workgroup memory once and used by all heads of the group. Per thread (one query row of one
// head): Q row pre-scaled in f32 registers, online softmax in f32 over the key blocks the host listed for
// this query block (Empty blocks never appear; a per-block flag says whether the mask must be evaluated,
// i.e. the block is Partial by classifyBlockRow or straddles kvLength). Fully masked rows write 0.

import { type MaskSpec, validateAttentionParams, type AttentionParams } from '@attnopt/ir';
import { ShaderBuilder, type WgslProgram } from './wgsl/builder.js';
import { maskPredicate } from './wgsl/mask-predicate.js';

export type StorageDType = 'f32' | 'f16';

/** The adapter limits a plan must respect (a subset of GPUSupportedLimits). */
export interface KernelLimits {
  readonly maxComputeWorkgroupStorageSize: number;
  readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxComputeWorkgroupSizeX: number;
  readonly maxComputeWorkgroupsPerDimension: number;
  readonly maxStorageBufferBindingSize: number;
}

/** WebGPU's default limits: what every adapter offers (16 KiB of workgroup memory, 256 invocations). */
export const DEFAULT_LIMITS: KernelLimits = {
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupsPerDimension: 65535,
  maxStorageBufferBindingSize: 134217728,
};

export interface KernelConfig {
  readonly dtype: StorageDType;
  readonly headDim: number;
  readonly vHeadDim: number;
  readonly spec: MaskSpec;
  readonly softcap: boolean;
  readonly bias: boolean;
  /** Query heads per workgroup (<= the GQA group size) and query rows per head per workgroup. */
  readonly headsPerWorkgroup: number;
  readonly blockQ: number;
  /** Keys per K/V tile in workgroup memory. */
  readonly blockK: number;
}

/** Largest threads per workgroup a kernel asks for: enough for lavapipe and small GPUs alike. */
const TARGET_THREADS = 64;
const MAX_BLOCK_K = 32;

/**
 * Chooses the tiling for an attention problem under `limits`: threads <= maxComputeInvocationsPerWorkgroup
 * and maxComputeWorkgroupSizeX, K/V tiles <= maxComputeWorkgroupStorageSize. Throws when even one key does
 * not fit.
 */
export function chooseTiling(
  params: Pick<AttentionParams, 'numHeads' | 'kvNumHeads' | 'headDim' | 'vHeadDim'>,
  dtype: StorageDType,
  limits: KernelLimits,
): { headsPerWorkgroup: number; blockQ: number; blockK: number; headSplits: number } {
  const group = params.numHeads / params.kvNumHeads;
  const threads = Math.max(1, Math.min(TARGET_THREADS, limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX));
  const headsPerWorkgroup = Math.min(group, threads);
  const blockQ = Math.max(1, Math.floor(threads / headsPerWorkgroup));
  const bytesPerKey = (params.headDim + params.vHeadDim) * (dtype === 'f16' ? 2 : 4);
  const blockK = Math.min(MAX_BLOCK_K, Math.floor(limits.maxComputeWorkgroupStorageSize / bytesPerKey));
  if (blockK < 1) {
    throw new Error(
      `WGSL attention: one key of head dims ${params.headDim}+${params.vHeadDim} (${bytesPerKey} B) exceeds the ` +
        `${limits.maxComputeWorkgroupStorageSize} B of workgroup storage`,
    );
  }
  return { headsPerWorkgroup, blockQ, blockK, headSplits: Math.ceil(group / headsPerWorkgroup) };
}

/** The kernel config for a problem (params validated). */
export function kernelConfig(
  params: AttentionParams,
  options: { dtype: StorageDType; bias: boolean; limits: KernelLimits },
): KernelConfig {
  const p = validateAttentionParams(params);
  if (p.spec.kind === 'nystrom' || p.spec.kind === 'linformer' || p.spec.kind === 'performer') {
    throw new Error(`WGSL backend: low-rank spec ${p.spec.kind} is not implemented (see the package README)`);
  }
  const t = chooseTiling(p, options.dtype, options.limits);
  return {
    dtype: options.dtype,
    headDim: p.headDim,
    vHeadDim: p.vHeadDim,
    spec: p.spec,
    softcap: p.softcap > 0,
    bias: options.bias,
    headsPerWorkgroup: t.headsPerWorkgroup,
    blockQ: t.blockQ,
    blockK: t.blockK,
  };
}

/** Uniform fields of the attention kernel, in struct order. */
const ATTENTION_UNIFORMS = [
  ...['wg_base', 'wg_per_row', 'wg_total', 'n_qblocks', 'head_splits', 'kv_heads', 'group', 'nq', 'nk'],
  ...['q_base', 'q_sb', 'q_sh', 'q_ss', 'k_base', 'k_sb', 'k_sh', 'k_ss', 'v_base', 'v_sb', 'v_sh', 'v_ss'],
  ...['y_sb', 'y_sh', 'y_ss', 'bias_sb', 'bias_sh', 'bias_si', 'bias_width'],
] as const;

/** Generates the flash-attention program for a config. */
export function attentionProgram(cfg: KernelConfig): WgslProgram {
  const { dtype: T, headDim: D, vHeadDim: DV, blockQ: BQ, blockK: BK, headsPerWorkgroup: HPW } = cfg;
  const b = new ShaderBuilder('attention');
  if (T === 'f16') b.enableF16();
  for (const name of ATTENTION_UNIFORMS) b.uniform(name, 'u32');
  b.uniform('off_br', 'i32');
  b.uniform('scale', 'f32');
  b.uniform('softcap', 'f32');
  b.storageArray('Q', T);
  b.storageArray('K', T);
  b.storageArray('V', T);
  b.storageArray('Y', T, 'read_write');
  b.storageArray('block_start', 'u32');
  b.storageArray('block_entries', 'u32');
  b.storageArray('batch_info', 'i32');
  if (cfg.bias) b.storageArray('bias', 'f32');
  b.workgroupArray('k_tile', T, BK * D);
  b.workgroupArray('v_tile', T, BK * DV);
  const pred = maskPredicate(cfg.spec);
  if (!pred.always) b.declare(pred.code);
  const tanh = cfg.softcap ? b.helper('safe_tanh') : '';
  const THREADS = HPW * BQ;

  const keepExpr = pred.always ? 'i32(j) < valid' : 'i32(j) < valid && keep(i32(i), i32(j), u.off_br, past)';
  const body = /* wgsl */ `
  let wg = u.wg_base + wid.y * u.wg_per_row + wid.x;
  if (wg >= u.wg_total) { return; }
  let qb = wg % u.n_qblocks;
  var rest = wg / u.n_qblocks;
  let split = rest % u.head_splits;
  rest = rest / u.head_splits;
  let g = rest % u.kv_heads;
  let b = rest / u.kv_heads;
  let hl = split * ${HPW}u + lid / ${BQ}u;
  let h = g * u.group + hl;
  let i = qb * ${BQ}u + lid % ${BQ}u;
  let row_active = hl < u.group && i < u.nq;
  let valid = batch_info[2u * b];
  let past = batch_info[2u * b + 1u];
  _ = past;

  var q: array<f32, ${D}>;
  var acc: array<f32, ${DV}>;
  if (row_active) {
    let qo = u.q_base + b * u.q_sb + h * u.q_sh + i * u.q_ss;
    for (var c = 0u; c < ${D}u; c++) { q[c] = f32(Q[qo + c]) * u.scale; }
  }
  var m = ${NEG};
  var l = 0.0;
  let ko = u.k_base + b * u.k_sb + g * u.k_sh;
  let vo = u.v_base + b * u.v_sb + g * u.v_sh;
  let list = b * u.n_qblocks + qb;
  let t1 = block_start[list + 1u];
  for (var t = block_start[list]; t < t1; t++) {
    let e = block_entries[t];
    let k0 = (e >> 1u) * ${BK}u;
    let need_mask = (e & 1u) != 0u;
    let nkt = min(${BK}u, u.nk - k0);
    workgroupBarrier();
    for (var x = lid; x < nkt * ${D}u; x += ${THREADS}u) {
      k_tile[x] = K[ko + (k0 + x / ${D}u) * u.k_ss + x % ${D}u];
    }
    for (var x = lid; x < nkt * ${DV}u; x += ${THREADS}u) {
      v_tile[x] = V[vo + (k0 + x / ${DV}u) * u.v_ss + x % ${DV}u];
    }
    workgroupBarrier();
    if (row_active) {
      var s: array<f32, ${BK}>;
      var tile_max = ${NEG};
      for (var kk = 0u; kk < nkt; kk++) {
        let j = k0 + kk;
        var x = 0.0;
        for (var c = 0u; c < ${D}u; c++) { x += q[c] * f32(k_tile[kk * ${D}u + c]); }
${cfg.softcap ? `        x = u.softcap * ${tanh}(x / u.softcap);\n` : ''}        var kept = true;
        if (need_mask) { kept = ${keepExpr}; }
${
  cfg.bias
    ? `        if (kept) {
          if (j >= u.bias_width) { kept = false; } else {
            let bv = bias[b * u.bias_sb + h * u.bias_sh + i * u.bias_si + j];
            if (bv <= ${MASKED_BIAS}) { kept = false; } else { x += bv; }
          }
        }\n`
    : ''
}        if (!kept) { x = ${NEG}; }
        s[kk] = x;
        tile_max = max(tile_max, x);
      }
      if (tile_max > ${NEG}) {
        let m_new = max(m, tile_max);
        let corr = exp(m - m_new);
        l *= corr;
        for (var c = 0u; c < ${DV}u; c++) { acc[c] *= corr; }
        for (var kk = 0u; kk < nkt; kk++) {
          if (s[kk] > ${NEG}) {
            let p = exp(s[kk] - m_new);
            l += p;
            for (var c = 0u; c < ${DV}u; c++) { acc[c] += p * f32(v_tile[kk * ${DV}u + c]); }
          }
        }
        m = m_new;
      }
    }
  }
  if (row_active) {
    let yo = b * u.y_sb + h * u.y_sh + i * u.y_ss;
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var c = 0u; c < ${DV}u; c++) { Y[yo + c] = ${T}(acc[c] * inv); }
  }`;
  return b.build({
    workgroupSize: THREADS,
    body,
    keyParts: [T, D, DV, BQ, BK, HPW, cfg.softcap ? 'softcap' : '', cfg.bias ? 'bias' : '', JSON.stringify(cfg.spec)],
  });
}

/** The score of a masked key: finite (WGSL has no infinity literal), below every real score. */
export const NEG = '-3.0e38';
/** Bias values at or below this are masked keys (the host encodes -inf and boolean false as -3.0e38). */
export const MASKED_BIAS = '-1.0e38';
export const MASKED_BIAS_VALUE = -3.0e38;
