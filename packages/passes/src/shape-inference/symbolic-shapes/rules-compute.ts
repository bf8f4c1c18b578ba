// Shape rules of the compute and layout ops of transformer graphs: MatMul, Gemm, Transpose, Split, Einsum,
// Conv / pools, Pad, normalizations, Softmax and other shape-keeping ops, Constant, NonZero, TopK, the
// com.microsoft fused ops, attnopt's Attention, and If / Loop / Scan (their bodies read the enclosing scope).

import { attentionParams, type DType, type Node } from '@attnopt/ir';
import { add, constant, div, type Expr, mul, sub } from './expr.js';
import {
  broadcastShapes,
  constants,
  type Info,
  intAttr,
  intsAttr,
  matmulOf,
  MAX_VALUE_ELEMENTS,
  normAxis,
  ONE,
  type RuleContext,
  staticShape,
} from './info.js';
import type { Rule } from './rules-data.js';

/** Ops whose first output has the shape and dtype of their first input. */
const SAME_AS_FIRST = [
  'Softmax', 'LogSoftmax', 'Tanh', 'Relu', 'LeakyRelu', 'Elu', 'Selu', 'Celu', 'Gelu', 'Erf', 'Sigmoid', 'HardSigmoid', 'HardSwish',
  'Softplus', 'Softsign', 'Mish', 'Sin', 'Cos', 'Tan', 'Asin', 'Acos', 'Atan', 'Sinh', 'Cosh', 'Trilu', 'CumSum',
  'LayerNormalization', 'RMSNormalization', 'SimplifiedLayerNormalization', 'SkipLayerNormalization', 'SkipSimplifiedLayerNormalization',
  'BatchNormalization', 'InstanceNormalization', 'GroupNormalization', 'LpNormalization', 'MeanVarianceNormalization',
  'RotaryEmbedding', 'FastGelu', 'BiasGelu', 'QuickGelu', 'Dropout', 'Hardmax', 'ScatterND', 'ScatterElements', 'Scatter',
  'ReverseSequence', 'Shrink', 'ThresholdedRelu', 'BiasDropout', 'BitwiseNot', 'GatedRelu',
];

function sameAsFirst(n: Node, ctx: RuleContext): (Info | undefined)[] {
  const x = ctx.info(n.inputs[0]);
  const first: Info = { shape: x?.shape, dtype: x?.dtype };
  switch (n.op) {
    case 'LayerNormalization':
    case 'SimplifiedLayerNormalization':
    case 'RMSNormalization': {
      // mean and inverse std dev: the normalized axes become 1 (float32 for float16 inputs under stash_type 1)
      const axis = normAxis(intAttr(n, 'axis') ?? -1, x?.shape?.length ?? 0);
      const stats: Info = { shape: x?.shape?.map((d, k) => (k >= axis ? ONE : d)), dtype: n.domain === '' ? 'f32' : undefined };
      return n.outputs.map((_, k) => (k === 0 ? first : stats));
    }
    case 'Dropout':
      return [first, { shape: x?.shape, dtype: 'bool' }];
    case 'SkipLayerNormalization':
    case 'SkipSimplifiedLayerNormalization':
      return n.outputs.map((_, k) => (k === 0 || k === 3 ? first : undefined));
    default:
      return n.outputs.map((_, k) => (k === 0 ? first : undefined));
  }
}

function matmul(n: Node, ctx: RuleContext): Info[] {
  const a = ctx.info(n.inputs[0]);
  return matmulOf(ctx, a?.shape, ctx.info(n.inputs[1])?.shape, n.op === 'MatMulInteger' ? 'i32' : a?.dtype);
}

/**
 * onnxruntime's FusedMatMul: alpha · op(A) · op(B), transA / transB swapping an operand's last two axes first.
 * With transBatchA / transBatchB the batch axes move too: not modelled, the output's shape is left unknown.
 */
function fusedMatmul(n: Node, ctx: RuleContext): Info[] {
  const a = ctx.info(n.inputs[0]);
  if (intAttr(n, 'transBatchA') || intAttr(n, 'transBatchB')) return [{ dtype: a?.dtype }];
  const swap = (s: readonly Expr[] | undefined, flag: string) => (s && s.length >= 2 && intAttr(n, flag) ? [...s.slice(0, -2), s[s.length - 1]!, s[s.length - 2]!] : s);
  return matmulOf(ctx, swap(a?.shape, 'transA'), swap(ctx.info(n.inputs[1])?.shape, 'transB'), a?.dtype);
}

function gemm(n: Node, ctx: RuleContext): Info[] {
  const a = ctx.info(n.inputs[0]);
  const b = ctx.info(n.inputs[1]);
  if (a?.shape?.length !== 2 || b?.shape?.length !== 2) return [{ dtype: a?.dtype }];
  return [{ shape: [intAttr(n, 'transA') ? a.shape[1]! : a.shape[0]!, intAttr(n, 'transB') ? b.shape[0]! : b.shape[1]!], dtype: a.dtype }];
}

function transpose(n: Node, ctx: RuleContext): Info[] {
  const x = ctx.info(n.inputs[0]);
  if (!x?.shape) return [{ dtype: x?.dtype }];
  const s = x.shape;
  const perm = intsAttr(n, 'perm') ?? s.map((_, k) => s.length - 1 - k);
  if (perm.length !== s.length) return [{ dtype: x.dtype }];
  const shape = perm.map((p) => s[p]!);
  return [{ shape, dtype: x.dtype, value: s.length <= 1 ? x.value : undefined }];
}

function split(n: Node, ctx: RuleContext): (Info | undefined)[] {
  const x = ctx.info(n.inputs[0]);
  if (!x?.shape) return n.outputs.map(() => ({ dtype: x?.dtype }));
  const axis = normAxis(intAttr(n, 'axis') ?? 0, x.shape.length);
  const sizes = intsAttr(n, 'split') ?? (n.inputs[1] ? constants(ctx.info(n.inputs[1])) : undefined);
  const whole = x.shape[axis]!;
  const k = n.outputs.length;
  const numOutputs = intAttr(n, 'num_outputs');
  return n.outputs.map((_, o) => {
    let d: Expr | undefined;
    if (sizes) d = sizes[o] !== undefined ? constant(sizes[o]!) : undefined;
    else if (numOutputs === undefined) d = div(whole, constant(k)); // equal parts: the spec requires divisibility
    else {
      const w = whole.constant;
      if (w !== undefined) {
        const part = Math.ceil(w / numOutputs);
        d = constant(o < k - 1 ? part : w - part * (k - 1));
      }
    }
    const shape = [...x.shape!];
    shape[axis] = d ?? ctx.fresh();
    return { shape, dtype: x.dtype };
  });
}

/** Einsum's output shape from its equation (explicit `->` or the implicit alphabetical form), `...` included. */
function einsum(n: Node, ctx: RuleContext): Info[] {
  const eq = n.attrs.get('equation');
  const ins = n.inputs.map((v) => ctx.info(v));
  const dtype = ins[0]?.dtype;
  if (eq?.type !== 'string' || ins.some((i) => !i?.shape)) return [{ dtype }];
  const text = eq.value.replace(/\s+/g, '');
  const [lhs, rhs] = text.split('->') as [string, string | undefined];
  const terms = lhs.split(',');
  if (terms.length !== ins.length) return [{ dtype }];
  const letters = new Map<string, Expr>();
  let ellipsis: Expr[] = [];
  for (let t = 0; t < terms.length; t++) {
    const s = ins[t]!.shape!;
    const term = terms[t]!;
    const dots = term.indexOf('...');
    const left = dots >= 0 ? term.slice(0, dots) : term;
    const right = dots >= 0 ? term.slice(dots + 3) : '';
    const ell = s.length - left.length - right.length;
    if (ell < 0 || (dots < 0 && ell !== 0)) return [{ dtype }];
    [...left].forEach((c, k) => letters.set(c, letters.has(c) ? unifyDim(ctx, letters.get(c)!, s[k]!) : s[k]!));
    [...right].forEach((c, k) => {
      const d = s[left.length + ell + k]!;
      letters.set(c, letters.has(c) ? unifyDim(ctx, letters.get(c)!, d) : d);
    });
    if (dots >= 0) ellipsis = broadcastShapes(ctx, [ellipsis, s.slice(left.length, left.length + ell)]);
  }
  let out = rhs;
  if (out === undefined) {
    const counts = new Map<string, number>();
    for (const c of terms.join('').replace(/\.\.\./g, '')) counts.set(c, (counts.get(c) ?? 0) + 1);
    out = (text.includes('...') ? '...' : '') + [...counts].filter(([, k]) => k === 1).map(([c]) => c).sort().join('');
  }
  const shape: Expr[] = [];
  for (let k = 0; k < out.length; k++) {
    if (out.startsWith('...', k)) {
      shape.push(...ellipsis);
      k += 2;
    } else {
      const d = letters.get(out[k]!);
      if (!d) return [{ dtype }];
      shape.push(d);
    }
  }
  return [{ shape, dtype }];
}

const unifyDim = (ctx: RuleContext, a: Expr, b: Expr) => (a.constant === 1 ? b : b.constant === 1 ? a : ctx.unify(a, b));

/** Conv and pools: [N, C_out, spatial...] with the spatial sizes from pads, strides and dilations. */
function convLike(n: Node, ctx: RuleContext): (Info | undefined)[] {
  const x = ctx.info(n.inputs[0]);
  if (!x?.shape || x.shape.length < 3) return n.outputs.map(() => ({ dtype: x?.dtype }));
  const spatial = x.shape.length - 2;
  const w = ctx.info(n.inputs[1])?.shape;
  const kernel = intsAttr(n, 'kernel_shape') ?? (n.op === 'Conv' ? staticShape(w?.slice(2)) : undefined);
  const channels = n.op === 'Conv' ? (w?.[0] ?? ctx.fresh()) : x.shape[1]!;
  const strides = intsAttr(n, 'strides') ?? Array<number>(spatial).fill(1);
  const dil = intsAttr(n, 'dilations') ?? Array<number>(spatial).fill(1);
  const pads = intsAttr(n, 'pads') ?? Array<number>(2 * spatial).fill(0);
  const autoPad = n.attrs.get('auto_pad');
  const mode = autoPad?.type === 'string' ? autoPad.value : 'NOTSET';
  const ceil = (intAttr(n, 'ceil_mode') ?? 0) !== 0;
  const dims = x.shape.slice(2).map((d, k) => {
    if (!kernel) return ctx.fresh();
    const s = strides[k]!;
    if (mode === 'SAME_UPPER' || mode === 'SAME_LOWER') return div(add(d, constant(s - 1)), constant(s)) ?? ctx.fresh();
    const padded = mode === 'VALID' ? d : add(d, constant(pads[k]! + pads[k + spatial]!));
    const reach = sub(padded, constant(dil[k]! * (kernel[k]! - 1) + 1));
    return add(div(add(reach, constant(ceil ? s - 1 : 0)), constant(s)) ?? ctx.fresh(), ONE);
  });
  const out: Info = { shape: [x.shape[0]!, channels, ...dims], dtype: x.dtype };
  return n.outputs.map((_, k) => (k === 0 ? out : { shape: out.shape, dtype: 'i64' }));
}

function globalPool(n: Node, ctx: RuleContext): Info[] {
  const x = ctx.info(n.inputs[0]);
  return [{ shape: x?.shape?.map((d, k) => (k < 2 ? d : ONE)), dtype: x?.dtype }];
}

function pad(n: Node, ctx: RuleContext): Info[] {
  const x = ctx.info(n.inputs[0]);
  if (!x?.shape) return [{ dtype: x?.dtype }];
  const r = x.shape.length;
  const pads = intsAttr(n, 'pads') ?? (n.inputs[1] ? ctx.info(n.inputs[1])?.value : undefined);
  if (!pads) return [{ shape: x.shape.map(() => ctx.fresh()), dtype: x.dtype }];
  const axesV = n.inputs[3] ? constants(ctx.info(n.inputs[3])) : x.shape.map((_, k) => k);
  if (!axesV) return [{ shape: x.shape.map(() => ctx.fresh()), dtype: x.dtype }];
  const p = pads.map((e) => (typeof e === 'number' ? constant(e) : e));
  const shape = [...x.shape];
  axesV.forEach((a, j) => {
    const ax = normAxis(a, r);
    shape[ax] = add(add(shape[ax]!, p[j]!), p[j + axesV.length]!);
  });
  return [{ shape, dtype: x.dtype }];
}

function constantNode(n: Node): Info[] {
  const t = n.attrs.get('value');
  if (t?.type === 'tensor') {
    const count = t.value.shape.reduce((a, b) => a * b, 1);
    const value = count <= MAX_VALUE_ELEMENTS && t.value.dtype !== 'string' ? [...t.value.toFloat64()].map(constant) : undefined;
    return [{ shape: t.value.shape.map(constant), dtype: t.value.dtype, value }];
  }
  for (const [name, dtype] of [['value_int', 'i64'], ['value_float', 'f32']] as const) {
    const a = n.attrs.get(name);
    if (a?.type === 'int' || a?.type === 'float') return [{ shape: [], dtype, value: [constant(Number(a.value))] }];
  }
  for (const [name, dtype] of [['value_ints', 'i64'], ['value_floats', 'f32']] as const) {
    const a = n.attrs.get(name);
    if (a?.type === 'ints' || a?.type === 'floats') {
      const xs = a.value.map(Number);
      return [{ shape: [constant(xs.length)], dtype, value: xs.length <= MAX_VALUE_ELEMENTS ? xs.map(constant) : undefined }];
    }
  }
  return [{}];
}

function topK(n: Node, ctx: RuleContext): Info[] {
  const x = ctx.info(n.inputs[0]);
  const k = ctx.info(n.inputs[1])?.value?.[0] ?? (intAttr(n, 'k') !== undefined ? constant(intAttr(n, 'k')!) : undefined);
  if (!x?.shape) return [{ dtype: x?.dtype }, { dtype: 'i64' }];
  const axis = normAxis(intAttr(n, 'axis') ?? -1, x.shape.length);
  const shape = x.shape.map((d, j) => (j === axis ? (k ?? ctx.fresh()) : d));
  return [{ shape, dtype: x.dtype }, { shape, dtype: 'i64' }];
}

function gatherElements(n: Node, ctx: RuleContext): Info[] {
  return [{ shape: ctx.info(n.inputs[1])?.shape, dtype: ctx.info(n.inputs[0])?.dtype }];
}

function gatherND(n: Node, ctx: RuleContext): Info[] {
  const data = ctx.info(n.inputs[0]);
  const idx = ctx.info(n.inputs[1])?.shape;
  const b = intAttr(n, 'batch_dims') ?? 0;
  const last = idx?.[idx.length - 1]?.constant;
  if (!data?.shape || !idx || last === undefined) return [{ dtype: data?.dtype }];
  return [{ shape: [...idx.slice(0, -1), ...data.shape.slice(b + last)], dtype: data.dtype }];
}

/** attnopt's Attention: [batch, heads, seq, vHeadDim] (bhsd), [batch, seq, heads, vHeadDim] (bshd), else [batch, seq, heads * vHeadDim]. */
function attention(n: Node, ctx: RuleContext): (Info | undefined)[] {
  const p = attentionParams(n);
  const q = ctx.info(n.inputs[0]);
  const outs: (Info | undefined)[] = n.outputs.map(() => undefined);
  if (!q?.shape) return outs;
  const s = q.shape;
  const h = constant(p.numHeads);
  const vd = p.vHeadDim ? constant(p.vHeadDim) : (ctx.info(n.inputs[2])?.shape?.[3] ?? ctx.fresh());
  outs[0] = {
    dtype: q.dtype,
    shape: p.layout === 'bhsd' ? [s[0]!, h, s[2]!, vd] : p.layout === 'bshd' ? [s[0]!, s[1]!, h, vd] : [s[0]!, s[1]!, mul(h, vd)],
  };
  return outs;
}

function microsoft(n: Node, ctx: RuleContext): (Info | undefined)[] | undefined {
  const sh = (k: number) => ctx.info(n.inputs[k])?.shape;
  const dtype = ctx.info(n.inputs[0])?.dtype;
  const heads = intAttr(n, 'num_heads');
  const none = n.outputs.map(() => undefined as Info | undefined);
  switch (n.op) {
    case 'EmbedLayerNormalization': {
      const ids = sh(0);
      const hidden = sh(2)?.[1] ?? ctx.fresh();
      if (ids?.length !== 2) return none;
      const t = ctx.info(n.inputs[2])?.dtype;
      return n.outputs.map((_, k) => (k === 1 ? { shape: [ids[0]!], dtype: 'i32' } : k === 0 || k === 2 ? { shape: [ids[0]!, ids[1]!, hidden], dtype: t } : undefined));
    }
    case 'Attention': {
      const x = sh(0);
      const w = sh(1);
      if (x?.length !== 3) return none;
      const hs = intsAttr(n, 'qkv_hidden_sizes');
      const vh = hs ? constant(hs[2]!) : w?.[1] ? (div(w[1], constant(3)) ?? ctx.fresh()) : ctx.fresh();
      none[0] = { shape: [x[0]!, x[1]!, vh], dtype };
      // present: [2, batch, heads, past + seq, head size] (past from input 4)
      const past = sh(4);
      if (heads !== undefined && n.outputs.length > 1 && (!n.inputs[4] || past?.length === 5)) {
        const total = past ? add(past[3]!, x[1]!) : x[1]!;
        none[1] = { shape: [constant(2), x[0]!, constant(heads), total, div(vh, constant(heads)) ?? ctx.fresh()], dtype };
      }
      return none;
    }
    case 'MultiHeadAttention':
    case 'GroupQueryAttention':
    case 'DecoderMaskedMultiHeadAttention': {
      const q = sh(0);
      if (!q) return none;
      if (q.length === 5) {
        none[0] = { shape: [q[0]!, q[1]!, mul(q[2]!, q[4]!)], dtype };
        return none;
      }
      if (q.length !== 3) return none;
      if (n.op === 'GroupQueryAttention') {
        const kv = intAttr(n, 'kv_num_heads');
        const qh = q[2]!;
        const packed = !n.inputs[1] && heads !== undefined && kv !== undefined ? div(mul(qh, constant(heads)), constant(heads + 2 * kv)) : undefined;
        none[0] = { shape: [q[0]!, q[1]!, n.inputs[1] ? qh : (packed ?? ctx.fresh())], dtype };
        return none;
      }
      const v = sh(2);
      const vh = v?.length === 3 ? v[2]! : v?.length === 4 && heads ? mul(constant(heads), v[3]!) : n.inputs[2] ? ctx.fresh() : q[2]!;
      none[0] = { shape: [q[0]!, q[1]!, vh], dtype };
      // MultiHeadAttention's present key / value: [batch, heads, past + kv length, head size]; 4D K / V already
      // hold every key
      const k = sh(1);
      if (n.op === 'MultiHeadAttention' && heads !== undefined && k && v && k.length === v.length && (k.length === 3 || k.length === 4)) {
        const pastK = n.inputs[6] ? sh(6) : undefined;
        const kvLen = k.length === 4 ? k[2]! : k[1]!;
        const total = k.length === 4 || !n.inputs[6] ? kvLen : pastK?.length === 4 ? add(pastK[2]!, kvLen) : undefined;
        const hd = (x: readonly Expr[]) => (x.length === 4 ? x[3]! : (div(x[2]!, constant(heads)) ?? ctx.fresh()));
        if (total) {
          none[1] = { shape: [q[0]!, constant(heads), total, hd(k)], dtype };
          none[2] = { shape: [q[0]!, constant(heads), total, hd(v)], dtype };
        }
      }
      return none;
    }
    case 'RestorePadding': {
      const x = sh(0);
      const offsets = sh(1);
      return [x && offsets ? { shape: [offsets[0]!, offsets[1]!, x[1]!], dtype } : { dtype }];
    }
    case 'BiasAdd':
      return [{ shape: sh(0), dtype }];
    case 'GreedySearch':
    case 'Sampling':
    case 'BeamSearch': {
      // sequences: [batch, max_length] ([batch, num_return_sequences, max_length] for BeamSearch)
      const ids = sh(0);
      const maxLength = ctx.info(n.inputs[1])?.value?.[0] ?? ctx.fresh();
      if (!ids) return none;
      const returned = n.op === 'BeamSearch' ? [ctx.info(n.inputs[4])?.value?.[0] ?? ctx.fresh()] : [];
      none[0] = { shape: [ids[0]!, ...returned, maxLength], dtype: 'i32' };
      return none;
    }
    case 'FusedMatMul':
      return fusedMatmul(n, ctx);
    default:
      return SAME_AS_FIRST.includes(n.op) ? sameAsFirst(n, ctx) : undefined;
  }
}

/** If: the branch a static condition takes, else dims both branches agree on. */
function ifRule(n: Node, ctx: RuleContext): (Info | undefined)[] {
  const cond = ctx.info(n.inputs[0])?.value?.[0]?.constant;
  const then = ctx.subgraph('then_branch');
  const other = ctx.subgraph('else_branch');
  if (cond !== undefined) return (cond !== 0 ? then : other) ?? n.outputs.map(() => undefined);
  return n.outputs.map((_, k) => {
    const [a, b] = [then?.[k], other?.[k]];
    if (!a || !b) return undefined;
    const dtype = a.dtype === b.dtype ? a.dtype : undefined;
    if (!a.shape || !b.shape || a.shape.length !== b.shape.length) return { dtype };
    return { shape: a.shape.map((d, j) => (d === b.shape![j] ? d : ctx.fresh())), dtype };
  });
}

/** Loop: carried values keep their dtype (their shape may change per iteration); scan outputs gain a leading axis. */
function loopRule(n: Node, ctx: RuleContext): (Info | undefined)[] {
  const carried = n.inputs.slice(2).map((v) => ({ dtype: ctx.info(v)?.dtype }));
  const body = ctx.subgraph('body', [{ shape: [], dtype: 'i64' }, { shape: [], dtype: 'bool' }, ...carried]);
  return n.outputs.map((_, k) => {
    if (k < carried.length) return carried[k];
    const b = body?.[1 + k];
    return b?.shape ? { shape: [ctx.fresh(), ...b.shape], dtype: b.dtype } : { dtype: b?.dtype };
  });
}

/** Scan: states keep their dtype; each scan output stacks the body's per-step output along a new axis. */
function scanRule(n: Node, ctx: RuleContext): (Info | undefined)[] {
  const m = intAttr(n, 'num_scan_inputs') ?? 0;
  const states = n.inputs.length - m;
  const ins = n.inputs.map((v) => ctx.info(v));
  const inAxes = intsAttr(n, 'scan_input_axes');
  const bodyIns = ins.map((i, k) => {
    if (k < states) return { dtype: i?.dtype };
    const ax = normAxis(inAxes?.[k - states] ?? 0, i?.shape?.length ?? 0);
    return { shape: i?.shape?.filter((_, j) => j !== ax), dtype: i?.dtype };
  });
  const steps = ins[states]?.shape?.[normAxis(inAxes?.[0] ?? 0, ins[states]?.shape?.length ?? 0)];
  const body = ctx.subgraph('body', bodyIns);
  const outAxes = intsAttr(n, 'scan_output_axes');
  return n.outputs.map((_, k) => {
    if (k < states) return bodyIns[k];
    const b = body?.[k];
    if (!b?.shape) return { dtype: b?.dtype };
    const ax = normAxis(outAxes?.[k - states] ?? 0, b.shape.length + 1);
    const shape = [...b.shape];
    shape.splice(ax, 0, steps ?? ctx.fresh());
    return { shape, dtype: b.dtype };
  });
}

export const COMPUTE_RULES: Record<string, Rule> = {
  ...Object.fromEntries(SAME_AS_FIRST.map((op) => [op, sameAsFirst])),
  MatMul: matmul,
  MatMulInteger: matmul,
  Gemm: gemm,
  Transpose: transpose,
  Split: split,
  Einsum: einsum,
  Conv: convLike,
  MaxPool: convLike,
  AveragePool: convLike,
  LpPool: convLike,
  GlobalAveragePool: globalPool,
  GlobalMaxPool: globalPool,
  Pad: pad,
  Constant: constantNode,
  TopK: topK,
  GatherElements: gatherElements,
  GatherND: gatherND,
  NonZero: (n, ctx) => {
    const r = ctx.info(n.inputs[0])?.shape?.length;
    return [{ shape: [r === undefined ? ctx.fresh() : constant(r), ctx.fresh()], dtype: 'i64' }];
  },
  If: ifRule,
  Loop: loopRule,
  Scan: scanRule,
};

/** Ops of any domain read as keeping their first input's shape (custom domains reuse these names for the same ops). */
export const SHAPE_KEEPING = new Set(SAME_AS_FIRST);

export { attention as attentionRule, microsoft as microsoftRule };
