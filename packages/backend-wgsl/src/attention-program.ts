// The flash-attention WGSL kernels: one workgroup per (batch, key/value head, head split, query block).
// Two bodies: the tiled kernel (below) and, when the adapter offers `subgroups`, the subgroup kernel
// (subgroupBody). Tiled kernel: its threads are `headsPerWorkgroup` query heads of one GQA group x `blockQ`
// query rows: every K/V tile is loaded into workgroup memory once and used by all heads of the group. Per thread (one query row of one
// head): Q row pre-scaled in f32 registers, online softmax in f32 over the key blocks the host listed for
// this query block (Empty blocks never appear; a per-block flag says whether the mask must be evaluated,
// i.e. the block is Partial by classifyBlockRow or straddles kvLength). Fully masked rows write 0.

import { type AttentionParams, isLowRank, type MaskSpec, validateAttentionParams } from '@attnopt/ir';
import { ShaderBuilder, type WgslProgram } from './wgsl/builder.js';
import { dataLeafUniforms, maskPredicate } from './wgsl/mask-predicate.js';

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
  /** Keys per K/V tile in workgroup memory (tiled kernel); keys per block-list entry (both kernels). */
  readonly blockK: number;
  /** The subgroup kernel (keys across the lanes of a subgroup, no K/V tiles) instead of the tiled one. */
  readonly subgroups: boolean;
  /** Invocations per workgroup. */
  readonly threads: number;
}

/** Largest threads per workgroup a kernel asks for: enough for lavapipe and small GPUs alike. */
const TARGET_THREADS = 64;
const MAX_BLOCK_K = 32;
/** Query rows per workgroup of the subgroup kernel (each subgroup takes rows in turn). */
const SUBGROUP_ROWS = 16;
/** WebGPU's default workgroup storage: the tiled kernel never asks for more, whatever the adapter offers. */
export const DEFAULT_WORKGROUP_STORAGE = 16384;

/**
 * Chooses the tiling for an attention problem under `limits`: threads <= maxComputeInvocationsPerWorkgroup
 * and maxComputeWorkgroupSizeX, K/V tiles <= min(maxComputeWorkgroupStorageSize, 16 KiB). Throws when even
 * one key does not fit. The subgroup kernel needs no tiles: `subgroups` sizes blockQ for SUBGROUP_ROWS rows.
 */
export function chooseTiling(
  params: Pick<AttentionParams, 'numHeads' | 'kvNumHeads' | 'headDim' | 'vHeadDim'>,
  dtype: StorageDType,
  limits: KernelLimits,
  subgroups = false,
): { headsPerWorkgroup: number; blockQ: number; blockK: number; headSplits: number; threads: number } {
  const group = params.numHeads / params.kvNumHeads;
  const threads = Math.max(1, Math.min(TARGET_THREADS, limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX));
  if (subgroups) {
    const rows = Math.min(SUBGROUP_ROWS, threads);
    const headsPerWorkgroup = Math.min(group, rows);
    const blockQ = Math.max(1, Math.floor(rows / headsPerWorkgroup));
    return { headsPerWorkgroup, blockQ, blockK: MAX_BLOCK_K, headSplits: Math.ceil(group / headsPerWorkgroup), threads };
  }
  const headsPerWorkgroup = Math.min(group, threads);
  const blockQ = Math.max(1, Math.floor(threads / headsPerWorkgroup));
  const bytesPerKey = (params.headDim + params.vHeadDim) * (dtype === 'f16' ? 2 : 4);
  const storage = Math.min(limits.maxComputeWorkgroupStorageSize, DEFAULT_WORKGROUP_STORAGE);
  const blockK = Math.min(MAX_BLOCK_K, Math.floor(storage / bytesPerKey));
  if (blockK < 1) {
    throw new Error(
      `WGSL attention: one key of head dims ${params.headDim}+${params.vHeadDim} (${bytesPerKey} B) exceeds the ` +
        `${storage} B of workgroup storage`,
    );
  }
  return { headsPerWorkgroup, blockQ, blockK, headSplits: Math.ceil(group / headsPerWorkgroup), threads: headsPerWorkgroup * blockQ };
}

/** The kernel config for a mask-spec problem (params validated). Low-rank specs run as sequences (low-rank.ts). */
export function kernelConfig(
  params: AttentionParams,
  options: { dtype: StorageDType; bias: boolean; limits: KernelLimits; subgroups?: boolean },
): KernelConfig {
  const p = validateAttentionParams(params);
  if (isLowRank(p.spec)) {
    throw new Error(`WGSL attention kernel: low-rank spec ${p.spec.kind} has no single kernel; it runs as a sequence (runAttention)`);
  }
  const subgroups = options.subgroups ?? false;
  const t = chooseTiling(p, options.dtype, options.limits, subgroups);
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
    subgroups,
    threads: t.threads,
  };
}

/** Uniform fields of the attention kernel, in struct order. */
const ATTENTION_UNIFORMS = [
  ...['wg_base', 'wg_per_row', 'wg_total', 'n_qblocks', 'head_splits', 'kv_heads', 'group', 'nq', 'nk'],
  ...['q_base', 'q_sb', 'q_sh', 'q_ss', 'k_base', 'k_sb', 'k_sh', 'k_ss', 'v_base', 'v_sb', 'v_sh', 'v_ss'],
  ...['y_sb', 'y_sh', 'y_ss', 'bias_sb', 'bias_sh', 'bias_si', 'bias_width', 'entries_base', 'info_base'],
] as const;

/**
 * Storage bindings of the attention kernel, in order: Q, K, V, Y, `blocks` (u32: the CSR starts, then the
 * entries at u.entries_base, then per batch (valid keys, past) as i32 bits at u.info_base), then `bias`
 * when the config has one, then `data_codes` when the spec has data-dependent leaves. At most 7 bindings:
 * within WebGPU's default of 8 storage buffers per stage.
 */
export function attentionProgram(cfg: KernelConfig): WgslProgram {
  const { dtype: T, headDim: D, vHeadDim: DV, blockQ: BQ, blockK: BK, headsPerWorkgroup: HPW } = cfg;
  const b = new ShaderBuilder(cfg.subgroups ? 'attention_subgroup' : 'attention');
  if (T === 'f16') b.enableF16();
  for (const name of ATTENTION_UNIFORMS) b.uniform(name, 'u32');
  b.uniform('off_br', 'i32');
  b.uniform('scale', 'f32');
  b.uniform('softcap', 'f32');
  b.storageArray('Q', T);
  b.storageArray('K', T);
  b.storageArray('V', T);
  b.storageArray('Y', T, 'read_write');
  b.storageArray('blocks', 'u32');
  if (cfg.bias) b.storageArray('bias', 'f32');
  const pred = maskPredicate(cfg.spec);
  if (pred.dataLeaves.length > 0) {
    b.storageArray('data_codes', 'u32');
    for (const name of dataLeafUniforms(pred.dataLeaves.length)) b.uniform(name, 'u32');
  }
  if (!pred.always) b.declare(pred.code);
  const tanh = cfg.softcap ? b.helper('safe_tanh') : '';
  const keepExpr = pred.always ? 'i32(j) < valid' : 'i32(j) < valid && keep(i32(i), i32(j), u.off_br, past, b * u.kv_heads * u.group + h, b * u.kv_heads + g)';
  // The score of key j for the row (q in registers, k_at(c) the key's element c): softcap, mask and bias.
  const score = (kAt: (c: string) => string, indent: string): string =>
    [
      `var x = 0.0;`,
      `for (var c = 0u; c < ${D}u; c++) { x += q[c] * f32(${kAt('c')}); }`,
      ...(cfg.softcap ? [`x = u.softcap * ${tanh}(x / u.softcap);`] : []),
      `var kept = true;`,
      `if (need_mask) { kept = ${keepExpr}; }`,
      ...(cfg.bias
        ? [
            `if (kept) {`,
            `  if (j >= u.bias_width) { kept = false; } else {`,
            `    let bv = bias[b * u.bias_sb + h * u.bias_sh + i * u.bias_si + j];`,
            `    if (bv <= ${MASKED_BIAS_AT_OR_BELOW}) { kept = false; } else { x += bv; }`,
            `  }`,
            `}`,
          ]
        : []),
      `if (!kept) { x = ${NEG}; }`,
    ]
      .map((l) => indent + l)
      .join('\n');
  // Workgroup -> (batch, KV head, head split, query block); shared by both kernels.
  const header = /* wgsl */ `
  let wg = u.wg_base + wid.y * u.wg_per_row + wid.x;
  if (wg >= u.wg_total) { return; }
  let qb = wg % u.n_qblocks;
  var rest = wg / u.n_qblocks;
  let split = rest % u.head_splits;
  rest = rest / u.head_splits;
  let g = rest % u.kv_heads;
  let b = rest / u.kv_heads;
  let valid = bitcast<i32>(blocks[u.info_base + 2u * b]);
  let past = bitcast<i32>(blocks[u.info_base + 2u * b + 1u]);
  _ = past;
  let ko = u.k_base + b * u.k_sb + g * u.k_sh;
  let vo = u.v_base + b * u.v_sb + g * u.v_sh;
  let list = b * u.n_qblocks + qb;
  let t0 = blocks[list];
  let t1 = blocks[list + 1u];`;
  const body = cfg.subgroups ? subgroupBody(b, cfg, header, score) : tiledBody(b, cfg, header, score);
  return b.build({
    workgroupSize: cfg.threads,
    body,
    keyParts: [T, D, DV, BQ, BK, HPW, cfg.threads, cfg.softcap ? 'softcap' : '', cfg.bias ? 'bias' : '', JSON.stringify(cfg.spec)],
  });
}

type ScoreCode = (kAt: (c: string) => string, indent: string) => string;

/**
 * The tiled kernel: one thread per (query head, query row); each K/V tile is loaded into workgroup memory
 * once for the whole workgroup; online softmax per thread.
 */
function tiledBody(b: ShaderBuilder, cfg: KernelConfig, header: string, score: ScoreCode): string {
  const { dtype: T, headDim: D, vHeadDim: DV, blockQ: BQ, blockK: BK, headsPerWorkgroup: HPW } = cfg;
  const THREADS = cfg.threads;
  b.workgroupArray('k_tile', T, BK * D);
  b.workgroupArray('v_tile', T, BK * DV);
  return /* wgsl */ `${header}
  let hl = split * ${HPW}u + lid / ${BQ}u;
  let h = g * u.group + hl;
  let i = qb * ${BQ}u + lid % ${BQ}u;
  let row_active = hl < u.group && i < u.nq;

  var q: array<f32, ${D}>;
  var acc: array<f32, ${DV}>;
  if (row_active) {
    let qo = u.q_base + b * u.q_sb + h * u.q_sh + i * u.q_ss;
    for (var c = 0u; c < ${D}u; c++) { q[c] = f32(Q[qo + c]) * u.scale; }
  }
  var m = ${NEG};
  var l = 0.0;
  for (var t = t0; t < t1; t++) {
    let e = blocks[u.entries_base + t];
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
${score((c) => `k_tile[kk * ${D}u + ${c}]`, '        ')}
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
}

/**
 * The subgroup kernel: each subgroup takes query rows in turn (rows handed out by a workgroup counter, so
 * no assumption on how invocations form subgroups); its active lanes split each key block (lane = rank
 * among the active lanes, subgroupExclusiveAdd). Per chunk of `lanes` keys: every lane scores its key
 * from global memory, subgroupMax gives the chunk max, subgroupAdd the row sum and each output channel's
 * sum p_j v_j. Lanes hold the row's state redundantly (uniform per subgroup) and split the final store.
 * Workgroup memory: one 4-byte counter.
 */
function subgroupBody(b: ShaderBuilder, cfg: KernelConfig, header: string, score: ScoreCode): string {
  const { dtype: T, headDim: D, vHeadDim: DV, blockQ: BQ, blockK: BK, headsPerWorkgroup: HPW } = cfg;
  b.enableSubgroups();
  b.workgroupAtomic('sg_counter');
  return /* wgsl */ `${header}
  let lane = subgroupExclusiveAdd(1u);
  let lanes = subgroupAdd(1u);
  var first = 0u;
  if (lane == 0u) { first = atomicAdd(&sg_counter, 1u); }
  let sg = subgroupMax(first);
  let n_sg = workgroupUniformLoad(&sg_counter);
  for (var row = sg; row < ${HPW * BQ}u; row += n_sg) {
    let hl = split * ${HPW}u + row / ${BQ}u;
    let h = g * u.group + hl;
    let i = qb * ${BQ}u + row % ${BQ}u;
    if (hl >= u.group || i >= u.nq) { continue; }
    var q: array<f32, ${D}>;
    var acc: array<f32, ${DV}>;
    let qo = u.q_base + b * u.q_sb + h * u.q_sh + i * u.q_ss;
    for (var c = 0u; c < ${D}u; c++) { q[c] = f32(Q[qo + c]) * u.scale; }
    var m = ${NEG};
    var l = 0.0;
    for (var t = t0; t < t1; t++) {
      let e = blocks[u.entries_base + t];
      let k0 = (e >> 1u) * ${BK}u;
      let need_mask = (e & 1u) != 0u;
      let k1 = min(k0 + ${BK}u, u.nk);
      for (var j0 = k0; j0 < k1; j0 += lanes) {
        let j = j0 + lane;
        var s = ${NEG};
        if (j < k1) {
${score((c) => `K[ko + j * u.k_ss + ${c}]`, '          ')}
          s = x;
        }
        let chunk_max = subgroupMax(s);
        if (chunk_max > ${NEG}) {
          let m_new = max(m, chunk_max);
          let corr = exp(m - m_new);
          let p = select(0.0, exp(s - m_new), s > ${NEG});
          l = l * corr + subgroupAdd(p);
          let vj = vo + min(j, k1 - 1u) * u.v_ss;
          // a masked key's value is left out, not multiplied by 0: padding may hold NaN (0 · NaN = NaN)
          for (var c = 0u; c < ${DV}u; c++) {
            acc[c] = acc[c] * corr + subgroupAdd(select(0.0, p * f32(V[vj + c]), s > ${NEG}));
          }
          m = m_new;
        }
      }
    }
    let yo = b * u.y_sb + h * u.y_sh + i * u.y_ss;
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var c = lane; c < ${DV}u; c += lanes) { Y[yo + c] = ${T}(acc[c] * inv); }
  }`;
}

/** The score of a masked key: finite (WGSL has no infinity literal), below every real score. */
export const NEG = '-3.0e38';
/** Bias values at or below this are masked keys (the host encodes -inf and boolean false as -3.0e38). */
export const MASKED_BIAS_AT_OR_BELOW = '-1.0e38';
/** What the host writes for a masked bias entry (-inf and boolean false), as a number. */
export const MASKED_BIAS_FILL = -3.0e38;
