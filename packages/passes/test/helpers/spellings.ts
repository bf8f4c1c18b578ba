// Attention written in every combination of the spellings exporters and hand-written code use, one choice per
// axis: how Q, K and V reach [B, H, S, D], how Kᵀ is formed, where the scale is applied, the mask, the softmax,
// the product with V and the output layout. Each combination is one function, softmax(s · Q·Kᵀ + M) · V with
// s = 1 / sqrt(8), so a recognizer that reads every axis alone must read every product of them.

import { SplitMix64 } from '@attnopt/ir';

export const SPELLING_AXES = {
  /**
   * Q, K and V as inputs [B, H, S, D]; projected from [B, S, E] and split into heads; one packed projection split
   * three ways; K and V of 2 heads repeated for 4 query heads (repeat_kv: Unsqueeze, Expand, Reshape), over
   * [B, H, T, D] or, as MPT writes it, over [B, T, H, D] before the Transpose to [B, H, T, D].
   */
  input: ['bhsd', 'projected', 'packed', 'repeat-kv', 'repeat-kv-bshd'],
  /**
   * Kᵀ: a Transpose of [B, H, T, D]; one Transpose from [B, T, H, D]; dynamo's Reshape sandwich; Einsum (Q first,
   * K first, or over an ellipsis as Flax and einops-style code write it); onnxruntime's FusedMatMul(Q, K, transB = 1),
   * as its optimizer saves MatMul of a transposed K.
   */
  keyT: ['transpose', 'transpose-from-bshd', 'dynamo-sandwich', 'einsum', 'einsum-k-first', 'einsum-ellipsis', 'fused-matmul'],
  /**
   * Div or Mul of the scores, s first, Q scaled, √s on both Q and K, √s read from Q's shape at run time (torch's
   * SDPA export), a Div after the mask, or none (s = 1).
   */
  scale: ['div', 'mul', 'mul-scale-first', 'q', 'sqrt-q-and-k', 'from-shape', 'div-after-mask', 'none'],
  /**
   * Additive float padding bias, the bias first, subtracted, causal by Where, bool keep-mask by Where, BERT's
   * (1 - mask) · -10000 from an int64 [B, T] mask, a per-head [1, H, 1, T] bias, causal And padding by one Where,
   * masked_fill(~keep, finfo.min), a [B, T] keep-mask expanded to the scores' shape before its Where, and GPT-2's
   * original causal mask multiplied in, w · b - 10000 · (1 - b) with b the causal keep-mask as 0 / 1 floats.
   */
  mask: ['none', 'add', 'add-bias-first', 'sub', 'causal-where', 'bool-where', 'bert-int', 'per-head', 'causal-and-padding', 'masked-fill-min', 'expanded-padding', 'causal-multiplied'],
  /**
   * Softmax(axis -1), Softmax(axis 3), Exp / ReduceSum / Div with ReduceMax, Mul by the Reciprocal, Exp(LogSoftmax),
   * or over a view of the scores that keeps the keys' axis, reshaped back: flattened to 2-D (opset < 13 softmax
   * semantics) or folded to [B·H, S, T] by a run-time target.
   */
  softmax: ['softmax', 'softmax-axis-3', 'spelled-max', 'spelled-reciprocal', 'exp-logsoftmax', 'flattened', 'folded-view'],
  /**
   * MatMul with V, an Einsum (explicit, or over an ellipsis), onnxruntime's FusedMatMul, a Dropout (inference:
   * identity) before the MatMul, onnxscript's Where(IsNaN(p), 0, p) before it, or the entries a Where mask filled
   * zeroed again on its own condition (DeBERTa's XSoftmax).
   */
  pv: ['matmul', 'einsum', 'einsum-ellipsis', 'fused-matmul', 'dropout', 'nan-guard', 'masked-zero'],
  /** [B, H, S, D] as is, or merged back to [B, S, E]. */
  output: ['bhsd', 'merged'],
  /** Keys from the same tokens, a cache concatenated before them (past), or another sequence (cross-attention). */
  kv: ['self', 'past', 'cross'],
  /** Reshape targets as constants ([0, 0, H, D]), or built at run time from Shape, Gather and Concat. */
  reshape: ['static', 'dynamic'],
  /** Float constants as initializers, as Constant nodes (TorchScript), or of shape [1] instead of scalars. */
  consts: ['init', 'constant-node', 'rank-1'],
  /** Everything in f32, everything in f16, or f16 with the mask and softmax upcast to f32 (Cast, then Cast back). */
  precision: ['f32', 'f16', 'f16-softmax-f32'],
} as const;

export type Spelling = { [A in keyof typeof SPELLING_AXES]: (typeof SPELLING_AXES)[A][number] };

export const HEADS = 4;
export const HEAD_DIM = 8;
const E = HEADS * HEAD_DIM;

/**
 * Whether a combination can be written: Kᵀ by one Transpose from [B, T, H, D] needs a projected K with no cache
 * before it (or K repeated over [B, T, H, D], its cache joined before the repeat); a causal mask needs keys of
 * the same sequence; a finite fill must stay a mask fill after the scale that follows it.
 */
export function isSpelling(s: Spelling): boolean {
  if (s.keyT === 'transpose-from-bshd' && s.input !== 'repeat-kv-bshd' && ((s.input !== 'projected' && s.input !== 'packed') || s.kv === 'past')) return false;
  if (s.mask.startsWith('causal') && s.kv === 'cross') return false;
  // GPT-2's fill of -10000 divided by sqrt(8) after the mask is -3536, no mask fill: refused, with that reason
  if (s.mask === 'causal-multiplied' && s.scale === 'div-after-mask') return false;
  // the mask's entries zeroed after the Softmax need a mask that fills by a Where
  if (s.pv === 'masked-zero' && FILL_CONDITION[s.mask] === undefined) return false;
  // onnxruntime runs FusedMatMul in f32 only
  if ((s.keyT === 'fused-matmul' || s.pv === 'fused-matmul') && s.precision !== 'f32') return false;
  return true;
}

/** The condition of each mask spelled as a Where fill, and whether it is true where a key is dropped. */
const FILL_CONDITION: Partial<Record<Spelling['mask'], { cond: string; drops: boolean }>> = {
  'causal-where': { cond: '%keep', drops: false },
  'bool-where': { cond: '%keepmask', drops: false },
  'masked-fill-min': { cond: '%drop', drops: true },
  'expanded-padding': { cond: '%keepx', drops: false },
  'causal-and-padding': { cond: '%keep', drops: false },
};

/** The symbolic key length: seq, past + seq (named total), or the other sequence's (past_enc, read as past's size). */
const keyLength = (s: Spelling) => ({ self: 'seq', past: 'total', cross: 'past_enc' })[s.kv];

export const describeSpelling = (s: Spelling) => Object.values(s).join(' / ');

/** The graph text of one combination, opset 17 (ReduceSum reads its axes as an input, ReduceMax as an attribute). */
export function spellingGraph(s: Spelling): string {
  const lines: string[] = [];
  const inits: string[] = [
    `  init %sdiv: f32[] = tensor<f32[]> [${Math.sqrt(HEAD_DIM)}]`,
    `  init %smul: f32[] = tensor<f32[]> [${1 / Math.sqrt(HEAD_DIM)}]`,
    `  init %sroot: f32[] = tensor<f32[]> [${HEAD_DIM ** -0.25}]`,
    '  init %last: i64[1] = tensor<i64[1]> [-1]',
    '  init %ninf: f32[] = tensor<f32[]> [-inf]',
  ];
  const inputs: string[] = [];
  const T = keyLength(s);
  // K and V of `heads` heads [B, heads, ., D] from [B, heads, new, D]: the cache concatenated before them
  const withCache = (x: string, fresh: string, heads: number) => {
    if (s.kv !== 'past') return lines.push(`  %${x} = Identity(%${fresh})`);
    inputs.push(`  input %past_${x}: f32[2, ${heads}, past, ${HEAD_DIM}]`);
    return lines.push(`  %${x} = Concat(%past_${x}, %${fresh}) {axis = 2}`);
  };
  // the length of the new keys: the queries' (self, past) or the other sequence's
  const freshLength = s.kv === 'cross' ? 'past_enc' : 'seq';
  inits.push('  init %g0: i64[] = tensor<i64[]> [0]', '  init %g1: i64[] = tensor<i64[]> [1]', '  init %ax0: i64[1] = tensor<i64[1]> [0]', '  init %m1: i64[1] = tensor<i64[1]> [-1]');
  inits.push(`  init %hd: i64[2] = tensor<i64[2]> [${HEADS}, ${HEAD_DIM}]`, `  init %ecol: i64[1] = tensor<i64[1]> [${E}]`);
  /** [b, s, rest...] read from x's shape at run time (s = -1: any length), or the constant [0, 0, rest...]. */
  const target = (name: string, x: string, seqAxis: number | 'any', rest: string, restValues: number[]) => {
    if (s.reshape === 'static') {
      const v = [0, seqAxis === 'any' ? -1 : 0, ...restValues];
      return inits.push(`  init %${name}: i64[${v.length}] = tensor<i64[${v.length}]> [${v.join(', ')}]`);
    }
    lines.push(`  %${name}_shape = Shape(${x})`, `  %${name}_b = Gather(%${name}_shape, %g0) {axis = 0}`, `  %${name}_b1 = Unsqueeze(%${name}_b, %ax0)`);
    if (seqAxis === 'any') return lines.push(`  %${name} = Concat(%${name}_b1, %m1, ${rest}) {axis = 0}`);
    inits.push(`  init %${name}_sa: i64[] = tensor<i64[]> [${seqAxis}]`);
    lines.push(`  %${name}_s = Gather(%${name}_shape, %${name}_sa) {axis = 0}`, `  %${name}_s1 = Unsqueeze(%${name}_s, %ax0)`);
    return lines.push(`  %${name} = Concat(%${name}_b1, %${name}_s1, ${rest}) {axis = 0}`);
  };
  if (s.input === 'bhsd') {
    inputs.push(`  input %q4: f32[2, ${HEADS}, seq, ${HEAD_DIM}]`);
    for (const x of ['k', 'v']) {
      inputs.push(`  input %${x}n: f32[2, ${HEADS}, ${freshLength}, ${HEAD_DIM}]`);
      withCache(`${x}4`, `${x}n`, HEADS);
    }
  } else if (s.input === 'repeat-kv') {
    inputs.push(`  input %q4: f32[2, ${HEADS}, seq, ${HEAD_DIM}]`);
    inits.push('  init %ax2: i64[1] = tensor<i64[1]> [2]', `  init %rep: i64[5] = tensor<i64[5]> [2, 2, ${HEADS / 2}, 1, 1]`);
    inits.push(`  init %merge_heads: i64[4] = tensor<i64[4]> [2, ${HEADS}, -1, ${HEAD_DIM}]`);
    for (const x of ['k', 'v']) {
      // Expand by [2, 2, 2, 1, 1] broadcasts [2, 2, 1, T, D] to [2, 2, 2, T, D]; the cache joins before the repeat
      inputs.push(`  input %${x}n: f32[2, ${HEADS / 2}, ${freshLength}, ${HEAD_DIM}]`);
      withCache(`${x}0`, `${x}n`, HEADS / 2);
      lines.push(`  %${x}u = Unsqueeze(%${x}0, %ax2)`, `  %${x}e = Expand(%${x}u, %rep)`, `  %${x}4 = Reshape(%${x}e, %merge_heads)`);
    }
  } else if (s.input === 'repeat-kv-bshd') {
    inputs.push(`  input %q4: f32[2, ${HEADS}, seq, ${HEAD_DIM}]`);
    inits.push('  init %ax3: i64[1] = tensor<i64[1]> [3]', `  init %rep_bshd: i64[5] = tensor<i64[5]> [1, 1, 1, ${HEADS / 2}, 1]`);
    inits.push(`  init %merge_bshd: i64[4] = tensor<i64[4]> [0, 0, ${HEADS}, ${HEAD_DIM}]`);
    for (const x of ['k', 'v']) {
      // [B, T, 2, D] -> [B, T, 2, 1, D] -> [B, T, 2, 2, D] -> [B, T, 4, D] -> [B, 4, T, D]; the cache joins before the repeat
      inputs.push(`  input %${x}n: f32[2, ${freshLength}, ${HEADS / 2}, ${HEAD_DIM}]`);
      if (s.kv === 'past') {
        inputs.push(`  input %past_${x}: f32[2, past, ${HEADS / 2}, ${HEAD_DIM}]`);
        lines.push(`  %${x}0 = Concat(%past_${x}, %${x}n) {axis = 1}`);
      } else lines.push(`  %${x}0 = Identity(%${x}n)`);
      lines.push(`  %${x}u = Unsqueeze(%${x}0, %ax3)`, `  %${x}e = Expand(%${x}u, %rep_bshd)`, `  %${x}r = Reshape(%${x}e, %merge_bshd)`);
      if (x !== 'k' || s.keyT !== 'transpose-from-bshd') lines.push(`  %${x}4 = Transpose(%${x}r) {perm = [0, 2, 1, 3]}`);
    }
  } else {
    inputs.push(`  input %h: f32[2, seq, ${E}]`);
    const kvSource = s.kv === 'cross' ? '%enc' : '%h';
    if (s.kv === 'cross') inputs.push(`  input %enc: f32[2, past_enc, ${E}]`);
    target('split', '%h', 1, '%hd', [HEADS, HEAD_DIM]);
    target('split_kv', kvSource, 'any', '%hd', [HEADS, HEAD_DIM]);
    if (s.input === 'packed' && s.kv !== 'cross') {
      inits.push(`  init %wqkv: f32[${E}, ${3 * E}] = ${weights(7, E, 3 * E)}`);
      lines.push('  %qkv = MatMul(%h, %wqkv)', '  %qp, %kp, %vp = Split(%qkv) {axis = -1}');
    } else if (s.input === 'packed') {
      inits.push(`  init %wq: f32[${E}, ${E}] = ${weights(1, E, E)}`, `  init %wkv: f32[${E}, ${2 * E}] = ${weights(8, E, 2 * E)}`);
      lines.push('  %qp = MatMul(%h, %wq)', '  %kvp = MatMul(%enc, %wkv)', '  %kp, %vp = Split(%kvp) {axis = -1}');
    }
    for (const [x, seed] of [['q', 1], ['k', 2], ['v', 3]] as const) {
      if (s.input === 'projected') {
        inits.push(`  init %w${x}: f32[${E}, ${E}] = ${weights(seed, E, E)}`);
        lines.push(`  %${x}p = MatMul(${x === 'q' ? '%h' : kvSource}, %w${x})`);
      }
      lines.push(`  %${x}r = Reshape(%${x}p, %${x === 'q' ? 'split' : 'split_kv'})`);
      if (x === 'q') lines.push('  %q4 = Transpose(%qr) {perm = [0, 2, 1, 3]}');
      else if (x !== 'k' || s.keyT !== 'transpose-from-bshd') {
        lines.push(`  %${x}bh = Transpose(%${x}r) {perm = [0, 2, 1, 3]}`);
        withCache(`${x}4`, `${x}bh`, HEADS);
      }
    }
  }
  // the scale on Q (and on K) before the product
  let q = '%q4';
  let k = '%k4';
  if (s.scale === 'q') {
    lines.push('  %qs = Mul(%q4, %smul)');
    q = '%qs';
  } else if (s.scale === 'sqrt-q-and-k') {
    lines.push('  %qs = Mul(%q4, %sroot)');
    q = '%qs';
  } else if (s.scale === 'from-shape') {
    // torch's SDPA symbolic: scale = 1 / sqrt(q.size(-1)) read at run time, √scale on Q and on Kᵀ
    inits.push('  init %fone: f32[] = tensor<f32[]> [1.0]');
    lines.push('  %qshape = Shape(%q4) {start = -1}', '  %dq = Cast(%qshape) {to = 1}', '  %sqd = Sqrt(%dq)', '  %sdyn = Div(%fone, %sqd)', '  %sroot_dyn = Sqrt(%sdyn)', '  %qs = Mul(%q4, %sroot_dyn)');
    q = '%qs';
  }
  const kScaled = s.scale === 'sqrt-q-and-k' || s.scale === 'from-shape';
  const kScale = s.scale === 'from-shape' ? '%sroot_dyn' : '%sroot';
  switch (s.keyT) {
    case 'transpose':
      lines.push(`  %kt = Transpose(${k}) {perm = [0, 1, 3, 2]}`);
      break;
    case 'transpose-from-bshd':
      lines.push('  %kt = Transpose(%kr) {perm = [0, 2, 3, 1]}');
      break;
    case 'dynamo-sandwich':
      inits.push('  init %m1: i64[1] = tensor<i64[1]> [-1]', `  init %dcol: i64[1] = tensor<i64[1]> [${HEAD_DIM}]`);
      lines.push(
        `  %t1 = Shape(${k}) {start = 2, end = 3}`,
        `  %b1 = Shape(${k}) {start = 0, end = 2}`,
        '  %flatk = Concat(%m1, %t1, %dcol) {axis = 0}',
        `  %kflat = Reshape(${k}, %flatk)`,
        '  %kflatt = Transpose(%kflat) {perm = [0, 2, 1]}',
        '  %ktshape = Concat(%b1, %dcol, %t1) {axis = 0}',
        '  %kt = Reshape(%kflatt, %ktshape)',
      );
      break;
    default:
      break;
  }
  let scores: string;
  if (s.keyT.startsWith('einsum') || s.keyT === 'fused-matmul') {
    if (kScaled) {
      lines.push(`  %ks = Mul(${k}, ${kScale})`);
      k = '%ks';
    }
    const equations: Record<string, string> = { einsum: 'bhqd,bhkd->bhqk', 'einsum-k-first': 'bhkd,bhqd->bhqk', 'einsum-ellipsis': '... q d, ... k d -> ... q k' };
    const equation = equations[s.keyT];
    if (s.keyT === 'fused-matmul') lines.push(`  %qk = com.microsoft::FusedMatMul(${q}, ${k}) {transB = 1, alpha = 1.0}`);
    else lines.push(s.keyT === 'einsum-k-first' ? `  %qk = Einsum(${k}, ${q}) {equation = "${equation}"}` : `  %qk = Einsum(${q}, ${k}) {equation = "${equation}"}`);
  } else {
    let kt = '%kt';
    if (kScaled) {
      lines.push(`  %kts = Mul(%kt, ${kScale})`);
      kt = '%kts';
    }
    lines.push(`  %qk = MatMul(${q}, ${kt})`);
  }
  scores = '%qk';
  if (s.scale === 'div') lines.push('  %sc = Div(%qk, %sdiv)');
  else if (s.scale === 'mul') lines.push('  %sc = Mul(%qk, %smul)');
  else if (s.scale === 'mul-scale-first') lines.push('  %sc = Mul(%smul, %qk)');
  if (['div', 'mul', 'mul-scale-first'].includes(s.scale)) scores = '%sc';
  // keys up to the query's own position, counted from the end (a cache before the new keys shifts the diagonal)
  const causalKeep = (x: string, keep: string) => {
    inits.push('  init %i2s: i64[1] = tensor<i64[1]> [2]', '  init %i3s: i64[1] = tensor<i64[1]> [3]', '  init %i4s: i64[1] = tensor<i64[1]> [4]');
    const square = [`  %ss = Shape(${x})`, '  %nq = Slice(%ss, %i2s, %i3s)'];
    if (s.kv === 'self') return [...square, '  %nn = Concat(%nq, %nq) {axis = 0}', '  %ones = ConstantOfShape(%nn) {value = tensor<bool[1]> [true]}', `  ${keep} = Trilu(%ones) {upper = 0}`];
    return [
      ...square,
      '  %nk = Slice(%ss, %i3s, %i4s)',
      '  %nn = Concat(%nq, %nk) {axis = 0}',
      '  %ones = ConstantOfShape(%nn) {value = tensor<bool[1]> [true]}',
      '  %shift1 = Sub(%nk, %nq)',
      '  %shift = Squeeze(%shift1, %ax0)',
      `  ${keep} = Trilu(%ones, %shift) {upper = 0}`,
    ];
  };
  switch (s.mask) {
    case 'add':
      inputs.push(`  input %bias: f32[2, 1, 1, ${T}]`);
      lines.push(`  %x = Add(${scores}, %bias)`);
      break;
    case 'add-bias-first':
      inputs.push(`  input %bias: f32[2, 1, 1, ${T}]`);
      lines.push(`  %x = Add(%bias, ${scores})`);
      break;
    case 'sub':
      inputs.push(`  input %bias: f32[2, 1, 1, ${T}]`);
      lines.push(`  %x = Sub(${scores}, %bias)`);
      break;
    case 'causal-where':
      lines.push(
        ...causalKeep(scores, '%keep'),
        `  %x = Where(%keep, ${scores}, %ninf)`,
      );
      break;
    case 'bool-where':
      inputs.push(`  input %keepmask: bool[2, 1, 1, ${T}]`);
      lines.push(`  %x = Where(%keepmask, ${scores}, %ninf)`);
      break;
    case 'masked-fill-min':
      inputs.push(`  input %keepmask: bool[2, 1, 1, ${T}]`);
      inits.push(`  init %fmin: f32[] = tensor<f32[]> [${s.precision === 'f32' ? -3.4028234663852886e38 : -65504}]`);
      lines.push('  %drop = Not(%keepmask)', `  %x = Where(%drop, %fmin, ${scores})`);
      break;
    case 'expanded-padding':
      inputs.push(`  input %keep2: bool[2, ${T}]`);
      inits.push('  init %ax12b: i64[2] = tensor<i64[2]> [1, 2]');
      lines.push('  %keep4 = Unsqueeze(%keep2, %ax12b)', `  %sshape = Shape(${scores})`, '  %keepx = Expand(%keep4, %sshape)', `  %x = Where(%keepx, ${scores}, %ninf)`);
      break;
    case 'bert-int':
      inputs.push(`  input %attention_mask: i64[2, ${T}]`);
      inits.push('  init %ax12: i64[2] = tensor<i64[2]> [1, 2]', '  init %one: f32[] = tensor<f32[]> [1.0]', '  init %big: f32[] = tensor<f32[]> [-10000.0]');
      lines.push('  %am4 = Unsqueeze(%attention_mask, %ax12)', '  %amf = Cast(%am4) {to = 1}', '  %inv = Sub(%one, %amf)', '  %ext = Mul(%inv, %big)', `  %x = Add(${scores}, %ext)`);
      break;
    case 'per-head':
      inputs.push(`  input %headbias: f32[1, ${HEADS}, 1, ${T}]`);
      lines.push(`  %x = Add(${scores}, %headbias)`);
      break;
    case 'causal-multiplied':
      inits.push('  init %one_m: f32[] = tensor<f32[]> [1.0]', '  init %c1e4: f32[] = tensor<f32[]> [10000.0]');
      lines.push(...causalKeep(scores, '%keepb'), '  %b01 = Cast(%keepb) {to = 1}', `  %wb = Mul(${scores}, %b01)`, '  %nb = Sub(%one_m, %b01)', '  %pen = Mul(%nb, %c1e4)', '  %x = Sub(%wb, %pen)');
      break;
    case 'causal-and-padding':
      inputs.push(`  input %keepmask: bool[2, 1, 1, ${T}]`);
      lines.push(
        ...causalKeep(scores, '%causal'),
        '  %keep = And(%causal, %keepmask)',
        `  %x = Where(%keep, ${scores}, %ninf)`,
      );
      break;
    default:
      lines.push(`  %x = Identity(${scores})`);
  }
  if (s.scale === 'div-after-mask') {
    lines.push('  %xs = Div(%x, %sdiv)');
  } else {
    lines.push('  %xs = Identity(%x)');
  }
  // the upcast softmax reads f32 scores (FLOAT32: the one Cast that stays f32 in f16 graphs)
  if (s.precision === 'f16-softmax-f32') lines.push('  %xs32 = Cast(%xs) {to = FLOAT32}');
  const sIn = s.precision === 'f16-softmax-f32' ? '%xs32' : '%xs';
  const softmaxAt = lines.length;
  switch (s.softmax) {
    case 'softmax':
      lines.push('  %p = Softmax(%xs) {axis = -1}');
      break;
    case 'softmax-axis-3':
      lines.push('  %p = Softmax(%xs) {axis = 3}');
      break;
    case 'spelled-max':
      lines.push('  %m = ReduceMax(%xs) {axes = [-1], keepdims = 1}', '  %z = Sub(%xs, %m)', '  %e = Exp(%z)', '  %sum = ReduceSum(%e, %last) {keepdims = 1}', '  %p = Div(%e, %sum)');
      break;
    case 'spelled-reciprocal':
      lines.push('  %e = Exp(%xs)', '  %sum = ReduceSum(%e, %last) {keepdims = 1}', '  %r = Reciprocal(%sum)', '  %p = Mul(%e, %r)');
      break;
    case 'exp-logsoftmax':
      lines.push('  %lp = LogSoftmax(%xs) {axis = -1}', '  %p = Exp(%lp)');
      break;
    case 'flattened':
      lines.push('  %xshape = Shape(%xs)', '  %x2 = Flatten(%xs) {axis = 3}', '  %p2 = Softmax(%x2) {axis = 1}', '  %p = Reshape(%p2, %xshape)');
      break;
    case 'folded-view':
      lines.push('  %xshape = Shape(%xs)', '  %xtail = Shape(%xs) {start = 2}', '  %fold = Concat(%last, %xtail) {axis = 0}', '  %x3 = Reshape(%xs, %fold)', '  %p3 = Softmax(%x3) {axis = -1}', '  %p = Reshape(%p3, %xshape)');
      break;
  }
  for (let l = softmaxAt; l < lines.length; l++) lines[l] = lines[l]!.replaceAll('%xs)', `${sIn})`).replaceAll('%xs,', `${sIn},`);
  if (s.precision === 'f16-softmax-f32') lines.push('  %p16 = Cast(%p) {to = 10}');
  const p = s.precision === 'f16-softmax-f32' ? '%p16' : '%p';
  switch (s.pv) {
    case 'matmul':
      lines.push(`  %o = MatMul(${p}, %v4)`);
      break;
    case 'einsum':
      lines.push(`  %o = Einsum(${p}, %v4) {equation = "bhqk,bhkd->bhqd"}`);
      break;
    case 'einsum-ellipsis':
      lines.push(`  %o = Einsum(${p}, %v4) {equation = "...qk,...kd->...qd"}`);
      break;
    case 'fused-matmul':
      lines.push(`  %o = com.microsoft::FusedMatMul(${p}, %v4) {alpha = 1.0}`);
      break;
    case 'dropout':
      lines.push(`  %pd = Dropout(${p})`, '  %o = MatMul(%pd, %v4)');
      break;
    case 'nan-guard':
      inits.push('  init %pzero: f32[] = tensor<f32[]> [0.0]');
      lines.push(`  %pnan = IsNaN(${p})`, `  %pg = Where(%pnan, %pzero, ${p})`, '  %o = MatMul(%pg, %v4)');
      break;
    case 'masked-zero': {
      const { cond, drops } = FILL_CONDITION[s.mask]!;
      inits.push('  init %pzero: f32[] = tensor<f32[]> [0.0]');
      lines.push(drops ? `  %pz = Where(${cond}, %pzero, ${p})` : `  %pz = Where(${cond}, ${p}, %pzero)`, '  %o = MatMul(%pz, %v4)');
      break;
    }
  }
  if (s.output === 'merged') {
    lines.push('  %ot = Transpose(%o) {perm = [0, 2, 1, 3]}');
    target('merge', '%ot', 1, '%ecol', [E]);
    lines.push('  %y = Reshape(%ot, %merge)');
  } else {
    lines.push('  %y = Identity(%o)');
  }
  const text = `graph g {\n${inputs.join('\n')}\n${[...new Set(inits)].map((i) => constant(s, i)).join('\n')}\n${lines.join('\n')}\n  output %y\n}`;
  // f16: every float tensor and Cast to float in f16, but the softmax's upcast
  const typed = s.precision === 'f32' ? text : text.replaceAll('f32', 'f16').replaceAll('{to = 1}', '{to = 10}');
  return typed.replaceAll('{to = FLOAT32}', '{to = 1}');
}

/** An initializer line as `s.consts` writes it: as is, a Constant node, or a float scalar of shape [1]. */
function constant(s: Spelling, line: string): string {
  if (s.consts === 'rank-1') return line.replace(/f32\[\] = tensor<f32\[\]>/, 'f32[1] = tensor<f32[1]>');
  if (s.consts === 'init') return line;
  const m = /^ {2}init (%\S+): (\S+) = (tensor<.*)$/.exec(line);
  return m ? `  ${m[1]}: ${m[2]} = Constant() {value = ${m[3]}}` : line;
}

/** A seeded [rows, cols] weight matrix of small values, as graph text. */
function weights(seed: number, rows: number, cols: number): string {
  const vals: string[] = [];
  let x = seed * 2654435761;
  for (let i = 0; i < rows * cols; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    vals.push(((x / 2 ** 32 - 0.5) * 0.6).toFixed(6));
  }
  return `tensor<f32[${rows}, ${cols}]> [${vals.join(', ')}]`;
}

const AXES = Object.keys(SPELLING_AXES) as (keyof Spelling)[];
/** The axes isSpelling reads: a pair's feasibility is decided by trying every choice of these. */
const CONSTRAINED: readonly (keyof Spelling)[] = ['input', 'keyT', 'kv', 'mask'];
const pairKey = (s: Spelling, a: number, b: number) => `${AXES[a]}=${s[AXES[a]!]}|${AXES[b]}=${s[AXES[b]!]}`;
const pairsOf = (s: Spelling) => AXES.flatMap((_, a) => AXES.slice(a + 1).map((__, j) => pairKey(s, a, a + 1 + j)));

/** A combination drawn uniformly from those that can be written (rejection sampling). */
function drawSpelling(rng: SplitMix64): Spelling {
  for (;;) {
    const s = Object.fromEntries(Object.entries(SPELLING_AXES).map(([a, c]) => [a, c[Math.floor(rng.nextFloat() * c.length)]])) as Spelling;
    if (isSpelling(s)) return s;
  }
}

/** A combination that can be written holding `fixed`, or undefined (every choice of the constrained axes tried). */
function completion(fixed: Partial<Spelling>): Spelling | undefined {
  const base = Object.fromEntries(Object.entries(SPELLING_AXES).map(([a, c]) => [a, c[0]])) as Spelling;
  let partials: Partial<Spelling>[] = [{}];
  for (const a of CONSTRAINED) {
    if (a in fixed) continue;
    partials = partials.flatMap((p) => SPELLING_AXES[a].map((c) => ({ ...p, [a]: c })));
  }
  for (const p of partials) {
    const s = { ...base, ...p, ...fixed } as Spelling;
    if (isSpelling(s)) return s;
  }
  return undefined;
}

/** Every pair of choices of two axes that some combination that can be written holds. */
function feasiblePairs(): Set<string> {
  const out = new Set<string>();
  AXES.forEach((a, i) =>
    AXES.slice(i + 1).forEach((b) => {
      for (const x of SPELLING_AXES[a]) for (const y of SPELLING_AXES[b]) if (completion({ [a]: x, [b]: y } as Partial<Spelling>)) out.add(`${a}=${x}|${b}=${y}`);
    }),
  );
  return out;
}

/**
 * Combinations in which every pair of choices of two axes that some combination can write appears at least
 * once (all-pairs: a fault needing two choices together is found by this set as surely as by the whole product).
 * Greedy: each step takes, of 64 seeded candidates, the one covering most pairs not yet covered.
 */
export function pairwiseSpellings(seed: number): Spelling[] {
  const uncovered = feasiblePairs();
  const rng = new SplitMix64(seed);
  const out: Spelling[] = [];
  while (uncovered.size > 0) {
    let best: Spelling | undefined;
    let bestGain = 0;
    for (let c = 0; c < 64; c++) {
      const cand = drawSpelling(rng);
      const gain = pairsOf(cand).filter((p) => uncovered.has(p)).length;
      if (gain > bestGain) [best, bestGain] = [cand, gain];
    }
    // no random candidate helps: take one that holds the first pair left
    if (!best) {
      const [[a, x], [b, y]] = [...uncovered][0]!.split('|').map((kv) => kv.split('='));
      best = completion({ [a!]: x, [b!]: y } as Partial<Spelling>)!;
    }
    for (const p of pairsOf(best)) uncovered.delete(p);
    out.push(best);
  }
  return out;
}

/** Every pair of choices the list holds, and whether that is every pair some combination can write. */
export function coversEveryPair(list: readonly Spelling[]): boolean {
  const held = new Set(list.flatMap(pairsOf));
  return [...feasiblePairs()].every((p) => held.has(p));
}

/** `count` combinations drawn uniformly (with a fixed seed) from those that can be written. */
export function sampledSpellings(count: number, seed: number): Spelling[] {
  const rng = new SplitMix64(seed);
  return Array.from({ length: count }, () => drawSpelling(rng));
}
