// ONNX Attention (opset 23) and com.microsoft Attention in seeded random combinations, each run in onnxruntime as
// written and, lifted by the fused rules and lowered to standard ops, on the same inputs.
// - ONNX Attention: 3D or 4D inputs, grouped key/value heads, self or cross keys, past key/value with present
//   outputs, is_causal, attn_mask (bool or float, [S, T], [B, 1, S, T], [1, N, S, T], or one key short), scale,
//   softcap, qk_matmul_output_mode, (opset 24) nonpad_kv_seqlen, f32 or f16.
// - com.microsoft Attention: one query or several, past, unidirectional, mask_index [B, T], [B, S, T], [B] lengths
//   (and, refused with the reason, [2B] start positions and 1D with past), attention_bias, scale,
//   mask_filter_value, qkv_hidden_sizes.
// - com.microsoft QAttention (uint8 input, int8 weights): scales and zero points per tensor or per column, the
//   same masks, past, unidirectional, mask_filter_value.
// Every output matches (helpers/fused-combinations.ts) but two qk outputs, not compared,
// where onnxruntime 1.30 and the lowering differ (Y agrees): in mode 2 onnxruntime fills masked scores with the
// float lowest where the lowering writes -inf; in mode 0 with a softcap onnxruntime returns the softcapped scores,
// the lowering the scores before the softcap, as the ONNX spec defines mode 0. A combination onnxruntime refuses
// (each suite names its refusals) is no model and is skipped.

import { SplitMix64 } from '@attnopt/ir';
import type * as ort from 'onnxruntime-node';
import { combinationSuite, type Drawn } from './helpers/fused-combinations.js';

const [B, N, KV, H, P] = [2, 4, 2, 8, 3];

function onnxAttention(seed: number): Drawn {
  const rng = new SplitMix64(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng.nextFloat() * xs.length)]!;
  const S = pick([1, 3, 4]);
  const cross = pick([false, false, true]);
  const L = cross ? 5 : S;
  const past = !cross && pick([false, true]);
  const T = L + (past ? P : 0);
  const rank = pick([3, 4]);
  const kvh = pick([N, KV]);
  const mask = pick(['none', 'bool [S, T]', 'float [S, T]', 'bool [B, 1, S, T]', 'float [1, N, S, T]', 'float [B, 1, S, T - 1]'] as const);
  const scale = pick([undefined, 0.3]);
  const softcap = pick([undefined, undefined, 4]);
  const qk = pick([undefined, undefined, 0, 1, 2, 3]);
  const t = (n: number, s: number) => (rank === 4 ? `f32[${B}, ${n}, ${s}, ${H}]` : `f32[${B}, ${s}, ${n * H}]`);
  const inputs = [`  input %q: ${t(N, S)}`, `  input %k: ${t(kvh, L)}`, `  input %v: ${t(kvh, L)}`];
  const args = ['%q', '%k', '%v'];
  const maskType = {
    'bool [S, T]': `bool[${S}, ${T}]`,
    'float [S, T]': `f32[${S}, ${T}]`,
    'bool [B, 1, S, T]': `bool[${B}, 1, ${S}, ${T}]`,
    'float [1, N, S, T]': `f32[1, ${N}, ${S}, ${T}]`,
    'float [B, 1, S, T - 1]': `f32[${B}, 1, ${S}, ${T - 1}]`,
    none: undefined,
  }[mask];
  if (maskType) [inputs.push(`  input %attn_mask: ${maskType}`), args.push('%attn_mask')];
  else args.push('_');
  if (past) [inputs.push(`  input %past_key: f32[${B}, ${kvh}, ${P}, ${H}]`, `  input %past_value: f32[${B}, ${kvh}, ${P}, ${H}]`), args.push('%past_key', '%past_value')];
  // opset 24: the valid keys per batch row (no cache with it)
  const nonpad = !past && pick([false, false, true]);
  if (nonpad) [inputs.push(`  input %nonpad_kv_seqlen: i64[${B}]`), args.push('_', '_', '%nonpad_kv_seqlen')];
  while (args[args.length - 1] === '_') args.pop();
  const outs = ['%y', '%present_key', '%present_value', ...(qk !== undefined ? ['%qk'] : [])];
  const used = ['%y', ...(past ? ['%present_key', '%present_value'] : []), ...(qk !== undefined ? ['%qk'] : [])];
  const attrs = [
    `is_causal = ${pick([0, 0, 1])}`,
    ...(rank === 3 ? [`q_num_heads = ${N}`, `kv_num_heads = ${kvh}`] : []),
    ...(scale ? [`scale = ${scale}`] : []),
    ...(softcap ? [`softcap = ${softcap}.0`] : []),
    ...(qk !== undefined ? [`qk_matmul_output_mode = ${qk}`] : []),
  ];
  const skip = qk === 2 || (qk === 0 && softcap) ? ['qk'] : [];
  const f16 = pick([false, false, true]);
  // lengths in [1, T]
  const fill = (feeds: Record<string, ort.Tensor>, r: SplitMix64) => {
    const d = feeds.nonpad_kv_seqlen?.data as BigInt64Array | undefined;
    if (d) for (let k = 0; k < d.length; k++) d[k] = BigInt(1 + Math.floor(r.nextFloat() * T));
  };
  const text = `graph g {\n${inputs.join('\n')}\n  ${outs.join(', ')} = Attention(${args.join(', ')}) {${attrs.join(', ')}}\n  output ${used.join(', ')}\n}`;
  return { opset: nonpad ? 24 : 23, skip, fill, f16, text: f16 ? text.replaceAll('f32[', 'f16[') : text };
}

function msAttention(seed: number): Drawn {
  const rng = new SplitMix64(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng.nextFloat() * xs.length)]!;
  const [E, M] = [12, 8];
  const S = pick([1, 3, 4]);
  const past = pick([false, false, true]);
  const T = S + (past ? P : 0);
  const mask = pick(['none', '2d', '3d', '1d', '1d-start'] as const);
  const sizes = pick([undefined, [16, 16, 8]]);
  const width = sizes ? sizes[0]! + sizes[1]! + sizes[2]! : 3 * 2 * H;
  const inputs = [`  input %x: f32[${B}, ${S}, ${E}]`, `  input %w: f32[${E}, ${width}]`, `  input %b: f32[${width}]`];
  const args = ['%x', '%w', '%b'];
  const maskType = { '2d': `i32[${B}, ${T}]`, '3d': `i32[${B}, ${S}, ${T}]`, '1d': `i32[${B}]`, '1d-start': `i32[${2 * B}]`, none: undefined }[mask];
  if (maskType) [inputs.push(`  input %mask_index: ${maskType}`), args.push('%mask_index')];
  else args.push('_');
  if (past) [inputs.push(`  input %past: f32[2, ${B}, 2, ${P}, ${H}]`), args.push('%past')];
  else args.push('_');
  if (pick([false, false, true])) [inputs.push(`  input %attention_bias: f32[1, 2, ${S}, ${T}]`), args.push('%attention_bias')];
  while (args[args.length - 1] === '_') args.pop();
  const outs = past ? '%y, %present' : '%y';
  const scale = pick([undefined, 0.3]);
  const filter = pick([undefined, -1000]);
  const attrs = ['num_heads = 2', `unidirectional = ${pick([0, 0, 1])}`, ...(scale ? [`scale = ${scale}`] : []), ...(filter ? [`mask_filter_value = ${filter}.0`] : []), ...(sizes ? [`qkv_hidden_sizes = [${sizes.join(', ')}]`] : [])];
  const fill = (feeds: Record<string, ort.Tensor>, r: SplitMix64) => {
    const d = feeds.mask_index?.data as Int32Array | undefined;
    // 0 / 1 with key 0 kept, lengths in [1, T], or [B] ends (T) and [B] starts (0 or 1)
    if (d) for (let k = 0; k < d.length; k++) d[k] = mask === '1d' ? 1 + Math.floor(r.nextFloat() * T) : mask === '1d-start' ? (k < B ? T : Math.floor(r.nextFloat() * 2)) : k % T === 0 || r.nextFloat() < 0.7 ? 1 : 0;
  };
  return { opset: 21, fill, text: `graph g {\n${inputs.join('\n')}\n  ${outs} = com.microsoft::Attention(${args.join(', ')}) {${attrs.join(', ')}}\n  output ${outs}\n}` };
}

function qAttention(seed: number): Drawn {
  const rng = new SplitMix64(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng.nextFloat() * xs.length)]!;
  const [E, D] = [12, 16];
  const S = pick([1, 3, 4]);
  const past = pick([false, false, true]);
  const T = S + (past ? P : 0);
  const mask = pick(['none', '2d', '3d', '1d'] as const);
  const perColumn = pick([false, true]);
  const inputs = [`  input %x: u8[${B}, ${S}, ${E}]`, `  input %w: i8[${E}, ${3 * D}]`, `  input %b: f32[${3 * D}]`, '  input %x_scale: f32[]', `  input %w_scale: f32[${perColumn ? `${3 * D}` : ''}]`];
  const args = ['%x', '%w', '%b', '%x_scale', '%w_scale'];
  const maskType = { '2d': `i32[${B}, ${T}]`, '3d': `i32[${B}, ${S}, ${T}]`, '1d': `i32[${B}]`, none: undefined }[mask];
  if (maskType) [inputs.push(`  input %mask_index: ${maskType}`), args.push('%mask_index')];
  else args.push('_');
  inputs.push('  input %x_zero_point: u8[]', `  input %w_zero_point: i8[${perColumn ? `${3 * D}` : ''}]`);
  args.push('%x_zero_point', '%w_zero_point');
  if (past) [inputs.push(`  input %past: f32[2, ${B}, 2, ${P}, ${H}]`), args.push('%past')];
  const outs = past ? '%y, %present' : '%y';
  const attrs = ['num_heads = 2', `unidirectional = ${pick([0, 0, 1])}`, ...(pick([false, true]) ? ['mask_filter_value = -1000.0'] : [])];
  const fill = (feeds: Record<string, ort.Tensor>, r: SplitMix64) => {
    // scales of a calibrated int8 model: positive, small; the mask as for Attention
    for (const name of ['x_scale', 'w_scale']) {
      const d = feeds[name]!.data as Float32Array;
      for (let k = 0; k < d.length; k++) d[k] = 0.01 + 0.04 * r.nextFloat();
    }
    const d = feeds.mask_index?.data as Int32Array | undefined;
    if (d) for (let k = 0; k < d.length; k++) d[k] = mask === '1d' ? 1 + Math.floor(r.nextFloat() * T) : k % T === 0 || r.nextFloat() < 0.7 ? 1 : 0;
  };
  return { opset: 21, fill, text: `graph g {\n${inputs.join('\n')}\n  ${outs} = com.microsoft::QAttention(${args.join(', ')}) {${attrs.join(', ')}}\n  output ${outs}\n}` };
}

const REFUSALS = [/mask_index of rank 1 \(start\/end positions, 4D\) is not lifted/, /1D mask_index together with past is not lifted/];

/** onnxruntime refuses none of the drawn QAttention combinations. */
const NONE = /(?!)/;

combinationSuite('ONNX Attention in random combinations against onnxruntime', onnxAttention, 600, 120, {
  // a mask one key short: the spec pads it, onnxruntime's CPU kernel refuses it
  notRun: /inconsistent total_sequence_length \(between attn_mask and past_key and past_value\)/,
  refusals: [],
});
combinationSuite('com.microsoft Attention in random combinations against onnxruntime', msAttention, 300, 100, {
  notRun: /Attention cannot have both past and attention_bias|Input 'past' expect k_hidden_size == v_hidden_size/,
  refusals: REFUSALS,
});
combinationSuite('com.microsoft QAttention in random combinations against onnxruntime', qAttention, 1300, 60, { notRun: NONE, refusals: REFUSALS });
