// Static shape, rank and dtype of a value: its declared type, else inferred by walking producers through the
// ops transformer graphs use (elementwise, MatMul, Reshape, Transpose, Gather, Split, Reduce*, layer norms,
// the com.microsoft fused ops...). The ONNX importer leaves intermediate values untyped; fused-op rules
// need ranks and hidden sizes. Unknown dims are '?'; undefined means "not even the rank is known".
// Reading never mutates the graph; results are memoized per top-level call only (graphs change under rewrites).

import { attentionParams, type Dim, type DType, dtypeFromOnnx, isAttention, type Node, type Value } from '@attnopt/ir';
import { constantNumbers } from '@attnopt/rewrite';

const UNKNOWN: Dim = '?';
const MAX_DEPTH = 200;
const MS = 'com.microsoft';

const intAttr = (n: Node, name: string): number | undefined => {
  const a = n.attrs.get(name);
  return a?.type === 'int' ? Number(a.value) : undefined;
};
const intsAttr = (n: Node, name: string): number[] | undefined => {
  const a = n.attrs.get(name);
  return a?.type === 'ints' ? a.value.map(Number) : undefined;
};

/** Ops whose first output has the shape (and dtype) of their first input. */
const SAME_AS_FIRST = new Set([
  'Identity', 'Softmax', 'LogSoftmax', 'Tanh', 'Sqrt', 'Relu', 'Gelu', 'Erf', 'Neg', 'Not', 'Sigmoid', 'Exp', 'Log',
  'Abs', 'Reciprocal', 'Dropout', 'Trilu', 'Clip', 'LayerNormalization', 'RMSNormalization', 'HardSigmoid', 'Softplus',
  'SkipLayerNormalization', 'SkipSimplifiedLayerNormalization', 'SimplifiedLayerNormalization', 'RotaryEmbedding',
  'FastGelu', 'BiasGelu', 'QuickGelu', 'CumSum', 'Floor', 'Ceil', 'Round', 'Sign', 'IsNaN', 'IsInf',
]);
const BROADCAST = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Mod', 'Max', 'Min', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor', 'Where', 'BiasAdd', 'Sum']);
const BOOL_OUT = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor', 'Not', 'IsNaN', 'IsInf']);
const REDUCE = new Set(['ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL2', 'ArgMax', 'ArgMin']);

function broadcast(shapes: readonly (readonly Dim[])[]): Dim[] {
  const r = Math.max(...shapes.map((s) => s.length));
  return Array.from({ length: r }, (_, k) => {
    const dims = shapes.map((s) => s[s.length - r + k] ?? 1);
    const big = dims.filter((d) => d !== 1);
    if (big.length === 0) return 1;
    const num = big.find((d) => typeof d === 'number');
    if (num !== undefined) return num;
    return big.every((d) => d === big[0]) && big[0] !== UNKNOWN ? big[0]! : UNKNOWN;
  });
}

const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

class Inference {
  private readonly memo = new Map<Value, Dim[] | undefined>();

  shape(v: Value | undefined, depth = 0): Dim[] | undefined {
    if (v === undefined) return undefined;
    if (v.type?.kind === 'tensor' && v.type.shape !== undefined) return [...v.type.shape];
    if (v.initializer) return [...v.initializer.shape];
    if (this.memo.has(v)) return this.memo.get(v);
    this.memo.set(v, undefined); // cycles (never in a DAG) read as unknown
    const s = depth > MAX_DEPTH ? undefined : this.fromProducer(v, depth + 1);
    this.memo.set(v, s);
    return s;
  }

  /** A small int vector known before run time (constants; Shape of a static shape; Concat of those). */
  ints(v: Value | undefined, depth = 0): number[] | undefined {
    const c = constantNumbers(v);
    if (c) return [...c];
    const p = v?.producer;
    if (!p || p.domain !== '' || depth > 16) return undefined;
    if (p.op === 'Shape') {
      const s = this.shape(p.inputs[0]);
      if (!s || s.some((d) => typeof d !== 'number')) return undefined;
      const r = s.length;
      const clamp = (x: number) => Math.min(Math.max(norm(x, r), 0), r);
      return (s as number[]).slice(clamp(intAttr(p, 'start') ?? 0), clamp(intAttr(p, 'end') ?? r));
    }
    if (p.op === 'Concat') {
      const parts = p.inputs.map((x) => this.ints(x, depth + 1));
      return parts.every((x) => x !== undefined) ? parts.flat() : undefined;
    }
    if (p.op === 'Cast' || p.op === 'Identity') return this.ints(p.inputs[0], depth + 1);
    return undefined;
  }

  private fromProducer(v: Value, depth: number): Dim[] | undefined {
    const n = v.producer;
    if (!n) return undefined;
    const sh = (k: number) => this.shape(n.inputs[k], depth);
    const out = v.outputIndex >= 0 ? v.outputIndex : n.outputs.indexOf(v);
    if (isAttention(n)) return this.attention(n, out, depth);
    if (n.domain === MS) return this.microsoft(n, out, depth);
    if (n.domain !== '' && n.domain !== 'ai.onnx') return SAME_AS_FIRST.has(n.op) && out === 0 ? sh(0) : undefined;
    if (SAME_AS_FIRST.has(n.op) || n.op === 'Cast' || n.op === 'CastLike') {
      if (n.op === 'LayerNormalization' && out > 0) {
        const s = sh(0);
        const axis = intAttr(n, 'axis') ?? -1;
        return s?.map((d, k) => (k >= norm(axis, s.length) ? 1 : d));
      }
      return out === 0 ? sh(0) : undefined;
    }
    if (BROADCAST.has(n.op)) {
      const all = n.inputs.map((_, k) => sh(k));
      return all.every((s) => s !== undefined) ? broadcast(all as Dim[][]) : undefined;
    }
    switch (n.op) {
      case 'Constant': {
        const t = n.attrs.get('value');
        if (t?.type === 'tensor') return [...t.value.shape];
        const vs = n.attrs.get('value_ints') ?? n.attrs.get('value_floats');
        if (vs?.type === 'ints' || vs?.type === 'floats') return [vs.value.length];
        return n.attrs.has('value_int') || n.attrs.has('value_float') ? [] : undefined;
      }
      case 'Shape': {
        const r = sh(0)?.length;
        if (r === undefined) return [UNKNOWN];
        const clamp = (x: number) => Math.min(Math.max(norm(x, r), 0), r);
        return [Math.max(0, clamp(intAttr(n, 'end') ?? r) - clamp(intAttr(n, 'start') ?? 0))];
      }
      case 'Size':
        return [];
      case 'MatMul':
      case 'MatMulInteger': {
        const a = sh(0);
        const b = sh(1);
        if (!a || !b || a.length === 0 || b.length === 0) return undefined;
        const a2 = a.length === 1 ? [1, a[0]!] : a;
        const b2 = b.length === 1 ? [b[0]!, 1] : b;
        const batch = broadcast([a2.slice(0, -2), b2.slice(0, -2)]);
        const res = [...batch, a2[a2.length - 2]!, b2[b2.length - 1]!];
        if (a.length === 1) res.splice(res.length - 2, 1);
        if (b.length === 1) res.splice(res.length - 1, 1);
        return res;
      }
      case 'Gemm': {
        const a = sh(0);
        const b = sh(1);
        if (a?.length !== 2 || b?.length !== 2) return undefined;
        return [intAttr(n, 'transA') ? a[1]! : a[0]!, intAttr(n, 'transB') ? b[0]! : b[1]!];
      }
      case 'Gather': {
        const data = sh(0);
        const idx = sh(1);
        if (!data || !idx) return undefined;
        const axis = norm(intAttr(n, 'axis') ?? 0, data.length);
        return [...data.slice(0, axis), ...idx, ...data.slice(axis + 1)];
      }
      case 'GatherElements':
        return sh(1);
      case 'Reshape': {
        const target = this.ints(n.inputs[1]);
        const input = sh(0);
        if (target) {
          const allowZero = intAttr(n, 'allowzero') ?? 0;
          const dims: Dim[] = target.map((d, k) => (d === 0 && !allowZero ? (input?.[k] ?? UNKNOWN) : d === -1 ? UNKNOWN : d));
          const minus = dims.indexOf(UNKNOWN);
          if (minus >= 0 && target[minus] === -1 && input && input.every((d) => typeof d === 'number')) {
            const total = (input as number[]).reduce((a, b) => a * b, 1);
            const rest = dims.reduce<number>((a, d, k) => (k === minus || typeof d !== 'number' ? a : a * d), 1);
            if (dims.every((d, k) => k === minus || typeof d === 'number') && rest > 0) dims[minus] = total / rest;
          }
          return dims;
        }
        const len = this.shape(n.inputs[1], depth)?.[0];
        return typeof len === 'number' ? Array<Dim>(len).fill(UNKNOWN) : undefined;
      }
      case 'Flatten': {
        const s = sh(0);
        if (!s) return undefined;
        const axis = norm(intAttr(n, 'axis') ?? 1, s.length);
        const prod = (xs: Dim[]) => (xs.every((d) => typeof d === 'number') ? (xs as number[]).reduce((a, b) => a * b, 1) : UNKNOWN);
        return [prod(s.slice(0, axis)), prod(s.slice(axis))];
      }
      case 'Unsqueeze': {
        const s = sh(0);
        const axes = intsAttr(n, 'axes') ?? this.ints(n.inputs[1]);
        if (!s || !axes) return undefined;
        const r = s.length + axes.length;
        const at = new Set(axes.map((a) => norm(a, r)));
        const res: Dim[] = [];
        let k = 0;
        for (let i = 0; i < r; i++) res.push(at.has(i) ? 1 : s[k++]!);
        return res;
      }
      case 'Squeeze': {
        const s = sh(0);
        if (!s) return undefined;
        const axes = intsAttr(n, 'axes') ?? this.ints(n.inputs[1]);
        if (!axes) return s.some((d) => typeof d !== 'number') ? undefined : s.filter((d) => d !== 1);
        const at = new Set(axes.map((a) => norm(a, s.length)));
        return s.filter((_, k) => !at.has(k));
      }
      case 'Transpose': {
        const s = sh(0);
        if (!s) return undefined;
        const perm = intsAttr(n, 'perm') ?? s.map((_, k) => s.length - 1 - k);
        return perm.map((p) => s[p] ?? UNKNOWN);
      }
      case 'Concat': {
        const all = n.inputs.map((_, k) => sh(k));
        const first = all.find((s) => s !== undefined);
        if (!first) return undefined;
        const axis = norm(intAttr(n, 'axis') ?? 0, first.length);
        const res = [...first];
        res[axis] = all.every((s) => typeof s?.[axis] === 'number') ? all.reduce((a, s) => a + (s![axis] as number), 0) : UNKNOWN;
        return res;
      }
      case 'Split': {
        const s = sh(0);
        if (!s) return undefined;
        const axis = norm(intAttr(n, 'axis') ?? 0, s.length);
        const sizes = intsAttr(n, 'split') ?? this.ints(n.inputs[1]);
        const res = [...s];
        const whole = s[axis];
        res[axis] = sizes?.[out] ?? (typeof whole === 'number' && n.outputs.length > 0 && whole % n.outputs.length === 0 ? whole / n.outputs.length : UNKNOWN);
        return res;
      }
      case 'Slice': {
        const s = sh(0);
        if (!s) return undefined;
        const axes = this.ints(n.inputs[3]);
        if (!axes) return n.inputs[3] ? s.map(() => UNKNOWN) : s.map(() => UNKNOWN);
        const at = new Set(axes.map((a) => norm(a, s.length)));
        return s.map((d, k) => (at.has(k) ? UNKNOWN : d));
      }
      case 'Expand': {
        const s = sh(0);
        const target = this.ints(n.inputs[1]);
        if (s && target) return broadcast([s, target]);
        const len = this.shape(n.inputs[1], depth)?.[0];
        if (!s || typeof len !== 'number') return undefined;
        return Array<Dim>(Math.max(len, s.length)).fill(UNKNOWN);
      }
      case 'ConstantOfShape': {
        const target = this.ints(n.inputs[0]);
        if (target) return target;
        const len = this.shape(n.inputs[0], depth)?.[0];
        return typeof len === 'number' ? Array<Dim>(len).fill(UNKNOWN) : undefined;
      }
      case 'Range':
        return [UNKNOWN];
      case 'NonZero':
        return [sh(0)?.length ?? UNKNOWN, UNKNOWN];
      case 'Tile': {
        const s = sh(0);
        const reps = this.ints(n.inputs[1]);
        if (!s) return undefined;
        return s.map((d, k) => (reps && typeof d === 'number' ? d * reps[k]! : UNKNOWN));
      }
      default:
        if (REDUCE.has(n.op)) return this.reduce(n, depth);
        return undefined;
    }
  }

  private reduce(n: Node, depth: number): Dim[] | undefined {
    const s = this.shape(n.inputs[0], depth);
    if (!s) return undefined;
    const keep = (intAttr(n, 'keepdims') ?? 1) !== 0;
    let axes: number[] | undefined = intsAttr(n, 'axes') ?? (intAttr(n, 'axis') !== undefined ? [intAttr(n, 'axis')!] : undefined);
    if (axes === undefined && n.inputs[1]) {
      axes = this.ints(n.inputs[1]);
      if (axes === undefined) return undefined;
    }
    if (axes === undefined || axes.length === 0) {
      if (n.op.startsWith('Arg')) axes = [0];
      else if ((intAttr(n, 'noop_with_empty_axes') ?? 0) !== 0) return s;
      else axes = s.map((_, k) => k);
    }
    const at = new Set(axes.map((a) => norm(a, s.length)));
    return keep ? s.map((d, k) => (at.has(k) ? 1 : d)) : s.filter((_, k) => !at.has(k));
  }

  private attention(n: Node, out: number, depth: number): Dim[] | undefined {
    const p = attentionParams(n);
    const q = this.shape(n.inputs[0], depth);
    if (out !== 0 || !q) return out === 0 ? undefined : this.shape(n.inputs[out === 1 ? 4 : 5], depth)?.map(() => UNKNOWN);
    switch (p.layout) {
      case 'bhsd':
        return [q[0]!, p.numHeads, q[2]!, p.vHeadDim];
      case 'bshd':
        return [q[0]!, q[1]!, p.numHeads, p.vHeadDim];
      default:
        return [q[0]!, q[1]!, p.numHeads * p.vHeadDim];
    }
  }

  private microsoft(n: Node, out: number, depth: number): Dim[] | undefined {
    const sh = (k: number) => this.shape(n.inputs[k], depth);
    if (SAME_AS_FIRST.has(n.op)) return out === 0 || (n.op.startsWith('Skip') && out === 3) ? sh(0) : undefined;
    const heads = intAttr(n, 'num_heads');
    switch (n.op) {
      case 'EmbedLayerNormalization': {
        const ids = sh(0);
        const hidden = sh(2)?.[1] ?? UNKNOWN;
        if (ids?.length !== 2) return undefined;
        return out === 1 ? [ids[0]!] : [ids[0]!, ids[1]!, hidden];
      }
      case 'RestorePadding': {
        const x = sh(0);
        const offsets = sh(1);
        return x && offsets ? [offsets[0]!, offsets[1]!, x[1]!] : undefined;
      }
      case 'Attention': {
        const x = sh(0);
        const w = sh(1);
        if (out !== 0 || x?.length !== 3) return undefined;
        const hs = intsAttr(n, 'qkv_hidden_sizes');
        const total = w?.[1];
        const vh = hs ? hs[2]! : typeof total === 'number' ? total / 3 : UNKNOWN;
        return [x[0]!, x[1]!, vh];
      }
      case 'MultiHeadAttention':
      case 'GroupQueryAttention':
      case 'DecoderMaskedMultiHeadAttention': {
        const q = sh(0);
        if (out !== 0 || q === undefined) return undefined;
        if (q.length === 5) return [q[0]!, q[1]!, typeof q[2] === 'number' && typeof q[4] === 'number' ? q[2] * q[4] : UNKNOWN];
        if (q.length !== 3) return undefined;
        if (n.op === 'GroupQueryAttention') {
          const kv = intAttr(n, 'kv_num_heads');
          const qh = q[2];
          if (n.inputs[1] || typeof qh !== 'number' || heads === undefined || kv === undefined) return [q[0]!, q[1]!, n.inputs[1] ? qh! : UNKNOWN];
          return [q[0]!, q[1]!, (qh / (heads + 2 * kv)) * heads];
        }
        const v = sh(2);
        const vh = v?.length === 3 ? v[2]! : v?.length === 4 && typeof v[3] === 'number' && heads ? heads * v[3] : n.inputs[2] ? UNKNOWN : q[2]!;
        return [q[0]!, q[1]!, vh];
      }
      default:
        return undefined;
    }
  }

  dtype(v: Value | undefined, depth = 0): DType | undefined {
    if (v === undefined || depth > MAX_DEPTH) return undefined;
    if (v.type?.kind === 'tensor') return v.type.dtype;
    if (v.initializer) return v.initializer.dtype;
    const n = v.producer;
    if (!n) return undefined;
    const out = v.outputIndex >= 0 ? v.outputIndex : n.outputs.indexOf(v);
    if (n.op === 'Cast' && (n.domain === '' || n.domain === 'ai.onnx')) {
      const to = intAttr(n, 'to');
      return to === undefined ? undefined : dtypeFromOnnx(to);
    }
    if (n.op === 'CastLike') return this.dtype(n.inputs[1], depth + 1);
    if (BOOL_OUT.has(n.op)) return 'bool';
    if (['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin'].includes(n.op)) return 'i64';
    if (n.op === 'Constant') {
      const t = n.attrs.get('value');
      if (t?.type === 'tensor') return t.value.dtype;
      return n.attrs.has('value_int') || n.attrs.has('value_ints') ? 'i64' : 'f32';
    }
    if (n.op === 'ConstantOfShape') {
      const t = n.attrs.get('value');
      return t?.type === 'tensor' ? t.value.dtype : 'f32';
    }
    if (n.op === 'EmbedLayerNormalization') return out === 1 ? 'i32' : this.dtype(n.inputs[2], depth + 1);
    if (n.op === 'Where') return this.dtype(n.inputs[1], depth + 1);
    return this.dtype(n.inputs[0], depth + 1);
  }
}

/** The shape of `v`: declared, else inferred from its producers ('?' for unknown dims). */
export function inferShape(v: Value | undefined): readonly Dim[] | undefined {
  return new Inference().shape(v);
}

/** The rank of `v`, or undefined when not even that is known. */
export function inferRank(v: Value | undefined): number | undefined {
  return inferShape(v)?.length;
}

/** The element type of `v`: declared, else inferred from its producers. */
export function inferDtype(v: Value | undefined): DType | undefined {
  return new Inference().dtype(v);
}

/** A small int vector fixed before run time (constants, Shape of a static shape, Concat of those). */
export function staticInts(v: Value | undefined): number[] | undefined {
  return new Inference().ints(v);
}
