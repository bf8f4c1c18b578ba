// What the graph fixes before any input arrives: shapes of values (from their types, else inferred through
// the few ops attention chains use) and small constant vectors computed from shapes (Shape, Concat, Gather,
// Cast, Sqrt, Div...), as exporters spell `1 / sqrt(head_size)` or a reshape target. Reading never mutates.

import { type Dim, type Node, ONNX_DOMAIN, type Value } from '@attnopt/ir';
import { constantNumbers } from '@attnopt/rewrite';

const MAX_DEPTH = 48;

const intAttr = (n: Node, name: string): number | undefined => {
  const a = n.attrs.get(name);
  return a?.type === 'int' ? Number(a.value) : undefined;
};
const intsAttr = (n: Node, name: string): number[] | undefined => {
  const a = n.attrs.get(name);
  return a?.type === 'ints' ? a.value.map(Number) : undefined;
};

function broadcast(a: readonly Dim[], b: readonly Dim[]): Dim[] | undefined {
  const r = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let k = 0; k < r; k++) {
    const x = a[a.length - r + k] ?? 1;
    const y = b[b.length - r + k] ?? 1;
    if (x === 1) out.push(y);
    else if (y === 1 || x === y) out.push(x);
    else if (typeof x === 'number' && typeof y === 'number') return undefined;
    else out.push(typeof x === 'number' ? x : y);
  }
  return out;
}

function inferShape(v: Value, depth: number): Dim[] | undefined {
  const n = v.producer;
  if (!n || n.domain !== ONNX_DOMAIN || depth > MAX_DEPTH || v.outputIndex !== 0) return undefined;
  const sh = (k: number) => shapeAt(n.inputs[k], depth + 1);
  switch (n.op) {
    case 'Identity': case 'Cast': case 'CastLike': case 'Softmax': case 'Tanh': case 'Sqrt': case 'Dropout': case 'Not': case 'Neg': case 'Trilu': case 'Erf': case 'Relu':
    case 'Reciprocal': case 'Exp': case 'Sigmoid': case 'LogSoftmax': case 'IsInf': case 'IsNaN':
    case 'LayerNormalization': case 'Gelu': case 'Abs': case 'Log': case 'Softplus': case 'Elu':
      return sh(0);
    case 'ReduceMean': case 'ReduceSum': case 'ReduceMax': case 'ReduceMin': case 'ReduceProd': case 'ReduceL2': {
      const x = sh(0);
      if (!x) return undefined;
      const axes = intsAttr(n, 'axes') ?? (n.inputs[1] ? staticNumbers(n.inputs[1], depth + 1) : Float64Array.from(x, (_, k) => k));
      if (!axes) return undefined;
      const norm = [...axes].map((a) => (a < 0 ? a + x.length : a));
      return intAttr(n, 'keepdims') === 0 ? x.filter((_, k) => !norm.includes(k)) : x.map((d, k) => (norm.includes(k) ? 1 : d));
    }
    case 'Gemm': {
      const [a, b] = [sh(0), sh(1)];
      if (!a || !b || a.length !== 2 || b.length !== 2) return undefined;
      return [a[intAttr(n, 'transA') === 1 ? 1 : 0]!, b[intAttr(n, 'transB') === 1 ? 0 : 1]!];
    }
    case 'Constant': {
      const t = n.attrs.get('value');
      return t?.type === 'tensor' ? [...t.value.shape] : undefined;
    }
    case 'Shape': {
      // a 1-D vector: its length is the (clamped) slice of the input's rank
      const r = sh(0)?.length;
      if (r === undefined) return ['?'];
      const clamp = (x: number) => Math.min(Math.max(x < 0 ? x + r : x, 0), r);
      return [Math.max(0, clamp(intAttr(n, 'end') ?? r) - clamp(intAttr(n, 'start') ?? 0))];
    }
    case 'Gather': {
      // data[:axis] + indices + data[axis+1:]
      const data = sh(0);
      const idx = sh(1);
      if (!data || !idx) return undefined;
      const a0 = intAttr(n, 'axis') ?? 0;
      const axis = a0 < 0 ? a0 + data.length : a0;
      return [...data.slice(0, axis), ...idx, ...data.slice(axis + 1)];
    }
    case 'ConstantOfShape': {
      const dims = staticNumbers(n.inputs[0], depth + 1);
      if (dims) return [...dims];
      const len = sh(0);
      return len && len.length === 1 && typeof len[0] === 'number' ? Array.from({ length: len[0] }, (): Dim => '?') : undefined;
    }
    case 'Slice': {
      // the rank stays; a sliced axis keeps its size only when the slice provably takes all of it
      const x = sh(0);
      if (!x) return undefined;
      const axes = n.inputs[3] ? staticNumbers(n.inputs[3], depth + 1) : Float64Array.from(x, (_, k) => k);
      if (!axes) return x.map((): Dim => '?');
      const starts = staticNumbers(n.inputs[1], depth + 1);
      const ends = staticNumbers(n.inputs[2], depth + 1);
      const steps = n.inputs[4] ? staticNumbers(n.inputs[4], depth + 1) : undefined;
      const out = [...x];
      [...axes].forEach((a, j) => {
        const ax = a < 0 ? a + x.length : a;
        const d = x[ax];
        const [s, e, st] = [starts?.[j], ends?.[j], steps?.[j] ?? 1];
        if (typeof d === 'number' && s !== undefined && e !== undefined && st > 0) {
          const lo = Math.min(Math.max(s < 0 ? s + d : s, 0), d);
          const hi = Math.min(Math.max(e < 0 ? e + d : e, 0), d);
          out[ax] = Math.max(0, Math.ceil((hi - lo) / st));
        } else out[ax] = '?';
      });
      return out;
    }
    case 'Transpose': {
      const x = sh(0);
      if (!x) return undefined;
      const perm = intsAttr(n, 'perm') ?? x.map((_, k) => x.length - 1 - k);
      return perm.map((p) => x[p]!);
    }
    case 'Add': case 'Sub': case 'Mul': case 'Div': case 'Pow': case 'Equal': case 'Less': case 'Greater': case 'LessOrEqual': case 'GreaterOrEqual': case 'And': case 'Or': case 'Xor': case 'Mod': case 'Max': case 'Min': {
      const a = sh(0);
      const b = sh(1);
      return a && b ? broadcast(a, b) : undefined;
    }
    case 'Where': {
      const [c, a, b] = [sh(0), sh(1), sh(2)];
      const ab = a && b ? broadcast(a, b) : undefined;
      return ab && c ? broadcast(ab, c) : undefined;
    }
    case 'MatMul': {
      const a = sh(0);
      const b = sh(1);
      if (!a || !b || a.length < 2 || b.length < 2) return undefined;
      const batch = broadcast(a.slice(0, -2), b.slice(0, -2));
      return batch ? [...batch, a[a.length - 2]!, b[b.length - 1]!] : undefined;
    }
    case 'Reshape': {
      const castIn = onnxOp1(n.inputs[1], 'Cast')?.inputs[0];
      const cat = onnxOp1(n.inputs[1], 'Concat') ?? onnxOp1(castIn, 'Concat');
      const target = staticNumbers(n.inputs[1], depth + 1) ??
        (cat ? concatDims(cat, depth) : undefined);
      if (!target) {
        // the target's length is the output rank even when its entries are only known at run time
        const len = shapeAt(n.inputs[1], depth + 1);
        return len && len.length === 1 && typeof len[0] === 'number' ? Array.from({ length: len[0] }, (): Dim => '?') : undefined;
      }
      const x = sh(0);
      const out: Dim[] = [...target].map((d, k): Dim => Number.isNaN(d) ? '?' : (d === 0 && intAttr(n, 'allowzero') !== 1 ? (x?.[k] ?? '?') : d));
      const minus = out.indexOf(-1);
      if (minus >= 0) {
        const known = out.filter((d, k) => k !== minus);
        if (!x || !x.every((d) => typeof d === 'number') || !known.every((d) => typeof d === 'number')) {
          out[minus] = '?';
        } else {
          const total = (x as number[]).reduce((p, q) => p * q, 1);
          const rest = (known as number[]).reduce((p, q) => p * q, 1);
          out[minus] = rest === 0 ? 0 : total / rest;
        }
      }
      return out;
    }
    case 'Squeeze': {
      const x = sh(0);
      const axes = intsAttr(n, 'axes') ?? (n.inputs[1] ? staticNumbers(n.inputs[1], depth + 1) : undefined);
      if (!x) return undefined;
      if (!axes) return x.every((d) => typeof d === 'number') ? x.filter((d) => d !== 1) : undefined;
      const norm = [...axes].map((a) => (a < 0 ? a + x.length : a));
      return x.filter((_, k) => !norm.includes(k));
    }
    case 'Unsqueeze': {
      const x = sh(0);
      const axes = intsAttr(n, 'axes') ?? staticNumbers(n.inputs[1], depth + 1);
      if (!x || !axes) return undefined;
      const r = x.length + axes.length;
      const norm = axes.map((a) => (a < 0 ? a + r : a));
      const out: Dim[] = [];
      let k = 0;
      for (let i = 0; i < r; i++) out.push(norm.includes(i) ? 1 : x[k++]!);
      return out;
    }
    case 'Expand': {
      const x = sh(0);
      const target = staticNumbers(n.inputs[1], depth + 1);
      if (x && target) return broadcast(x, [...target]);
      const len = shapeAt(n.inputs[1], depth + 1);
      if (!x || !len || len.length !== 1 || typeof len[0] !== 'number') return undefined;
      // rank max(rank x, length of the target); dims where x is not 1 stay (Expand never shrinks them)
      const r = Math.max(x.length, len[0]);
      return Array.from({ length: r }, (_, k): Dim => {
        const d = x[x.length - r + k];
        return d === undefined || d === 1 ? '?' : d;
      });
    }
    case 'Concat': {
      const parts = n.inputs.map((_, k) => sh(k));
      const axis0 = intAttr(n, 'axis') ?? 0;
      if (parts.some((p) => !p) || parts.length === 0) return undefined;
      const first = parts[0]!;
      const axis = axis0 < 0 ? axis0 + first.length : axis0;
      const out = [...first];
      for (const p of parts.slice(1)) {
        const a = out[axis]!;
        const b = p![axis]!;
        out[axis] = typeof a === 'number' && typeof b === 'number' ? a + b : '?';
      }
      return out;
    }
    default:
      return undefined;
  }
}

const onnxOp1 = (v: Value | undefined, op: string): Node | undefined =>
  v?.producer && v.producer.domain === ONNX_DOMAIN && v.producer.op === op ? v.producer : undefined;

/** A reshape target built by Concat of one-element parts: static parts as numbers, others unknown (NaN). */
function concatDims(cat: Node, depth: number): Float64Array | undefined {
  const dims: number[] = [];
  for (const part of cat.inputs) {
    const st = staticNumbers(part, depth + 1);
    if (st) dims.push(...st);
    else {
      const ps = shapeAt(part, depth + 1);
      if (!ps || ps.length > 1 || (ps.length === 1 && ps[0] !== 1)) return undefined;
      dims.push(NaN);
    }
  }
  return Float64Array.from(dims);
}

// Memo tables for one outermost query (shared sub-chains would otherwise be walked exponentially often in
// big graphs); dropped when the outermost query returns, so graph edits never see stale entries.
let active = 0;
let shapeMemo = new Map<Value, Dim[] | undefined>();
let numbersMemo = new Map<Value, Float64Array | undefined>();

function memoized<T>(memo: () => Map<Value, T>, v: Value, compute: () => T): T {
  const m = memo();
  if (m.has(v)) return m.get(v)!;
  active++;
  try {
    const r = compute();
    m.set(v, r);
    return r;
  } finally {
    if (--active === 0) {
      shapeMemo = new Map();
      numbersMemo = new Map();
    }
  }
}

function shapeAt(v: Value | undefined, depth: number): Dim[] | undefined {
  if (v === undefined) return undefined;
  const r = memoized(() => shapeMemo, v, () => shapeAtUncached(v, depth));
  return r && [...r];
}

function shapeAtUncached(v: Value, depth: number): Dim[] | undefined {
  const declared = v.type?.kind === 'tensor' ? v.type.shape : undefined;
  const init = v.initializer?.shape;
  if (init) return [...init];
  if (declared && declared.every((d) => typeof d === 'number')) return [...declared];
  const inferred = inferShape(v, depth);
  if (!declared) return inferred;
  if (!inferred || inferred.length !== declared.length) return [...declared];
  return declared.map((d, k) => (typeof d === 'number' ? d : typeof inferred[k] === 'number' ? inferred[k]! : d));
}

/** The shape of `v` as far as the graph fixes it (rank known; dims numbers where static), or undefined. */
export function shapeOf(v: Value | undefined): Dim[] | undefined {
  return shapeAt(v, 0);
}

/** Static dimension `axis` of `v` (negative counts from the end), or undefined. */
export function staticDim(v: Value | undefined, axis: number): number | undefined {
  const s = shapeOf(v);
  if (!s) return undefined;
  const d = s[axis < 0 ? axis + s.length : axis];
  return typeof d === 'number' ? d : undefined;
}

function elementwise(a: Float64Array, b: Float64Array, f: (x: number, y: number) => number): Float64Array | undefined {
  if (a.length !== b.length && a.length !== 1 && b.length !== 1) return undefined;
  const n = Math.max(a.length, b.length);
  return Float64Array.from({ length: n }, (_, k) => f(a[a.length === 1 ? 0 : k]!, b[b.length === 1 ? 0 : k]!));
}

/** Every element of a small value the graph computes from constants and static shapes, or undefined. */
export function staticNumbers(v: Value | undefined, depth = 0): Float64Array | undefined {
  if (v === undefined || depth > MAX_DEPTH) return undefined;
  return memoized(() => numbersMemo, v, () => staticNumbersUncached(v, depth));
}

function staticNumbersUncached(v: Value, depth: number): Float64Array | undefined {
  const c = constantNumbers(v);
  if (c) return c;
  const n = v.producer;
  if (!n || n.domain !== ONNX_DOMAIN || v.outputIndex !== 0) return undefined;
  const at = (k: number) => staticNumbers(n.inputs[k], depth + 1);
  switch (n.op) {
    case 'Identity': case 'Squeeze': case 'Unsqueeze': case 'Reshape': case 'CastLike':
      return at(0);
    case 'Cast': {
      const x = at(0);
      const to = intAttr(n, 'to');
      // float32 (1) rounds; integer targets truncate; other targets are kept as float64 values
      if (!x) return undefined;
      if (to === 1) return x.map(Math.fround);
      if (to !== undefined && [2, 3, 4, 5, 6, 7, 12, 13].includes(to)) return x.map(Math.trunc);
      return x;
    }
    case 'Sqrt': return at(0)?.map(Math.sqrt);
    case 'Reciprocal': return at(0)?.map((x) => 1 / x);
    case 'Neg': return at(0)?.map((x) => -x);
    case 'Add': case 'Sub': case 'Mul': case 'Div': case 'Pow': {
      const a = at(0);
      const b = at(1);
      if (!a || !b) return undefined;
      // integer Div truncates (PyTorch's shape arithmetic: (3E + 2) / 3)
      const div = isIntegral(n.inputs[0], depth) && isIntegral(n.inputs[1], depth) ? (x: number, y: number) => Math.trunc(x / y) : (x: number, y: number) => x / y;
      const f = { Add: (x: number, y: number) => x + y, Sub: (x: number, y: number) => x - y, Mul: (x: number, y: number) => x * y, Div: div, Pow: (x: number, y: number) => x ** y }[n.op]!;
      return elementwise(a, b, f);
    }
    case 'Shape': {
      const s = shapeOf(n.inputs[0]);
      if (!s) return undefined;
      const clamp = (x: number) => Math.min(Math.max(x < 0 ? x + s.length : x, 0), s.length);
      const part = s.slice(clamp(intAttr(n, 'start') ?? 0), clamp(intAttr(n, 'end') ?? s.length));
      return part.every((d) => typeof d === 'number') ? Float64Array.from(part as number[]) : undefined;
    }
    case 'Concat': {
      const parts = n.inputs.map((_, k) => at(k));
      if (parts.some((p) => !p)) return undefined;
      return Float64Array.from(parts.flatMap((p) => [...p!]));
    }
    case 'Equal': case 'Mod': case 'And': {
      const a = at(0);
      const b = at(1);
      if (!a || !b) return undefined;
      const f = { Equal: (x: number, y: number) => Number(x === y), Mod: (x: number, y: number) => x % y, And: (x: number, y: number) => Number(x !== 0 && y !== 0) }[n.op]!;
      return elementwise(a, b, f);
    }
    case 'Not': return at(0)?.map((x) => Number(x === 0));
    case 'Where': {
      const c = at(0);
      const a = at(1);
      const b = at(2);
      if (!c || !a || !b || c.length !== 1) return undefined;
      return c[0] ? a : b;
    }
    case 'Gather': {
      const idx = at(1);
      if (!idx || (intAttr(n, 'axis') ?? 0) !== 0) return undefined;
      const data = at(0) ?? shapeEntries(n.inputs[0], depth + 1);
      if (!data) return undefined;
      const out = [...idx].map((i) => data[i < 0 ? i + data.length : i]);
      return out.every((x) => x !== undefined && !Number.isNaN(x)) ? Float64Array.from(out as number[]) : undefined;
    }
    default:
      return undefined;
  }
}

const INTEGRAL = new Set(['i8', 'i16', 'i32', 'i64', 'u8', 'u16', 'u32', 'u64']);

/** Whether a value holds integers: its type, its constant's dtype, or a Shape-arithmetic producer. */
function isIntegral(v: Value | undefined, depth: number): boolean {
  if (v === undefined || depth > MAX_DEPTH) return false;
  if (v.type?.kind === 'tensor') return INTEGRAL.has(v.type.dtype);
  if (v.initializer) return INTEGRAL.has(v.initializer.dtype);
  const n = v.producer;
  if (!n || n.domain !== ONNX_DOMAIN) return false;
  if (n.op === 'Constant') {
    const t = n.attrs.get('value');
    return t?.type === 'tensor' && INTEGRAL.has(t.value.dtype);
  }
  if (n.op === 'Shape' || n.op === 'Size') return true;
  if (n.op === 'Cast') {
    const to = intAttr(n, 'to');
    return to !== undefined && [2, 3, 4, 5, 6, 7, 12, 13].includes(to);
  }
  if (['Gather', 'Unsqueeze', 'Squeeze', 'Concat', 'Identity', 'Reshape', 'Add', 'Sub', 'Mul', 'Div', 'Neg', 'Slice'].includes(n.op)) return isIntegral(n.inputs[0], depth + 1);
  return false;
}

/** The entries of Shape(x) with unknown dims as NaN (Gather reads the static ones), or undefined. */
function shapeEntries(v: Value | undefined, depth: number): Float64Array | undefined {
  const n = v?.producer;
  if (!n || n.domain !== ONNX_DOMAIN || n.op !== 'Shape' || depth > MAX_DEPTH) return undefined;
  const s = shapeAt(n.inputs[0], depth + 1);
  if (!s) return undefined;
  const clamp = (x: number) => Math.min(Math.max(x < 0 ? x + s.length : x, 0), s.length);
  const part = s.slice(clamp(intAttr(n, 'start') ?? 0), clamp(intAttr(n, 'end') ?? s.length));
  return Float64Array.from(part, (d) => (typeof d === 'number' ? d : NaN));
}

/** A static value holding one number, or undefined. */
export function staticScalar(v: Value | undefined): number | undefined {
  const xs = staticNumbers(v);
  return xs !== undefined && xs.length === 1 ? xs[0] : undefined;
}
