// What the graph fixes before any input arrives, in one place for every rule and pass:
// - the shape, rank and dtype of a value: its declared type, else inferred by walking producers through the
//   ops transformer graphs use (elementwise, MatMul, Gemm, Reshape, Transpose, Gather, Split, Slice, Expand,
//   ConstantOfShape, Reduce*, layer norms, the com.microsoft fused ops...);
// - the elements of small values computed from constants and static shapes (Shape/Gather/Unsqueeze/Concat
//   chains, Cast, Sqrt, integer Div truncating...), as exporters spell `1 / sqrt(head_size)` or a reshape target.
// The ONNX importer leaves intermediate values untyped. Unknown dims are '?' (or a declared symbol); undefined
// means "not even the rank is known". Reading never mutates the graph; results are memoized per outermost
// query only (shared sub-chains are walked once; graphs change under rewrites, so nothing outlives a query).

import { attentionParams, type Dim, type DType, dtypeFromOnnx, isAttention, type Node, type Value } from '@attnopt/ir';
import { constantNumbers } from '@attnopt/rewrite';

const UNKNOWN: Dim = '?';
const MAX_DEPTH = 200;
const INTEGRAL = new Set<DType>(['i8', 'i16', 'i32', 'i64', 'u8', 'u16', 'u32', 'u64']);
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

const clampTo = (x: number, r: number) => Math.min(Math.max(norm(x, r), 0), r);

/** The [start, end) slice a Shape node takes of a rank-`r` shape. */
const shapeRange = (n: Node, r: number): [number, number] => [clampTo(intAttr(n, 'start') ?? 0, r), clampTo(intAttr(n, 'end') ?? r, r)];

class Inference {
  private readonly memo = new Map<Value, Dim[] | undefined>();
  private readonly numbersMemo = new Map<Value, Float64Array | undefined>();
  private readonly dtypeMemo = new Map<Value, DType | undefined>();

  /** refine: a declared shape with symbolic dims also gets the numbers its producers fix. */
  constructor(readonly refine: boolean) {}

  shape(v: Value | undefined, depth = 0): Dim[] | undefined {
    if (v === undefined) return undefined;
    if (v.initializer) return [...v.initializer.shape];
    const declared = v.type?.kind === 'tensor' ? v.type.shape : undefined;
    if (declared !== undefined && (!this.refine || declared.every((d) => typeof d === 'number'))) return [...declared];
    if (this.memo.has(v)) return this.memo.get(v)?.slice();
    this.memo.set(v, undefined); // cycles (never in a DAG) read as unknown
    const inferred = depth > MAX_DEPTH ? undefined : this.fromProducer(v, depth + 1);
    const s =
      declared === undefined ? inferred
      : inferred?.length !== declared.length ? [...declared]
      : declared.map((d, k) => (typeof d === 'number' ? d : typeof inferred[k] === 'number' ? inferred[k]! : d));
    this.memo.set(v, s);
    return s?.slice();
  }

  /** A small int vector known before run time (see numbers). */
  ints(v: Value | undefined): number[] | undefined {
    const xs = this.numbers(v);
    return xs && [...xs];
  }

  /** Every element of a small value the graph computes from constants and static shapes, or undefined. */
  numbers(v: Value | undefined, depth = 0): Float64Array | undefined {
    if (v === undefined || depth > MAX_DEPTH) return undefined;
    if (this.numbersMemo.has(v)) return this.numbersMemo.get(v);
    this.numbersMemo.set(v, undefined);
    const r = this.numbersUncached(v, depth);
    this.numbersMemo.set(v, r);
    return r;
  }

  private numbersUncached(v: Value, depth: number): Float64Array | undefined {
    const c = constantNumbers(v);
    if (c) return c;
    const n = v.producer;
    if (!n || n.domain !== '' || v.outputIndex !== 0) return undefined;
    const at = (k: number) => this.numbers(n.inputs[k], depth + 1);
    switch (n.op) {
      case 'Identity': case 'Squeeze': case 'Unsqueeze': case 'Reshape': case 'CastLike':
        return at(0);
      case 'Cast': {
        // float32 rounds; integer targets truncate; other targets keep the float64 values
        const x = at(0);
        const to = intAttr(n, 'to');
        if (!x || to === undefined) return x;
        const dt = dtypeFromOnnx(to);
        if (dt === 'f32') return x.map(Math.fround);
        return dt !== undefined && INTEGRAL.has(dt) ? x.map(Math.trunc) : x;
      }
      case 'Sqrt': return at(0)?.map(Math.sqrt);
      case 'Reciprocal': return at(0)?.map((x) => 1 / x);
      case 'Neg': return at(0)?.map((x) => -x);
      case 'Not': return at(0)?.map((x) => Number(x === 0));
      case 'Add': case 'Sub': case 'Mul': case 'Div': case 'Pow': case 'Equal': case 'Mod': case 'And': {
        const [a, b] = [at(0), at(1)];
        if (!a || !b) return undefined;
        // integer Div truncates (PyTorch's shape arithmetic: (3E + 2) / 3)
        const intDiv = n.op === 'Div' && INTEGRAL.has(this.dtype(n.inputs[0], depth + 1)!) && INTEGRAL.has(this.dtype(n.inputs[1], depth + 1)!);
        const f = {
          Add: (x: number, y: number) => x + y,
          Sub: (x: number, y: number) => x - y,
          Mul: (x: number, y: number) => x * y,
          Div: intDiv ? (x: number, y: number) => Math.trunc(x / y) : (x: number, y: number) => x / y,
          Pow: (x: number, y: number) => x ** y,
          Equal: (x: number, y: number) => Number(x === y),
          Mod: (x: number, y: number) => x % y,
          And: (x: number, y: number) => Number(x !== 0 && y !== 0),
        }[n.op]!;
        return elementwise(a, b, f);
      }
      case 'Shape': {
        const s = this.shapeEntries(n, depth);
        return s && s.every((d) => !Number.isNaN(d)) ? s : undefined;
      }
      case 'Concat': {
        const parts = n.inputs.map((_, k) => at(k));
        return parts.every((p) => p !== undefined) ? Float64Array.from(parts.flatMap((p) => [...p])) : undefined;
      }
      case 'Where': {
        const [c, a, b] = [at(0), at(1), at(2)];
        if (!c || !a || !b || c.length !== 1) return undefined;
        return c[0] ? a : b;
      }
      case 'Slice': {
        // a piece of a shape vector (the head size as Shape(x)[-1:]): only its entries need be static
        const src = n.inputs[0]?.producer;
        const data = at(0) ?? (src?.op === 'Shape' && src.domain === '' ? this.shapeEntries(src, depth) : undefined);
        const fromInput = (k: number) => (n.inputs[k] !== undefined ? at(k) : undefined);
        const starts = intsAttr(n, 'starts') ?? fromInput(1);
        const ends = intsAttr(n, 'ends') ?? fromInput(2);
        const axes = intsAttr(n, 'axes') ?? fromInput(3) ?? [0];
        const steps = fromInput(4) ?? [1];
        if (!data || !starts || !ends || starts.length !== 1 || ends.length !== 1 || axes.length !== 1 || (axes[0] !== 0 && axes[0] !== -1)) return undefined;
        const len = data.length;
        const step = steps[0]!;
        if (step !== 1) return undefined;
        const clamp = (x: number) => Math.min(len, Math.max(0, x < 0 ? x + len : x));
        const out = data.slice(clamp(starts[0]!), clamp(ends[0]!));
        return out.every((x) => !Number.isNaN(x)) ? out : undefined;
      }
      case 'Gather': {
        const idx = at(1);
        if (!idx || (intAttr(n, 'axis') ?? 0) !== 0) return undefined;
        const src = n.inputs[0]?.producer;
        const data = at(0) ?? (src?.op === 'Shape' && src.domain === '' ? this.shapeEntries(src, depth) : undefined);
        if (!data) return undefined;
        const out = [...idx].map((i) => data[i < 0 ? i + data.length : i]);
        return out.every((x) => x !== undefined && !Number.isNaN(x)) ? Float64Array.from(out as number[]) : undefined;
      }
      default:
        return undefined;
    }
  }

  /** The entries of a Shape node's output, unknown dims as NaN (a Gather may read only the static ones). */
  private shapeEntries(shapeNode: Node, depth: number): Float64Array | undefined {
    const s = this.shape(shapeNode.inputs[0], depth + 1);
    if (!s) return undefined;
    const [lo, hi] = shapeRange(shapeNode, s.length);
    return Float64Array.from(s.slice(lo, hi), (d) => (typeof d === 'number' ? d : NaN));
  }

  /** A reshape target: static numbers, else a Concat of one-element parts with unknown parts as NaN. */
  private reshapeTarget(v: Value | undefined, depth: number): Float64Array | undefined {
    const known = this.numbers(v, depth);
    if (known) return known;
    let p = v?.producer;
    if (p?.op === 'Cast' && p.domain === '') p = p.inputs[0]?.producer;
    if (p?.op !== 'Concat' || p.domain !== '') return undefined;
    const dims: number[] = [];
    for (const part of p.inputs) {
      const st = this.numbers(part, depth + 1);
      if (st) dims.push(...st);
      else {
        const ps = this.shape(part, depth + 1);
        if (!ps || ps.length > 1 || (ps.length === 1 && ps[0] !== 1)) return undefined;
        dims.push(NaN);
      }
    }
    return Float64Array.from(dims);
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
        const [lo, hi] = shapeRange(n, r);
        return [Math.max(0, hi - lo)];
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
        // 0 copies the input dim (unless allowzero), -1 takes what is left, NaN (a run-time part) is unknown
        const target = this.reshapeTarget(n.inputs[1], depth);
        if (!target) {
          const len = this.shape(n.inputs[1], depth)?.[0];
          return typeof len === 'number' ? Array<Dim>(len).fill(UNKNOWN) : undefined;
        }
        const input = sh(0);
        const allowZero = intAttr(n, 'allowzero') ?? 0;
        const dims: Dim[] = [...target].map((d, k) => (Number.isNaN(d) ? UNKNOWN : d === 0 && !allowZero ? (input?.[k] ?? UNKNOWN) : d));
        const minus = [...target].indexOf(-1);
        if (minus >= 0) {
          dims[minus] = UNKNOWN;
          const rest = dims.filter((_, k) => k !== minus);
          if (input?.every((d) => typeof d === 'number') && rest.every((d) => typeof d === 'number')) {
            const total = (input as number[]).reduce((a, b) => a * b, 1);
            const part = (rest as number[]).reduce((a, b) => a * b, 1);
            dims[minus] = part === 0 ? 0 : total / part;
          } else if (input !== undefined) {
            // dims copied by 0 are the same on both sides and cancel: [?, ?, 4] -> [0, 0, 2, -1] leaves 4 / 2
            const copied = (k: number) => target[k] === 0 && !allowZero && k < input.length;
            const inLeft = input.filter((_, k) => !copied(k));
            const outLeft = dims.filter((_, k) => k !== minus && !copied(k));
            if (inLeft.every((d) => typeof d === 'number') && outLeft.every((d) => typeof d === 'number')) {
              const total = (inLeft as number[]).reduce((a, b) => a * b, 1);
              const part = (outLeft as number[]).reduce((a, b) => a * b, 1);
              if (part > 0 && total % part === 0) dims[minus] = total / part;
            }
          }
        }
        return dims;
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
        // the rank stays; a sliced axis keeps a size only when the starts, ends and steps are static
        const x = sh(0);
        if (!x) return undefined;
        const axes = n.inputs[3] ? this.ints(n.inputs[3]) : x.map((_, k) => k);
        if (!axes) return x.map(() => UNKNOWN);
        const [starts, ends] = [this.ints(n.inputs[1]), this.ints(n.inputs[2])];
        const steps = n.inputs[4] ? this.ints(n.inputs[4]) : undefined;
        const res = [...x];
        axes.forEach((a, j) => {
          const ax = norm(a, x.length);
          const d = x[ax];
          const [lo0, hi0, st] = [starts?.[j], ends?.[j], steps?.[j] ?? 1];
          if (typeof d === 'number' && lo0 !== undefined && hi0 !== undefined && st > 0) {
            const lo = Math.min(Math.max(lo0 < 0 ? lo0 + d : lo0, 0), d);
            const hi = Math.min(Math.max(hi0 < 0 ? hi0 + d : hi0, 0), d);
            res[ax] = Math.max(0, Math.ceil((hi - lo) / st));
          } else res[ax] = UNKNOWN;
        });
        return res;
      }
      case 'Expand': {
        const s = sh(0);
        const target = this.ints(n.inputs[1]);
        if (s && target) return broadcast([s, target]);
        const len = this.shape(n.inputs[1], depth)?.[0];
        if (!s || typeof len !== 'number') return undefined;
        // rank max(rank x, target length); a dim of x that is not 1 stays (Expand never changes it)
        const r = Math.max(len, s.length);
        return Array.from({ length: r }, (_, k): Dim => {
          const d = s[s.length - r + k];
          return d === undefined || d === 1 ? UNKNOWN : d;
        });
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
      case 'bhsd': // vHeadDim 0: read from V at run time
        return [q[0]!, p.numHeads, q[2]!, p.vHeadDim || (this.shape(n.inputs[2], depth)?.[3] ?? UNKNOWN)];
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
    if (this.dtypeMemo.has(v)) return this.dtypeMemo.get(v);
    this.dtypeMemo.set(v, undefined);
    const t = this.dtypeUncached(v, depth);
    this.dtypeMemo.set(v, t);
    return t;
  }

  private dtypeUncached(v: Value, depth: number): DType | undefined {
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

function elementwise(a: Float64Array, b: Float64Array, f: (x: number, y: number) => number): Float64Array | undefined {
  if (a.length !== b.length && a.length !== 1 && b.length !== 1) return undefined;
  const n = Math.max(a.length, b.length);
  return Float64Array.from({ length: n }, (_, k) => f(a[a.length === 1 ? 0 : k]!, b[b.length === 1 ? 0 : k]!));
}

// One Inference per outermost query: nested queries (a shape needing a reshape target needing a shape...)
// share its memo tables, so a sub-chain shared by many values is walked once.
let active: Inference | undefined;

function query<T>(refine: boolean, f: (inf: Inference) => T): T {
  if (active !== undefined && active.refine === refine) return f(active);
  const outer = active;
  active = new Inference(refine);
  try {
    return f(active);
  } finally {
    active = outer;
  }
}

/** The shape of `v`: declared, else inferred from its producers ('?' for unknown dims). */
export function inferShape(v: Value | undefined): readonly Dim[] | undefined {
  return query(false, (inf) => inf.shape(v));
}

/** The shape of `v` as far as the graph fixes it: declared symbolic dims also take the numbers producers fix. */
export function shapeOf(v: Value | undefined): Dim[] | undefined {
  return query(true, (inf) => inf.shape(v));
}

/** The rank of `v`, or undefined when not even that is known. */
export function inferRank(v: Value | undefined): number | undefined {
  return inferShape(v)?.length;
}

/** Static dimension `axis` of `v` (negative counts from the end), or undefined. */
export function staticDim(v: Value | undefined, axis: number): number | undefined {
  const s = shapeOf(v);
  const d = s?.[axis < 0 ? axis + s.length : axis];
  return typeof d === 'number' ? d : undefined;
}

/** The element type of `v`: declared, else inferred from its producers. */
export function inferDtype(v: Value | undefined): DType | undefined {
  return query(false, (inf) => inf.dtype(v));
}

/** Every element of a small value the graph computes from constants and static shapes, or undefined. */
export function staticNumbers(v: Value | undefined): Float64Array | undefined {
  return query(true, (inf) => inf.numbers(v));
}

/** A static value holding one number, or undefined. */
export function staticScalar(v: Value | undefined): number | undefined {
  const xs = staticNumbers(v);
  return xs !== undefined && xs.length === 1 ? xs[0] : undefined;
}

/** A small int vector fixed before run time (constants, Shape of a static shape, Concat of those). */
export function staticInts(v: Value | undefined): number[] | undefined {
  return query(false, (inf) => inf.ints(v));
}
