// attnopt::Attention through the generated CPU kernels (compileAttention): Y in the layout of Q, and the
// present key/value ([batch, kvNumHeads, past + new, headDim], past K/V followed by the new keys). A data-dependent
// spec (top-k blocks, LSH) has its key sets selected here, per (batch, query head), from Q and the present K by
// @attnopt/ir's rules (the same ones the ONNX lowering and the other backends follow), and handed to the kernel as
// its resolver. The optional scores output and low-rank specs are refused at plan time.
// A guarded site (params.guard) runs the guarded kernel: the sparse spec, the certificate per query row, and the
// rows whose bound exceeds the budget (or that keep no key but drop one) recomputed over the baseline, all decided
// in the kernel; each call's fallback goes to ctx.onGuard.

import {
  type AttentionParams,
  AttentionOutput,
  attentionParams,
  type HeadQK,
  headLeafResolver,
  isDataDependent,
  isLowRank,
  type LeafResolver,
  type MaskSpec,
  type Node,
} from '@attnopt/ir';
import { compileAttention, type CpuAttentionInputs, type CpuAttentionKernel, type CpuBoolTensor, type CpuKernelOptions, type CpuTensor } from '@attnopt/backend-cpu';
import { input, type OpContext, type OpKernel, type OpTable } from '../kernel.js';
import { type ExecTensor, fromFloats, intValues, isFloat, numberData, shapeString, toNumbers } from '../tensor.js';
import { concat, transpose } from './layout.js';

function cpuTensor(t: ExecTensor, what: string): CpuTensor {
  if (t.dtype === 'f32' || t.dtype === 'f64' || t.dtype === 'f16') return { shape: t.shape, data: t.data as Float32Array | Float64Array | Uint16Array } as CpuTensor;
  throw new Error(`${what} must be a float tensor, got ${t.dtype}`);
}

function biasTensor(t: ExecTensor): CpuTensor | CpuBoolTensor {
  if (t.dtype === 'bool') return { shape: t.shape, data: t.data as Uint8Array };
  return cpuTensor(t, 'bias');
}

/** K or V of the new tokens as [batch, kvHeads, seq, dim]. */
function newKeysBhsd(p: AttentionParams, q: ExecTensor, x: ExecTensor | undefined, dim: number, column: number): ExecTensor {
  const KVH = p.kvNumHeads;
  switch (p.layout) {
    case 'bhsd':
      return x!;
    case 'bshd':
      return transpose(x!, [0, 2, 1, 3]);
    case 'bsd': {
      const [B, S] = x!.shape as [number, number];
      return transpose({ ...x!, shape: [B, S, KVH, dim] }, [0, 2, 1, 3]);
    }
    case 'packed-qkv': {
      const [B, S, W] = q.shape as [number, number, number];
      const cols = KVH * dim;
      const src = numberData(q);
      const picked = new Float64Array(B * S * cols);
      for (let r = 0; r < B * S; r++) for (let c = 0; c < cols; c++) picked[r * cols + c] = src[r * W + column + c]!;
      return transpose(fromFloats(q.dtype, [B, S, KVH, dim], picked), [0, 2, 1, 3]);
    }
  }
}

function present(p: AttentionParams, q: ExecTensor, fresh: ExecTensor | undefined, past: ExecTensor | undefined, dim: number, column: number): ExecTensor {
  const now = newKeysBhsd(p, q, fresh, dim, column);
  return past ? concat([past, now], 2) : now;
}

/** Whether output i of the node is read by a node or is a graph output. */
function isRead(node: Node, i: number): boolean {
  const v = node.outputs[i]!;
  return v.uses().length > 0 || (node.graph?.outputs.includes(v) ?? false);
}

/** One compiled kernel per node, params and settings; reused across runs of the same graph. */
const kernels = new WeakMap<Node, Map<string, CpuAttentionKernel>>();

function kernelFor(ctx: OpContext, p: AttentionParams): CpuAttentionKernel {
  let perNode = kernels.get(ctx.node);
  if (!perNode) kernels.set(ctx.node, (perNode = new Map()));
  const key = JSON.stringify([p, ctx.attention]);
  let k = perNode.get(key);
  if (!k) perNode.set(key, (k = compileAttention(p, kernelOptions(ctx.attention, p))));
  return k;
}

/** A guarded site's kernel options: its own budget, summary block and baseline (the keys a fallback row attends). */
function kernelOptions(settings: CpuKernelOptions, p: AttentionParams): CpuKernelOptions {
  const { guard: _settingsGuard, ...rest } = settings; // only the site's own guard applies
  if (p.guard === undefined) return rest;
  return { ...rest, guard: { epsilon: p.guard.budget, block: p.guard.blockSize, modelMask: p.guard.baseline as MaskSpec } };
}

const attention: OpKernel = {
  minInputs: 1,
  check: (node) => {
    let p: AttentionParams;
    try {
      p = attentionParams(node);
    } catch (e) {
      return (e as Error).message;
    }
    if (isLowRank(p.spec)) return `low-rank spec ${p.spec.kind} has no CPU kernel`;
    if (p.guard !== undefined && (isLowRank(p.guard.baseline) || isDataDependent(p.guard.baseline))) {
      return `guarded site: its baseline ${p.guard.baseline.kind} is not a fixed key set a falling-back row can attend`;
    }
    if (node.outputs.length > AttentionOutput.scores && isRead(node, AttentionOutput.scores)) {
      return 'the scores output is not produced by the CPU kernels';
    }
    return undefined;
  },
  run: async (ctx) => {
    const p = attentionParams(ctx.node);
    const q = input(ctx, 0);
    if (!isFloat(q.dtype)) throw new Error(`Q must be a float tensor, got ${q.dtype}`);
    const [k, v, bias, pastKey, pastValue, kvLength] = [1, 2, 3, 4, 5, 6].map((i) => ctx.inputs[i]);
    const inputs: CpuAttentionInputs = {
      q: cpuTensor(q, 'Q'),
      ...(k ? { k: cpuTensor(k, 'K') } : {}),
      ...(v ? { v: cpuTensor(v, 'V') } : {}),
      ...(bias ? { bias: biasTensor(bias) } : {}),
      ...(pastKey ? { pastKey: cpuTensor(pastKey, 'past key') } : {}),
      ...(pastValue ? { pastValue: cpuTensor(pastValue, 'past value') } : {}),
      ...(kvLength ? { kvLength: intValues(kvLength) } : {}),
    };
    const kernel = kernelFor(ctx, p);
    const want = (i: number) => ctx.node.outputs.length > i && isRead(ctx.node, i);
    // the present keys: read by data-dependent key selection and by the presentKey output, built once
    const presentK = isDataDependent(p.spec) || want(AttentionOutput.presentKey) ? present(p, q, k, pastKey, p.headDim, H0(p)) : undefined;
    const options = isDataDependent(p.spec) ? { resolver: headResolvers(p, q, presentK!) } : {};
    let y: Float32Array;
    if (p.guard === undefined) {
      y = ctx.pool ? await kernel.runParallel(inputs, ctx.pool, options) : kernel.run(inputs, options);
    } else {
      const r = ctx.pool ? await kernel.runGuardedParallel(inputs, ctx.pool, options) : kernel.runGuarded(inputs, options);
      y = r.y;
      ctx.onGuard?.({ node: ctx.node, budget: p.guard.budget, fallbackRows: r.fallbackRows, recomputedRows: r.recomputedRows, rows: r.rows, largestBound: largest(r.bounds) });
    }
    const B = q.shape[0]!;
    const nq = p.layout === 'bhsd' ? q.shape[2]! : q.shape[1]!;
    const H = p.numHeads;
    const dv = p.vHeadDim;
    const yShape = p.layout === 'bhsd' ? [B, H, nq, dv] : p.layout === 'bshd' ? [B, nq, H, dv] : [B, nq, H * dv];
    if (y.length !== yShape.reduce((a, b) => a * b, 1)) throw new Error(`kernel returned ${y.length} values for Y ${shapeString(yShape)}`);
    const outs: (ExecTensor | undefined)[] = [fromFloats(q.dtype, yShape, y)];
    if (want(AttentionOutput.presentKey)) outs[1] = presentK;
    if (want(AttentionOutput.presentValue)) outs[2] = present(p, q, v, pastValue, dv, (H + p.kvNumHeads) * p.headDim);
    return outs;
  },
};

/** The column of packed Q|K|V where K starts. */
const H0 = (p: AttentionParams) => p.numHeads * p.headDim;

/** Q as [batch, heads, seq, headDim] whatever the layout. */
function queriesBhsd(p: AttentionParams, q: ExecTensor): ExecTensor {
  const H = p.numHeads;
  const d = p.headDim;
  switch (p.layout) {
    case 'bhsd':
      return q;
    case 'bshd':
      return transpose(q, [0, 2, 1, 3]);
    case 'bsd': {
      const [B, S] = q.shape as [number, number];
      return transpose({ ...q, shape: [B, S, H, d] }, [0, 2, 1, 3]);
    }
    case 'packed-qkv': {
      const [B, S, W] = q.shape as [number, number, number];
      const src = numberData(q);
      const picked = new Float64Array(B * S * H * d);
      for (let r = 0; r < B * S; r++) for (let c = 0; c < H * d; c++) picked[r * H * d + c] = src[r * W + c]!;
      return transpose(fromFloats(q.dtype, [B, S, H, d], picked), [0, 2, 1, 3]);
    }
  }
}

/**
 * The key sets of the spec's data-dependent leaves per (batch, query head): each leaf's rows computed once per head
 * from that head's Q and its kv head's present K, in float64, by @attnopt/ir's selection rules.
 */
function headResolvers(p: AttentionParams, q: ExecTensor, presentK: ExecTensor): (b: number, h: number) => LeafResolver {
  const Q = toNumbers(queriesBhsd(p, q)); // [B, H, nq, d]
  const K = toNumbers(presentK); // [B, KVH, nk, d]
  const { numHeads: H, kvNumHeads: KVH, headDim: d } = p;
  const nq = Q.length / (q.shape[0]! * H * d);
  const nk = presentK.shape[2]!;
  // one resolver per (batch, head), built on first use: the kernel asks for it once per query block
  const resolvers = new Map<number, LeafResolver>();
  return (b, h) => {
    let r = resolvers.get(b * H + h);
    if (!r) {
      const g = Math.floor(h / (H / KVH));
      const head: HeadQK = {
        q: Q.subarray((b * H + h) * nq * d, (b * H + h + 1) * nq * d),
        k: K.subarray((b * KVH + g) * nk * d, (b * KVH + g + 1) * nk * d),
        nq,
        nk,
        d,
        scale: p.scale,
      };
      resolvers.set(b * H + h, (r = headLeafResolver(head)));
    }
    return r;
  };
}

function largest(xs: Float32Array): number {
  let m = 0;
  for (const x of xs) if (x > m) m = x;
  return m;
}

export const ATTENTION_OPS: OpTable = { 'attnopt::Attention': attention };
