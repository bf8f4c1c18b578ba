// The guarded attention kernels for WebGPU: a sparse key set whose error is checked at run time, per query
// row, with the exact fallback inside the shader (BOUNDS.md (b')). Three programs in one compute pass:
//   guard_summaries   one thread per (kv head, key segment): per channel min / max of K, the mean key
//                     (center) and the largest distance from it (radius; -1 where a key is NaN or infinite,
//                     told from its bits: WGSL leaves min / max of NaN to the implementation);
//   guard_value_range one thread per kv head: R, the largest range of one V column over the keys (-1 likewise);
//   guarded_attention one thread per (query head, query row):
//     1. online softmax over the sparse keys (spec ∩ model mask): running max m, sum Z_S, accumulator;
//     2. B = Σ over segments holding dropped keys (model mask \ spec) of
//           count · e^(min(Quest, ball) · scale [softcap] - m),  Quest = Σ_c max(q_c lo_c, q_c hi_c),
//           ball = q · center + ||q|| radius;  m_hat = B (1 + 2^-10) / (Z_S + B (1 + 2^-10));
//     3. when not (epsilon >= m_hat · R), when a segment it drops keys from or V has no bound (-1), or when the
//        row keeps no key but drops one: the row again, densely over the model mask, and the fallback counter
//        (an atomic) counts it.
//   The certificate per row goes to CERT, the fallback count to COUNTER[0].
// Scope: f32 or f16 storage of Q, K, V and Y (f32 arithmetic, summaries and certificates), every layout (bhsd,
// bshd, bsd, packed-qkv: Q, K, V and Y read and written through element strides per (batch, head, row), uniforms
// q_*, k_*, v_*, y_*; Y in the layout of Q, bsd for packed QKV); GQA; index
// specs and data-dependent key sets (top-k key blocks, LSH buckets: their codes in `data_codes`, filled before
// the dispatch as for the plain kernel, src/data-leaves.ts; the certificate needs nothing of them, since it bounds
// whatever keys of a segment the predicate drops); an additive bias [.., nq, nk] or a key bias [.., 1, nk] read
// with row stride 0 (its max over a segment's dropped keys of the row joins the bound); kvLength; past keys (K and V
// hold the present keys, bhsd, and u.past the cached count; without them and with kvLength the spec's past offset
// of batch b is kvLength[b] - nq, u.past_from_kvlen = 1, as in the reference). Work per row: where the spec bounds
// the keys a row may keep (keySupport: a band around the row's position, one alignment, and extra keys), the
// sparse pass reads the band and the extra keys (a global query every key), and a segment that holds none of them
// drops every model key in it: with a model mask of one interval per row (dense, causal, a plain window) and no
// bias, its count is that interval's overlap (kvLength included), else its keys are read one by one. Without such
// a bound (data-dependent key sets, block layouts) every key is read. One thread per row, no shared tiles: tuned
// for nothing but the work per row.

import { type AttentionParams, isLowRank, keySegmentBounds, type KeySupport, keySupport, type MaskSpec, validateAttentionParams } from '@attnopt/ir';
import { attentionShape, type HostTensor, readOutput, type Strides, uploadInputs } from './attention.js';
import type { StorageDType } from './attention-program.js';
import { prepareDataLeaves } from './data-leaves.js';
import type { WgslRuntime } from './runtime.js';
import { encodeSteps, type KernelStep, runSteps } from './sequence.js';
import { ShaderBuilder, type WgslProgram } from './wgsl/builder.js';
import { dataLeafUniforms, maskPredicate } from './wgsl/mask-predicate.js';
import { gridIndex, SEQUENCE_WORKGROUP } from './kernels/operand.js';

/** Generation option of the guarded kernel. */
export interface WgslGuardOptions {
  /** Budget on the per-coordinate output error of every row (plus float32 rounding). */
  readonly epsilon: number;
  /** Keys per summary segment (default 64); segments also split at sink and global tokens. */
  readonly block?: number;
  /** The keys the model's own mask allows, which a fallback row attends densely (default dense). */
  readonly modelMask?: MaskSpec;
  /** Storage of Q, K, V and Y on the device (default f32; f16 needs the shader-f16 feature). Arithmetic is f32. */
  readonly dtype?: StorageDType;
}

/** B is multiplied by this before m_hat is formed (the float32 rounding of the bound and of Z_S). */
export const WGSL_CERTIFICATE_SLACK = 1 + 2 ** -10;

/** Segment boundaries over [0, nk): blocks of `block` keys, also split at sink and global tokens. */
export function guardSegments(spec: MaskSpec, nk: number, block: number): Uint32Array {
  return Uint32Array.from(keySegmentBounds(spec, nk, block));
}

/** Uniforms of a strided operand: element (b, head, row, c) at base + b · sb + head · sh + row · ss + c. */
const STRIDE_FIELDS = ['base', 'sb', 'sh', 'ss'] as const;

function declareStrides(b: ShaderBuilder, name: string): void {
  for (const f of STRIDE_FIELDS) b.uniform(`${name}_${f}`, 'u32');
}

/** WGSL: the offset of row `row` of head `head` of batch `bt` of operand `name` (its first element). */
const rowAt = (name: string, bt: string, head: string, row: string) => `u.${name}_base + ${bt} * u.${name}_sb + ${head} * u.${name}_sh + ${row} * u.${name}_ss`;

/** The strides of an operand as the uniforms `<name>_base`, `<name>_sb`, `<name>_sh`, `<name>_ss`. */
function strideUniforms(name: string, st: Strides): Record<string, number> {
  return { [`${name}_base`]: st.base, [`${name}_sb`]: st.sb, [`${name}_sh`]: st.sh, [`${name}_ss`]: st.ss };
}

/**
 * WGSL: whether an f32 is NaN or infinite, from its bits (WGSL leaves min / max / comparisons of NaN to the
 * implementation: lavapipe's min / max pass over a NaN, so the summaries and R would hide one).
 */
const NOT_FINITE = 'fn not_finite(x: f32) -> bool {\n  return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;\n}';

/**
 * Per (kv head, segment) summaries of K stored in `dtype` (computed in f32); a segment holding a NaN or infinite key
 * gets radius -1, read by the certificate as no bound.
 */
export function guardSummariesProgram(dtype: StorageDType = 'f32', kvLength = false): WgslProgram {
  const b = new ShaderBuilder('guard_summaries');
  if (dtype === 'f16') b.enableF16();
  const index = gridIndex(b, SEQUENCE_WORKGROUP);
  for (const f of ['d', 'nk', 'nseg', 'kv_heads']) b.uniform(f, 'u32');
  declareStrides(b, 'k');
  b.storageArray('K', dtype);
  b.storageArray('SEG', 'u32');
  b.storageArray('SUM', 'f32', 'read_write');
  if (kvLength) b.storageArray('KVLEN', 'u32');
  const body = /* wgsl */ `${index}
  let kh = idx / u.nseg;
  let s = idx % u.nseg;
  let bt = kh / u.kv_heads;
  let g = kh % u.kv_heads;
  let j0 = SEG[s];
  // padding keys (at or past kvLength) are left out: no row reads them; a segment of padding alone bounds nothing
  let j1 = ${kvLength ? 'max(j0, min(SEG[s + 1u], KVLEN[bt]))' : 'SEG[s + 1u]'};
  let rec = idx * (3u * u.d + 1u);
  if (j1 == j0) {
    for (var c = 0u; c < 3u * u.d + 1u; c++) { SUM[rec + c] = 0.0; }
    return;
  }
  var bad = false;
  for (var c = 0u; c < u.d; c++) {
    var lo = f32(K[${rowAt('k', 'bt', 'g', 'j0')} + c]);
    var hi = lo;
    var sum = 0.0;
    for (var j = j0; j < j1; j++) {
      let x = f32(K[${rowAt('k', 'bt', 'g', 'j')} + c]);
      lo = min(lo, x);
      hi = max(hi, x);
      sum += x;
      if (not_finite(x)) { bad = true; }
    }
    SUM[rec + c] = lo;
    SUM[rec + u.d + c] = hi;
    SUM[rec + 2u * u.d + c] = sum / f32(j1 - j0);
  }
  var r2 = 0.0;
  for (var j = j0; j < j1; j++) {
    var s2 = 0.0;
    for (var c = 0u; c < u.d; c++) {
      let x = f32(K[${rowAt('k', 'bt', 'g', 'j')} + c]) - SUM[rec + 2u * u.d + c];
      s2 += x * x;
    }
    r2 = max(r2, s2);
  }
  SUM[rec + 3u * u.d] = select(sqrt(r2) * ${1 + 2 ** -20}, -1.0, bad);`;
  b.declare(NOT_FINITE);
  return b.build({ workgroupSize: SEQUENCE_WORKGROUP, body, keyParts: [dtype, kvLength ? 'kvlen' : ''] });
}

/** Per kv head, the largest range of one V column, V stored in `dtype`; -1 (no bound) where V holds a NaN or infinity. */
export function guardValueRangeProgram(dtype: StorageDType = 'f32', kvLength = false): WgslProgram {
  const b = new ShaderBuilder('guard_value_range');
  if (dtype === 'f16') b.enableF16();
  const index = gridIndex(b, SEQUENCE_WORKGROUP);
  for (const f of ['dv', 'nk', 'kv_heads']) b.uniform(f, 'u32');
  declareStrides(b, 'v');
  b.storageArray('V', dtype);
  b.storageArray('R', 'f32', 'read_write');
  if (kvLength) b.storageArray('KVLEN', 'u32');
  const body = /* wgsl */ `${index}
  let bt = idx / u.kv_heads;
  let g = idx % u.kv_heads;
  // the values of padding keys (at or past kvLength) are left out: no row reads them
  let nv = ${kvLength ? 'min(u.nk, KVLEN[bt])' : 'u.nk'};
  var best = 0.0;
  var bad = false;
  if (nv == 0u) {
    R[idx] = 0.0;
    return;
  }
  for (var c = 0u; c < u.dv; c++) {
    var lo = f32(V[${rowAt('v', 'bt', 'g', '0u')} + c]);
    var hi = lo;
    if (not_finite(lo)) { bad = true; }
    for (var j = 1u; j < nv; j++) {
      let x = f32(V[${rowAt('v', 'bt', 'g', 'j')} + c]);
      lo = min(lo, x);
      hi = max(hi, x);
      if (not_finite(x)) { bad = true; }
    }
    best = max(best, hi - lo);
  }
  R[idx] = select(best, -1.0, bad);`;
  b.declare(NOT_FINITE);
  return b.build({ workgroupSize: SEQUENCE_WORKGROUP, body, keyParts: [dtype, kvLength ? 'kvlen' : ''] });
}

/** The model mask's predicate as `keep_model` (its tables renamed apart from the spec's). */
function modelPredicate(modelMask: MaskSpec): string {
  const p = maskPredicate(modelMask);
  if (p.dataLeaves.length > 0) throw new Error(`guarded WGSL kernel: the model mask ${modelMask.kind} is data-dependent`);
  if (p.always) return 'fn keep_model(i: i32, j: i32, off_br: i32, past: i32) -> bool {\n  _ = i;\n  _ = j;\n  _ = off_br;\n  _ = past;\n  return true;\n}';
  return p.code
    .replace(/\b(global|blocks)(\d+)_/g, 'model_$1$2_')
    .replace('fn keep(i: i32, j: i32, off_br: i32, past: i32, qh: u32, kh: u32) -> bool {', 'fn keep_model(i: i32, j: i32, off_br: i32, past: i32) -> bool {\n  let qh = 0u;\n  let kh = 0u;');
}

/**
 * The keys a row may keep, when the spec bounds them: a band [p + lo, p + hi] around the row's position p (one
 * alignment) and extra keys (sinks, global tokens), every row but the global queries (which scan every key).
 * Undefined: no such bound (data-dependent leaves, block layouts, mixed alignments), every row scans every key.
 */
function candidateKeys(spec: MaskSpec, dataDependent: boolean): KeySupport | undefined {
  if (dataDependent) return undefined;
  const s = keySupport(spec);
  if (!s || s.aligns.length > 1) return undefined;
  if (s.lo === -Infinity && s.hi === Infinity) return undefined;
  return s;
}

/** The model mask as one exact interval per row [p + lo, p + hi] (dense, causal, a plain window), or undefined. */
function modelInterval(modelMask: MaskSpec): { readonly lo: number; readonly hi: number; readonly align?: string } | undefined {
  switch (modelMask.kind) {
    case 'dense':
      return { lo: -Infinity, hi: Infinity };
    case 'causal':
      return { lo: -Infinity, hi: 0, align: modelMask.align };
    case 'window':
      return modelMask.left + modelMask.right < 0 ? undefined : { lo: -modelMask.left, hi: modelMask.right, align: modelMask.align };
    default:
      return undefined;
  }
}

/** WGSL: the query position of row i under an alignment (top-left: i; bottom-right: i + nk - nq; past: i + past). */
const alignedRow = (align: string | undefined) => (align === 'bottom-right' ? 'i + u.off_br' : align === 'past' ? 'i + past_of(qh)' : 'i');

/** WGSL: p + offset clamped into [0, nk], where offset may be infinite (then 0 or nk). */
function clampedEdge(p: string, offset: number): string {
  if (offset === -Infinity) return '0';
  if (offset === Infinity) return 'i32(u.nk)';
  return `clamp(${p} + (${offset}), 0, i32(u.nk))`;
}

export function guardedAttentionProgram(cfg: {
  spec: MaskSpec;
  modelMask: MaskSpec;
  headDim: number;
  vHeadDim: number;
  scale: number;
  softcap: number;
  epsilon: number;
  /** An additive f32 bias (values at or below -1e29 mask), read at b · bias_sb + h · bias_sh + i · bias_si + j. */
  bias?: boolean;
  /** Keys j >= KVLEN[b] are padding. */
  kvLength?: boolean;
  /** Storage of Q, K, V and Y (default f32; arithmetic is f32 either way). */
  dtype?: StorageDType;
}): WgslProgram {
  const { spec, modelMask, headDim: d, vHeadDim: dv, scale, softcap, epsilon } = cfg;
  const T = cfg.dtype ?? 'f32';
  const hasBias = cfg.bias ?? false;
  const hasKvLength = cfg.kvLength ?? false;
  const b = new ShaderBuilder('guarded_attention');
  if (T === 'f16') b.enableF16();
  const index = gridIndex(b, SEQUENCE_WORKGROUP);
  for (const f of ['nq', 'nk', 'heads', 'kv_heads', 'group', 'nseg']) b.uniform(f, 'u32');
  b.uniform('off_br', 'i32');
  b.uniform('past', 'i32');
  for (const name of ['q', 'k', 'v', 'y']) declareStrides(b, name);
  for (const s of ['Q', 'K', 'V']) b.storageArray(s, T);
  for (const s of ['SUM', 'R']) b.storageArray(s, 'f32');
  b.storageArray('SEG', 'u32');
  b.storageArray('Y', T, 'read_write');
  b.storageArray('CERT', 'f32', 'read_write');
  b.storageArray('COUNTER', 'atomic<u32>', 'read_write');
  if (hasBias) {
    b.storageArray('BIAS', 'f32');
    for (const f of ['bias_sb', 'bias_sh', 'bias_si']) b.uniform(f, 'u32');
  }
  if (hasKvLength) {
    b.storageArray('KVLEN', 'u32');
    b.uniform('past_from_kvlen', 'u32');
  }
  const sparse = maskPredicate(spec);
  if (sparse.dataLeaves.length > 0) {
    b.storageArray('data_codes', 'u32');
    for (const name of dataLeafUniforms(sparse.dataLeaves.length)) b.uniform(name, 'u32');
  }
  b.declare(sparse.always ? 'fn keep(i: i32, j: i32, off_br: i32, past: i32, qh: u32, kh: u32) -> bool {\n  _ = i;\n  _ = j;\n  _ = off_br;\n  _ = past;\n  _ = qh;\n  _ = kh;\n  return true;\n}' : sparse.code);
  b.declare(modelPredicate(modelMask));
  const cap = softcap > 0 ? `${softcap} * ${b.helper('safe_tanh')}(x / ${softcap})` : 'x';
  b.declare(`fn capped(x: f32) -> f32 {\n  return ${cap};\n}`);
  // the bias of (query head qh, row i, key j), and whether the model lets row i see key j at all
  b.declare(
    `fn bias_at(qh: u32, i: i32, j: i32) -> f32 {\n` +
      (hasBias ? `  return BIAS[(qh / u.heads) * u.bias_sb + (qh % u.heads) * u.bias_sh + u32(i) * u.bias_si + u32(j)];\n}` : '  _ = qh;\n  _ = i;\n  _ = j;\n  return 0.0;\n}'),
  );
  // the spec's past offset of batch b: the cached keys' count, or kvLength[b] - nq without them (an external cache)
  b.declare(
    `fn past_of(qh: u32) -> i32 {\n` +
      (hasKvLength ? '  if (u.past_from_kvlen != 0u) { return i32(KVLEN[qh / u.heads]) - i32(u.nq); }\n' : '  _ = qh;\n') +
      '  return u.past;\n}',
  );
  b.declare(
    `fn allowed(qh: u32, i: i32, j: i32) -> bool {\n` +
      (hasKvLength ? '  if (u32(j) >= KVLEN[qh / u.heads]) { return false; }\n' : '') +
      `  return keep_model(i, j, u.off_br, past_of(qh)) && bias_at(qh, i, j) > -1.0e29;\n}`,
  );
  const f = (x: number) => (Number.isInteger(x) ? `${x}.0` : `${x}`);
  // the keys each row may keep (a band and extra keys) and the model's keys as one interval per row, when the specs
  // say so: the sparse pass reads the band and the extra keys instead of every key, and the certificate counts a
  // segment outside them in closed form (with a bias it reads the segment's keys for their largest bias)
  const cand = candidateKeys(spec, sparse.dataLeaves.length > 0);
  const model = modelInterval(modelMask);
  const extra = cand ? cand.extra : [];
  if (extra.length > 0) b.declare(`const EXTRA = array<i32, ${extra.length}>(${extra.map((e) => `${e}`).join(', ')});`);
  if (cand && cand.globalQueries.length > 0) {
    b.declare(`fn is_global(p: i32) -> bool {\n  return ${cand.globalQueries.map((g) => `p == ${g}`).join(' || ')};\n}`);
  }
  // online softmax of the row over the keys j in [lo, hi) not skipped by `skip`, into m, l and acc
  const accumulate = (skip: string, lo = '0', hi = 'i32(u.nk)') => /* wgsl */ `  for (var j = ${lo}; j < ${hi}; j++) {
    if (${skip}) { continue; }
    let ko = ${rowAt('k', 'bt', 'g', 'u32(j)')};
    var dot = 0.0;
    for (var c = 0u; c < ${d}u; c++) { dot += q[c] * f32(K[ko + c]); }
    let s = capped(dot * ${f(scale)}) + bias_at(qh, i, j);
    let mn = max(m, s);
    let alpha = exp(m - mn);
    let p = exp(s - mn);
    l = l * alpha + p;
    let vo = ${rowAt('v', 'bt', 'g', 'u32(j)')};
    for (var c = 0u; c < ${dv}u; c++) { acc[c] = acc[c] * alpha + p * f32(V[vo + c]); }
    m = mn;
  }`;
  const body = /* wgsl */ `${index}
  let qh = idx / u.nq;
  let i = i32(idx % u.nq);
  let bt = qh / u.heads;
  let h = qh % u.heads;
  let g = h / u.group;
  let kh = bt * u.kv_heads + g;
  let qo = ${rowAt('q', 'bt', 'h', 'u32(i)')};
  var q: array<f32, ${d}>;
  var qn = 0.0;
  for (var c = 0u; c < ${d}u; c++) { q[c] = f32(Q[qo + c]); qn += q[c] * q[c]; }
  qn = sqrt(qn);
  // the row's candidate keys: the band [band_lo, band_hi) and the extra keys outside it (every key on a global query)
${cand ? `  let pb = ${alignedRow(cand.aligns[0])};
  var band_lo = ${clampedEdge('pb', cand.lo)};
  var band_hi = max(band_lo, ${clampedEdge('pb', cand.hi + 1)});
  var extras = ${extra.length}u;
${cand.globalQueries.length > 0 ? '  if (is_global(pb)) { band_lo = 0; band_hi = i32(u.nk); extras = 0u; }\n' : ''}` : '  let band_lo = 0;\n  let band_hi = i32(u.nk);\n'}  // the model's keys [model_lo, model_hi) (every key when its mask is no single interval)
${model ? `  let pm = ${alignedRow(model.align)};
  var model_lo = ${clampedEdge('pm', model.lo)};
  var model_hi = max(model_lo, ${clampedEdge('pm', model.hi + 1)});` : '  let model_lo = 0;\n  var model_hi = i32(u.nk);'}
${hasKvLength ? '  model_hi = max(model_lo, min(model_hi, i32(KVLEN[bt])));\n' : ''}  // 1. the sparse keys
  var m = -3.0e38;
  var l = 0.0;
  var acc: array<f32, ${dv}>;
  for (var c = 0u; c < ${dv}u; c++) { acc[c] = 0.0; }
${extra.length > 0 ? `  for (var e = 0u; e < extras; e++) {
    let je = EXTRA[e];
    if (je >= i32(u.nk) || (je >= band_lo && je < band_hi)) { continue; }
${accumulate('!(allowed(qh, i, j) && keep(i, j, u.off_br, past_of(qh), qh, kh))', 'je', 'je + 1').replace(/^/gm, '  ')}
  }
` : ''}${accumulate('!(allowed(qh, i, j) && keep(i, j, u.off_br, past_of(qh), qh, kh))', 'band_lo', 'band_hi')}
  // 2. the certificate of the dropped keys, segment by segment: a segment that holds no candidate key drops every
  //    model key in it (counted in closed form); one that may keep some is read key by key
  var bsum = 0.0;
  var broken = false;
  var drops = false;
  for (var sg = 0u; sg < u.nseg; sg++) {
    let s0 = i32(SEG[sg]);
    let s1 = i32(SEG[sg + 1u]);
    var cnt = 0u;
    var maxb = -3.0e38;
    var exact = ${cand && model && !hasBias ? 'true' : 'false'};
${cand && model && !hasBias ? `    if (s1 > band_lo && s0 < band_hi) { exact = false; }
${extra.length > 0 ? `    for (var e = 0u; e < extras; e++) { if (EXTRA[e] >= s0 && EXTRA[e] < s1) { exact = false; } }\n` : ''}    if (exact) {
      cnt = u32(max(0, min(s1, model_hi) - max(s0, model_lo)));
      maxb = 0.0;
    }
` : ''}    if (!exact) {
      for (var j = max(s0, model_lo); j < min(s1, model_hi); j++) {
        if (allowed(qh, i, j) && !keep(i, j, u.off_br, past_of(qh), qh, kh)) {
          cnt++;
          maxb = max(maxb, bias_at(qh, i, j));
        }
      }
    }
    if (cnt == 0u) { continue; }
    drops = true;
    let rec = (kh * u.nseg + sg) * ${3 * d + 1}u;
    // radius -1: the segment holds a NaN or infinite key (no bound)
    if (SUM[rec + ${3 * d}u] < 0.0) { broken = true; }
    var quest = 0.0;
    var ball = 0.0;
    for (var c = 0u; c < ${d}u; c++) {
      quest += max(q[c] * SUM[rec + c], q[c] * SUM[rec + ${d}u + c]);
      ball += q[c] * SUM[rec + ${2 * d}u + c];
    }
    ball += qn * SUM[rec + ${3 * d}u];
    let bound = capped(min(quest, ball) * ${f(scale)}) + maxb;
    bsum += f32(cnt) * exp(min(bound - m, 44.0));
  }
  bsum *= ${WGSL_CERTIFICATE_SLACK};
  var z = l;
  if (m < -1.0e29) { z = 0.0; }
  let mhat = bsum / max(z + bsum, 1.0e-30);
  CERT[idx] = mhat;
  // 3. the exact row when the bound exceeds the budget, or when no sparse key is left but a dropped one is (the
  //    sparse output, 0, is then no convex combination of V and m_hat · R bounds nothing)
  // R -1: V holds a NaN or infinity (no bound for a row that drops a key)
  if (drops && R[kh] < 0.0) { broken = true; }
  if (broken || !(${f(epsilon)} >= mhat * R[kh]) || (z == 0.0 && bsum > 0.0)) {
    atomicAdd(&COUNTER[0], 1u);
    m = -3.0e38;
    l = 0.0;
    for (var c = 0u; c < ${dv}u; c++) { acc[c] = 0.0; }
    ${accumulate('!allowed(qh, i, j)', 'model_lo', 'model_hi')}
  }
  let yo = ${rowAt('y', 'bt', 'h', 'u32(i)')};
  if (m < -1.0e29) {
    for (var c = 0u; c < ${dv}u; c++) { Y[yo + c] = ${T}(0.0); }
  } else {
    let inv = 1.0 / l;
    for (var c = 0u; c < ${dv}u; c++) { Y[yo + c] = ${T}(acc[c] * inv); }
  }`;
  return b.build({
    workgroupSize: SEQUENCE_WORKGROUP,
    body,
    keyParts: [JSON.stringify(spec), JSON.stringify(modelMask), d, dv, scale, softcap, epsilon, hasBias ? 'bias' : '', hasKvLength ? 'kvlen' : '', T],
  });
}

export interface WgslGuardedInputs {
  /**
   * f32 in params.layout: [batch, heads, nq, headDim] (bhsd), [batch, nq, heads, headDim] (bshd), [batch, nq,
   * heads · headDim] (bsd), or Q, K and V packed [batch, n, (heads + 2 kvHeads) · headDim] (packed-qkv, no k, v).
   */
  readonly q: { readonly shape: readonly number[]; readonly data: Float32Array };
  /** Keys in the layout of Q, kvHeads heads (not with packed-qkv). */
  readonly k?: { readonly shape: readonly number[]; readonly data: Float32Array };
  /** Values in the layout of Q, kvHeads heads of vHeadDim (not with packed-qkv). */
  readonly v?: { readonly shape: readonly number[]; readonly data: Float32Array };
  /**
   * Additive f32 bias, rank 2 to 4, broadcast to [batch, heads, nq, nk]: [.., nq, nk], or a key bias [.., 1, nk]
   * (constant along the query axis: read with row stride 0, never expanded). Values at or below -1e29 (or -inf) mask.
   */
  readonly bias?: { readonly shape: readonly number[]; readonly data: Float32Array };
  /** Per batch: keys j >= kvLength[b] are padding. */
  readonly kvLength?: ArrayLike<number>;
  /** Cached keys and values before this call's, [batch, kvHeads, past, headDim | vHeadDim] whatever the layout. */
  readonly pastKey?: HostTensor;
  readonly pastValue?: HostTensor;
}

export interface WgslGuardedResult {
  /** Y in the layout of Q (bsd for packed QKV). */
  readonly y: Float32Array;
  /** m_hat per (batch, head, query row): an upper bound on the row's dropped softmax mass. */
  readonly certificates: Float32Array;
  /** Rows whose bound m_hat · R exceeded epsilon (recomputed exactly inside the kernel). */
  readonly fallbackRows: number;
  readonly rows: number;
}

/** What the metadata of a guarded WGSL kernel records. */
export interface WgslGuardInfo {
  readonly tier: 'guarded';
  readonly epsilon: number;
  readonly block: number;
  readonly modelMask: MaskSpec;
  readonly summaries: readonly string[];
  readonly programs: readonly string[];
}

export function guardInfo(guard: WgslGuardOptions): WgslGuardInfo {
  return {
    tier: 'guarded',
    epsilon: guard.epsilon,
    block: guard.block ?? 64,
    modelMask: guard.modelMask ?? { kind: 'dense' },
    summaries: ['key-minmax-per-channel', 'key-center-radius', 'value-range'],
    programs: ['guard_summaries', 'guard_value_range', 'guarded_attention'],
  };
}

/** Q, K, V's shapes against the params in their layout (attentionShape reads the extents, this checks the rest). */
function checkLayoutShapes(p: AttentionParams, inputs: WgslGuardedInputs, B: number, nq: number, nk: number): void {
  const { numHeads: H, kvNumHeads: G, headDim: d, vHeadDim: dv } = p;
  const want: Record<string, readonly number[]> =
    p.layout === 'bhsd'
      ? { q: [B, H, nq, d], k: [B, G, nk, d], v: [B, G, nk, dv] }
      : p.layout === 'bshd'
        ? { q: [B, nq, H, d], k: [B, nk, G, d], v: [B, nk, G, dv] }
        : p.layout === 'bsd'
          ? { q: [B, nq, H * d], k: [B, nk, G * d], v: [B, nk, G * dv] }
          : { q: [B, nq, (H + 2 * G) * d] };
  for (const [name, shape] of Object.entries(want)) {
    const t = inputs[name as 'q' | 'k' | 'v']!;
    const n = shape.reduce((a, x) => a * x, 1);
    if (t.shape.length !== shape.length || t.shape.some((x, i) => x !== shape[i]) || t.data.length !== n) {
      throw new Error(`guarded WGSL kernel: ${name.toUpperCase()} [${t.shape.join(', ')}] (${t.data.length} values) is not [${shape.join(', ')}] for layout ${p.layout} and these params`);
    }
  }
  if (p.layout === 'packed-qkv' && dv !== d) throw new Error(`guarded WGSL kernel: packed QKV needs vHeadDim = headDim, got ${dv} and ${d}`);
}

/** A guarded kernel with its inputs on the device and its passes encoded: run it as often as needed, then read. */
export interface PreparedGuardedAttention {
  /** One call: the fallback counter cleared, then summaries, V ranges and attention in one compute pass. */
  run(): Promise<void>;
  /** Y, the certificates and the fallback count of the last run. */
  read(): Promise<WgslGuardedResult>;
  release(): void;
}

/** Runs the guarded kernel (f32, any layout) on the device: summaries, V ranges and attention in one compute pass. */
export async function runGuardedAttention(rt: WgslRuntime, params: AttentionParams, inputs: WgslGuardedInputs, guard: WgslGuardOptions): Promise<WgslGuardedResult> {
  const prepared = await prepareGuardedAttention(rt, params, inputs, guard);
  try {
    await prepared.run();
    return await prepared.read();
  } finally {
    prepared.release();
  }
}

/** Uploads the inputs and encodes the guarded kernel's passes once (see runGuardedAttention). */
export async function prepareGuardedAttention(rt: WgslRuntime, params: AttentionParams, inputs: WgslGuardedInputs, guard: WgslGuardOptions): Promise<PreparedGuardedAttention> {
  const p = validateAttentionParams(params);
  if (isLowRank(p.spec)) throw new Error(`guarded WGSL kernel: spec ${p.spec.kind} is a low-rank form, not a key set`);
  if (!(guard.epsilon >= 0) || !Number.isFinite(guard.epsilon)) throw new Error(`guard epsilon must be finite and >= 0, got ${guard.epsilon}`);
  const packed = p.layout === 'packed-qkv';
  if (packed ? inputs.k !== undefined || inputs.v !== undefined : inputs.k === undefined || inputs.v === undefined) {
    throw new Error(`guarded WGSL kernel: layout ${p.layout} takes ${packed ? 'Q alone (K and V packed in it)' : 'Q, K and V'}`);
  }
  const plain = {
    q: inputs.q,
    ...(inputs.k ? { k: inputs.k } : {}),
    ...(inputs.v ? { v: inputs.v } : {}),
    ...(inputs.pastKey ? { pastKey: inputs.pastKey } : {}),
    ...(inputs.pastValue ? { pastValue: inputs.pastValue } : {}),
    ...(inputs.kvLength ? { kvLength: inputs.kvLength } : {}),
  };
  const shape = attentionShape(p, plain);
  const { batch: B, nq, nkNew, past } = shape;
  const { numHeads: H, kvNumHeads: KVH, headDim: d, vHeadDim: dv } = p;
  checkLayoutShapes(p, inputs, B, nq, nkNew);
  for (const [name, t, dim] of [['pastKey', inputs.pastKey, d], ['pastValue', inputs.pastValue, dv]] as const) {
    if (t && (t.shape.length !== 4 || t.shape[0] !== B || t.shape[1] !== KVH || t.shape[2] !== past || t.shape[3] !== dim || t.data.length !== B * KVH * past * dim)) {
      throw new Error(`guarded WGSL kernel: ${name} [${t.shape.join(', ')}] is not [${B}, ${KVH}, ${past}, ${dim}]`);
    }
  }
  const nk = past + nkNew; // present keys: the cached ones, then this call's
  const modelMask = guard.modelMask ?? { kind: 'dense' as const };
  const spec = p.spec as MaskSpec;
  const seg = guardSegments(spec, nk, guard.block ?? 64);
  const nseg = seg.length - 1;
  let biasStrides = { bias_sb: 0, bias_sh: 0, bias_si: 0 };
  if (inputs.bias) {
    const sh = inputs.bias.shape;
    if (sh.length < 2 || sh.length > 4) throw new Error(`guarded WGSL kernel: bias must have rank 2 to 4, got [${sh.join(', ')}]`);
    const s4 = [...new Array<number>(4 - sh.length).fill(1), ...sh] as [number, number, number, number];
    if ((s4[0] !== 1 && s4[0] !== B) || (s4[1] !== 1 && s4[1] !== H) || (s4[2] !== 1 && s4[2] !== nq) || s4[3] !== nk) {
      throw new Error(`guarded WGSL kernel: bias [${sh.join(', ')}] does not broadcast to [${B}, ${H}, ${nq}, ${nk}] (its last dim must be nk, the one before nq or 1)`);
    }
    if (inputs.bias.data.length !== s4[0] * s4[1] * s4[2] * nk) {
      throw new Error(`guarded WGSL kernel: bias [${sh.join(', ')}] needs ${s4[0] * s4[1] * s4[2] * nk} values, got ${inputs.bias.data.length}`);
    }
    // a key bias [.., 1, nk] (ALiBi as slope_h · j, a key-padding mask) is read with bias_si = 0: uploaded as given, never expanded to nq x nk
    const si = s4[2] === 1 ? 0 : nk;
    const sh4 = s4[2] * nk;
    biasStrides = { bias_sb: s4[0] === 1 ? 0 : s4[1] * sh4, bias_sh: s4[1] === 1 ? 0 : sh4, bias_si: si };
  }
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const owned: GPUBuffer[] = [];
  const buf = (bytes: number) => {
    const x = rt.acquire(Math.max(16, bytes), usage);
    owned.push(x);
    return x;
  };
  const up = (data: Float32Array | Uint32Array) => {
    const x = rt.upload(data.length > 0 ? (data as ArrayBufferView<ArrayBuffer>) : new Float32Array(4), usage);
    owned.push(x);
    return x;
  };
  // Q, and the present K and V (past keys, then this call's: bhsd when there are past keys; packed QKV without them
  // one buffer bound three times, K and V at their offsets in each row); kvLength checked there
  const dtype = guard.dtype ?? 'f32';
  if (dtype === 'f16' && !rt.features.f16) throw new Error('guarded WGSL kernel: f16 storage needs the shader-f16 feature, not offered by this adapter');
  const dev = uploadInputs(rt, p, plain, shape, dtype, owned);
  const [Qb, Kb, Vb] = [dev.q, dev.k, dev.v];
  const SEGb = up(seg);
  const SUMb = buf(B * KVH * Math.max(1, nseg) * (3 * d + 1) * 4);
  const Rb = buf(B * KVH * 4);
  const Yb = buf(B * H * nq * dv * (dtype === 'f16' ? 2 : 4));
  const CERTb = buf(B * H * nq * 4);
  const COUNTb = up(new Uint32Array(4));
  const KVLENb = inputs.kvLength ? up(Uint32Array.from(inputs.kvLength)) : undefined;
  const extra = [...(inputs.bias ? [up(inputs.bias.data)] : []), ...(KVLENb ? [KVLENb] : [])];
  // data-dependent leaves (top-k blocks, LSH buckets): their codes, computed as the plain kernel's are
  const data = B * H * nq > 0 ? await prepareDataLeaves(rt, p, plain, shape, dev, dtype, owned) : undefined;
  if (data) extra.push(data.buffer);
  const uniformsOwned: GPUBuffer[] = [];
  const steps: KernelStep[] = [
    ...(data?.steps ?? []),
    ...(nseg > 0 ? [{ program: guardSummariesProgram(dtype, KVLENb !== undefined), storage: [Kb, SEGb, SUMb, ...(KVLENb ? [KVLENb] : [])], uniforms: { total: B * KVH * nseg, d, nk, nseg, kv_heads: KVH, ...strideUniforms('k', dev.kSt) }, workgroups: Math.ceil((B * KVH * nseg) / SEQUENCE_WORKGROUP) }] : []),
    ...(nk > 0 ? [{ program: guardValueRangeProgram(dtype, KVLENb !== undefined), storage: [Vb, Rb, ...(KVLENb ? [KVLENb] : [])], uniforms: { total: B * KVH, dv, nk, kv_heads: KVH, ...strideUniforms('v', dev.vSt) }, workgroups: Math.ceil((B * KVH) / SEQUENCE_WORKGROUP) }] : []),
    {
      program: guardedAttentionProgram({
        spec,
        modelMask,
        headDim: d,
        vHeadDim: dv,
        scale: p.scale,
        softcap: p.softcap,
        epsilon: guard.epsilon,
        bias: inputs.bias !== undefined,
        kvLength: inputs.kvLength !== undefined,
        dtype,
      }),
      storage: [Qb, Kb, Vb, SUMb, Rb, SEGb, Yb, CERTb, COUNTb, ...extra],
      uniforms: {
        total: B * H * nq,
        nq,
        nk,
        heads: H,
        kv_heads: KVH,
        group: H / KVH,
        nseg,
        off_br: nk - nq,
        past,
        ...(inputs.kvLength ? { past_from_kvlen: inputs.pastKey === undefined ? 1 : 0 } : {}),
        ...strideUniforms('q', dev.qSt),
        ...strideUniforms('k', dev.kSt),
        ...strideUniforms('v', dev.vSt),
        ...strideUniforms('y', shape.y),
        ...(inputs.bias ? biasStrides : {}),
        ...(data?.uniforms ?? {}),
      },
      workgroups: Math.ceil((B * H * nq) / SEQUENCE_WORKGROUP),
    },
  ];
  const release = () => {
    for (const x of [...owned, ...uniformsOwned]) rt.release(x);
    owned.length = 0;
    uniformsOwned.length = 0;
  };
  try {
    const encoded = B * H * nq > 0 ? await encodeSteps(rt, steps, uniformsOwned) : undefined;
    const zero = new Uint32Array(4);
    return {
      async run() {
        if (!encoded) return;
        rt.device.queue.writeBuffer(COUNTb, 0, zero);
        await runSteps(rt, 'guarded attention', encoded);
      },
      async read() {
        const y = await readOutput(rt, Yb, B * H * nq * dv, dtype);
        const certificates = new Float32Array(await rt.download(CERTb, B * H * nq * 4));
        const fallbackRows = new Uint32Array(await rt.download(COUNTb, 4))[0]!;
        return { y, certificates, fallbackRows, rows: B * H * nq };
      },
      release,
    };
  } catch (e) {
    release();
    throw e;
  }
}
