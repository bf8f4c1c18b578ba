// Data movement: Transpose, Gather (negative indices wrap), GatherElements, Concat, Slice (opset 10+:
// starts/ends/axes/steps inputs, clamped as ONNX says; before: attributes), Split (sizes from the input,
// the attribute before opset 13, or equal parts; num_outputs from 18), Trilu, Tile.

import { elementCount } from '@attnopt/ir';
import { attrInt, attrInts } from '../attrs.js';
import { normalizeAxis, stridesOf } from '../broadcast.js';
import { input, type OpContext, type OpKernel, type OpTable } from '../kernel.js';
import { allocTensor, type ExecTensor, intValues, shapeString, toNumbers } from '../tensor.js';

type Elements = ArrayLike<number | bigint>;
type Writable = { [k: number]: number | bigint };

export function transpose(x: ExecTensor, perm: readonly number[]): ExecTensor {
  const r = x.shape.length;
  if (perm.length !== r || [...perm].sort((a, b) => a - b).some((p, k) => p !== k)) throw new Error(`perm [${perm.join(', ')}] is not a permutation of rank ${r}`);
  const shape = perm.map((p) => x.shape[p]!);
  const inStrides = stridesOf(x.shape);
  const st = perm.map((p) => inStrides[p]!);
  const out = allocTensor(x.dtype, shape);
  const s = x.data as Elements;
  const o = out.data as Writable;
  const n = out.data.length;
  const counter = new Array<number>(r).fill(0);
  let at = 0;
  for (let k = 0; k < n; k++) {
    o[k] = s[at]!;
    for (let a = r - 1; a >= 0; a--) {
      counter[a]!++;
      at += st[a]!;
      if (counter[a]! < shape[a]!) break;
      at -= st[a]! * counter[a]!;
      counter[a] = 0;
    }
  }
  return out;
}

const gather: OpKernel = {
  minInputs: 2,
  run: (ctx) => {
    const x = input(ctx, 0);
    const indices = input(ctx, 1);
    const axis = normalizeAxis(attrInt(ctx.node, 'axis', 0), x.shape.length);
    const dim = x.shape[axis]!;
    const outer = elementCount(x.shape.slice(0, axis));
    const inner = elementCount(x.shape.slice(axis + 1));
    const idx = intValues(indices).map((i) => {
      if (i < -dim || i >= dim) throw new Error(`index ${i} is out of range for axis ${axis} of size ${dim}`);
      return i < 0 ? i + dim : i;
    });
    const shape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
    const out = allocTensor(x.dtype, shape);
    const s = x.data as Elements;
    const o = out.data as Writable;
    let w = 0;
    for (let a = 0; a < outer; a++) {
      for (const i of idx) {
        const base = (a * dim + i) * inner;
        for (let c = 0; c < inner; c++) o[w++] = s[base + c]!;
      }
    }
    return [out];
  },
};

const gatherElements: OpKernel = {
  minInputs: 2,
  run: (ctx) => {
    const x = input(ctx, 0);
    const indices = input(ctx, 1);
    const r = x.shape.length;
    const axis = normalizeAxis(attrInt(ctx.node, 'axis', 0), r);
    if (indices.shape.length !== r) throw new Error(`indices ${shapeString(indices.shape)} must have the rank of data ${shapeString(x.shape)}`);
    const xs = stridesOf(x.shape);
    const is = stridesOf(indices.shape);
    const idx = intValues(indices);
    const out = allocTensor(x.dtype, indices.shape);
    const s = x.data as Elements;
    const o = out.data as Writable;
    const dim = x.shape[axis]!;
    for (let k = 0; k < idx.length; k++) {
      let rest = k;
      let at = 0;
      for (let a = 0; a < r; a++) {
        const c = Math.floor(rest / is[a]!);
        rest -= c * is[a]!;
        let j = a === axis ? idx[k]! : c;
        if (a === axis) {
          if (j < -dim || j >= dim) throw new Error(`index ${j} is out of range for axis ${axis} of size ${dim}`);
          if (j < 0) j += dim;
        }
        at += j * xs[a]!;
      }
      o[k] = s[at]!;
    }
    return [out];
  },
};

export function concat(xs: readonly ExecTensor[], axisAttr: number): ExecTensor {
  const first = xs[0]!;
  const r = first.shape.length;
  const axis = normalizeAxis(axisAttr, r);
  for (const x of xs) {
    if (x.dtype !== first.dtype) throw new Error(`inputs have different dtypes ${first.dtype} and ${x.dtype}`);
    if (x.shape.length !== r || x.shape.some((d, k) => k !== axis && d !== first.shape[k])) {
      throw new Error(`cannot concatenate ${xs.map((t) => shapeString(t.shape)).join(', ')} on axis ${axis}`);
    }
  }
  const shape = [...first.shape];
  shape[axis] = xs.reduce((s, x) => s + x.shape[axis]!, 0);
  const outer = elementCount(first.shape.slice(0, axis));
  const inner = elementCount(first.shape.slice(axis + 1));
  const out = allocTensor(first.dtype, shape);
  const o = out.data as Writable;
  let w = 0;
  for (let a = 0; a < outer; a++) {
    for (const x of xs) {
      const len = x.shape[axis]! * inner;
      const s = x.data as Elements;
      for (let c = 0; c < len; c++) o[w++] = s[a * len + c]!;
    }
  }
  return out;
}

/** Copies the box starts[a] + k * steps[a] (k < sizes[a]) of x. */
function strided(x: ExecTensor, starts: readonly number[], steps: readonly number[], sizes: readonly number[]): ExecTensor {
  const r = x.shape.length;
  const xs = stridesOf(x.shape);
  const out = allocTensor(x.dtype, sizes);
  const s = x.data as Elements;
  const o = out.data as Writable;
  const n = elementCount(sizes);
  if (n === 0) return out;
  const st = steps.map((p, a) => p * xs[a]!);
  const counter = new Array<number>(r).fill(0);
  let at = starts.reduce((acc, p, a) => acc + p * xs[a]!, 0);
  for (let k = 0; k < n; k++) {
    o[k] = s[at]!;
    for (let a = r - 1; a >= 0; a--) {
      counter[a]!++;
      at += st[a]!;
      if (counter[a]! < sizes[a]!) break;
      at -= st[a]! * counter[a]!;
      counter[a] = 0;
    }
  }
  return out;
}

export function slice(x: ExecTensor, startsIn: readonly number[], endsIn: readonly number[], axesIn?: readonly number[], stepsIn?: readonly number[]): ExecTensor {
  const r = x.shape.length;
  const axes = axesIn ?? startsIn.map((_, k) => k);
  if (endsIn.length !== startsIn.length || axes.length !== startsIn.length || (stepsIn && stepsIn.length !== startsIn.length)) {
    throw new Error(`starts, ends, axes and steps must have one length, got ${startsIn.length}, ${endsIn.length}, ${axes.length}, ${stepsIn?.length ?? '-'}`);
  }
  const starts = new Array<number>(r).fill(0);
  const steps = new Array<number>(r).fill(1);
  const sizes = [...x.shape];
  const seen = new Set<number>();
  axes.forEach((a0, k) => {
    const a = normalizeAxis(a0, r);
    if (seen.has(a)) throw new Error(`axis ${a} repeats`);
    seen.add(a);
    const dim = x.shape[a]!;
    const step = stepsIn?.[k] ?? 1;
    if (step === 0) throw new Error('step 0');
    let start = startsIn[k]!;
    let end = endsIn[k]!;
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    if (step > 0) {
      start = Math.min(Math.max(start, 0), dim);
      end = Math.min(Math.max(end, 0), dim);
    } else {
      start = Math.min(Math.max(start, 0), dim - 1);
      end = Math.min(Math.max(end, -1), dim - 1);
    }
    starts[a] = start;
    steps[a] = step;
    sizes[a] = Math.max(0, Math.ceil((end - start) / step));
  });
  return strided(x, starts, steps, sizes);
}

const sliceOp: OpKernel = {
  minInputs: 1,
  run: (ctx) => {
    const x = input(ctx, 0);
    if (ctx.opset < 10) {
      const starts = attrInts(ctx.node, 'starts');
      const ends = attrInts(ctx.node, 'ends');
      if (!starts || !ends) throw new Error('Slice needs starts and ends');
      return [slice(x, starts, ends, attrInts(ctx.node, 'axes'))];
    }
    const list = (k: number) => (ctx.inputs[k] ? intValues(ctx.inputs[k]) : undefined);
    return [slice(x, intValues(input(ctx, 1)), intValues(input(ctx, 2)), list(3), list(4))];
  },
};

const split: OpKernel = {
  minInputs: 1,
  run: (ctx: OpContext) => {
    const x = input(ctx, 0);
    const axis = normalizeAxis(attrInt(ctx.node, 'axis', 0), x.shape.length);
    const dim = x.shape[axis]!;
    const count = ctx.node.outputs.length;
    let sizes = ctx.opset < 13 ? attrInts(ctx.node, 'split') : ctx.inputs[1] ? intValues(ctx.inputs[1]) : undefined;
    if (!sizes) {
      const parts = attrInt(ctx.node, 'num_outputs') ?? count;
      const each = Math.ceil(dim / parts);
      sizes = Array.from({ length: parts }, (_, k) => Math.max(0, Math.min(each, dim - k * each)));
      if (attrInt(ctx.node, 'num_outputs') === undefined && dim % parts !== 0) throw new Error(`axis ${axis} of size ${dim} does not split into ${parts} equal parts`);
    }
    if (sizes.length !== count) throw new Error(`${sizes.length} split sizes for ${count} outputs`);
    if (sizes.reduce((a, b) => a + b, 0) !== dim) throw new Error(`split sizes [${sizes.join(', ')}] do not sum to ${dim}`);
    let at = 0;
    return sizes.map((size) => {
      const starts = x.shape.map((_, a) => (a === axis ? at : 0));
      const shape = x.shape.map((d, a) => (a === axis ? size : d));
      at += size;
      return strided(x, starts, x.shape.map(() => 1), shape);
    });
  },
};

/** Trilu(x, k?): keeps j - i >= k (upper) or j - i <= k (lower) in the last two dims, zeros the rest. */
const trilu: OpKernel = {
  minInputs: 1,
  run: (ctx) => {
    const x = input(ctx, 0);
    if (x.shape.length < 2) throw new Error(`input must have rank >= 2, got ${shapeString(x.shape)}`);
    const k = ctx.inputs[1] ? toNumbers(ctx.inputs[1])[0]! : 0;
    const upper = attrInt(ctx.node, 'upper', 1) !== 0;
    const [R, C] = x.shape.slice(-2) as [number, number];
    const out = allocTensor(x.dtype, x.shape);
    const s = x.data as Elements;
    const o = out.data as Writable;
    const n = s.length;
    for (let e = 0; e < n; e++) {
      const j = e % C;
      const i = Math.floor(e / C) % R;
      if (upper ? j - i >= k : j - i <= k) o[e] = s[e]!;
    }
    return [out];
  },
};

const tile: OpKernel = {
  minInputs: 2,
  run: (ctx) => {
    const x = input(ctx, 0);
    const reps = intValues(input(ctx, 1));
    if (reps.length !== x.shape.length) throw new Error(`repeats [${reps.join(', ')}] must have one entry per axis of ${shapeString(x.shape)}`);
    const shape = x.shape.map((d, a) => d * reps[a]!);
    const xs = stridesOf(x.shape);
    const out = allocTensor(x.dtype, shape);
    const s = x.data as Elements;
    const o = out.data as Writable;
    const os = stridesOf(shape);
    const n = elementCount(shape);
    for (let k = 0; k < n; k++) {
      let at = 0;
      for (let a = 0; a < shape.length; a++) at += (Math.floor(k / os[a]!) % shape[a]! % x.shape[a]!) * xs[a]!;
      o[k] = s[at]!;
    }
    return [out];
  },
};

export const LAYOUT_OPS: OpTable = {
  '::Transpose': {
    minInputs: 1,
    run: (ctx) => {
      const x = input(ctx, 0);
      return [transpose(x, attrInts(ctx.node, 'perm') ?? x.shape.map((_, k) => x.shape.length - 1 - k))];
    },
  },
  '::Gather': gather,
  '::GatherElements': gatherElements,
  '::Concat': {
    minInputs: 1,
    run: (ctx) => {
      const xs = ctx.inputs.map((t, k) => t ?? input(ctx, k));
      const axis = attrInt(ctx.node, 'axis');
      if (axis === undefined) throw new Error('Concat needs an axis');
      return [concat(xs, axis)];
    },
  },
  '::Slice': sliceOp,
  '::Split': split,
  '::Trilu': trilu,
  '::Tile': tile,
};
