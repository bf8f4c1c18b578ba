// attnopt::Attention through the generated CPU kernels (compileAttention): Y in the layout of Q, and the
// present key/value ([batch, kvNumHeads, past + new, headDim], past K/V followed by the new keys). The
// optional scores output, low-rank specs and data-dependent specs (top-k blocks, LSH: their key sets are selected
// from Q and K, which these kernels do not do), guarded or not, are refused at plan time.
// A guarded site (params.guard) runs the guarded kernel: the sparse spec, the certificate per query row, and the
// rows whose bound exceeds the budget (or that keep no key but drop one) recomputed over the baseline, all decided
// in the kernel; each call's fallback goes to ctx.onGuard.

import { type AttentionParams, AttentionOutput, attentionParams, isDataDependent, isLowRank, type MaskSpec, type Node, printSpec } from '@attnopt/ir';
import { compileAttention, type CpuAttentionInputs, type CpuAttentionKernel, type CpuBoolTensor, type CpuKernelOptions, type CpuTensor } from '@attnopt/backend-cpu';
import { input, type OpContext, type OpKernel, type OpTable } from '../kernel.js';
import { type ExecTensor, fromFloats, intValues, isFloat, numberData, shapeString } from '../tensor.js';
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
    if (isDataDependent(p.spec)) {
      return `data-dependent spec ${printSpec(p.spec)}${p.guard ? ' (guarded)' : ''} is not supported by the executor: its kernels do not select key sets from Q and K (the ONNX lowering does)`;
    }
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
    let y: Float32Array;
    if (p.guard === undefined) {
      y = ctx.pool ? await kernel.runParallel(inputs, ctx.pool) : kernel.run(inputs);
    } else {
      const r = ctx.pool ? await kernel.runGuardedParallel(inputs, ctx.pool) : kernel.runGuarded(inputs);
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
    const want = (i: number) => ctx.node.outputs.length > i && isRead(ctx.node, i);
    if (want(AttentionOutput.presentKey)) outs[1] = present(p, q, k, pastKey, p.headDim, H * p.headDim);
    if (want(AttentionOutput.presentValue)) outs[2] = present(p, q, v, pastValue, dv, (H + p.kvNumHeads) * p.headDim);
    return outs;
  },
};

function largest(xs: Float32Array): number {
  let m = 0;
  for (const x of xs) if (x > m) m = x;
  return m;
}

export const ATTENTION_OPS: OpTable = { 'attnopt::Attention': attention };
