// Low-rank specs as sequences of generated kernels (kernels/*), dispatched in order by the runtime.
// Batch index t = b * H + h for per-query-head operands, b * G + g for per-key/value-head ones; GQA reads
// key/value head h / group. Q, K, V in the storage dtype, every intermediate contiguous f32. Semantics:
// @attnopt/reference low-rank/*.ts (and @attnopt/ir spec/semantics for the seeded draws).
//
// Linformer:  EK = E K, FV = F V (per KV head; E, F rank x nk shared);  S = scale Q EKᵀ;  P = softmax(S);
//             Y = P FV.
// Performer:  phiQ, phiK = features(sqrt(scale) Q | K) with W (m x d);  KV = phiKᵀ V, ksum = phiKᵀ 1 (per KV
//             head);  Y = (phiQ KV) / (phiQ ksum)  (row_divide).
// Nystrom:    m = min(landmarks, nq, nk); Ql = Mq Q, Kl = Mk K (Mq, Mk the m x n segment-mean matrices);
//             F = softmax(scale Q Klᵀ), A = softmax(scale Ql Klᵀ), Bm = softmax(scale Ql Kᵀ), BV = Bm V;
//             then A is read back and its pseudo-inverse A⁺ computed ON THE HOST in float64 (@attnopt/ir's
//             pseudoInverse, the one the reference uses) and uploaded; Z = A⁺ BV; Y = F Z. Two submissions.

import { type AttentionParams, linformerEF, performerW, pseudoInverse } from '@attnopt/ir';
import type { KernelLimits, StorageDType } from './attention-program.js';
import { attentionShape, type PreparedAttention, readOutput, uploadInputs, type WgslAttentionInputs } from './attention.js';
import { matmulProgram } from './kernels/matmul.js';
import { contiguous, type Operand, operandUniforms, SEQUENCE_WORKGROUP, shared, transpose } from './kernels/operand.js';
import { performerFeaturesProgram } from './kernels/performer-features.js';
import { rowDivideProgram } from './kernels/row-divide.js';
import { softmaxRowsProgram } from './kernels/softmax-rows.js';
import type { WgslRuntime } from './runtime.js';
import { encodeSteps, type KernelStep, runSteps } from './sequence.js';

type T = 'f32' | 'f16';

/** Runs a low-rank spec: uploads, plans the kernel sequence, and returns the same handle as prepareAttention. */
export async function prepareLowRank(
  rt: WgslRuntime,
  p: AttentionParams,
  inputs: WgslAttentionInputs,
  options: { dtype: StorageDType; limits: KernelLimits },
): Promise<PreparedAttention> {
  const spec = p.spec;
  if (spec.kind !== 'nystrom' && spec.kind !== 'linformer' && spec.kind !== 'performer') throw new Error(`not a low-rank spec: ${spec.kind}`);
  if (inputs.bias !== undefined || inputs.kvLength !== undefined || p.softcap !== 0) {
    throw new Error(`WGSL attention: low-rank spec ${spec.kind} is defined for plain softmax(scale Q Kᵀ) V only: no bias, kvLength or softcap`);
  }
  if (spec.kind === 'performer' && !(p.scale >= 0)) throw new Error(`performer needs scale >= 0, got ${p.scale}`);
  const dtype = options.dtype;
  const shape = attentionShape(p, inputs);
  const owned: GPUBuffer[] = [];
  const dev = uploadInputs(rt, p, inputs, shape, dtype, owned);
  const { batch: B, nq } = shape;
  const nk = dev.nk;
  const { numHeads: H, kvNumHeads: G, headDim: d, vHeadDim: dv } = p;
  const group = H / G;
  const f32buf = (elems: number): GPUBuffer => {
    const b = rt.acquire(Math.max(4, elems * 4), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
    owned.push(b);
    return b;
  };
  const upload = (data: Float64Array | number[]): GPUBuffer => {
    const b = rt.upload(Float32Array.from(data));
    owned.push(b);
    return b;
  };
  const yElems = B * H * nq * dv;
  const y = rt.acquire(Math.max(4, yElems * (dtype === 'f16' ? 2 : 4)), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
  owned.push(y);

  // Operands of the inputs: per query head (inner H) and per KV head, seen from a query head (div = group)
  // or from a KV head (inner G).
  const perQ = (st: { base: number; sb: number; sh: number; ss: number }): Operand => ({ base: st.base, so: st.sb, si: st.sh, div: 1, sr: st.ss, sc: 1 });
  const Q = perQ(dev.qSt);
  const Yop = perQ(shape.y);
  const K = perQ(dev.kSt);
  const V = perQ(dev.vSt);
  const KfromQ = { ...K, div: group };
  const VfromQ = { ...V, div: group };
  /** A per-KV-head contiguous intermediate [B * G, rows, cols], read by query head t. */
  const kvFromQ = (rows: number, cols: number): Operand => ({ base: 0, so: G * rows * cols, si: rows * cols, div: group, sr: cols, sc: 1 });

  const mm = (
    types: { a: T; b: T; c: T },
    buf: { a: GPUBuffer; b: GPUBuffer; c: GPUBuffer },
    ops: { a: Operand; b: Operand; c: Operand },
    dims: { batch: number; inner: number; m: number; n: number; k: number; alpha?: number },
  ): KernelStep => {
    const total = dims.batch * dims.m * dims.n;
    return {
      program: matmulProgram(types),
      storage: [buf.a, buf.b, buf.c],
      uniforms: {
        total,
        m: dims.m,
        n: dims.n,
        k: dims.k,
        inner: dims.inner,
        alpha: dims.alpha ?? 1,
        ...operandUniforms('a', ops.a),
        ...operandUniforms('b', ops.b),
        ...operandUniforms('c', ops.c),
      },
      workgroups: Math.ceil(total / SEQUENCE_WORKGROUP),
    };
  };
  const softmax = (x: GPUBuffer, rows: number, n: number): KernelStep => ({
    program: softmaxRowsProgram(),
    storage: [x],
    uniforms: { total: rows, n },
    workgroups: Math.ceil(rows / SEQUENCE_WORKGROUP),
  });

  const first: KernelStep[] = [];
  let second: ((read: () => Promise<void>) => Promise<KernelStep[]>) | undefined;

  if (spec.kind === 'linformer') {
    const r = spec.rank;
    const { e, f } = linformerEF(r, spec.seed, nk);
    const E = upload(e);
    const F = upload(f);
    const ek = f32buf(B * G * r * d);
    const fv = f32buf(B * G * r * dv);
    const s = f32buf(B * H * nq * r);
    first.push(
      mm({ a: 'f32', b: dtype, c: 'f32' }, { a: E, b: dev.k, c: ek }, { a: shared(nk), b: K, c: contiguous(G, r, d) }, { batch: B * G, inner: G, m: r, n: d, k: nk }),
      mm({ a: 'f32', b: dtype, c: 'f32' }, { a: F, b: dev.v, c: fv }, { a: shared(nk), b: V, c: contiguous(G, r, dv) }, { batch: B * G, inner: G, m: r, n: dv, k: nk }),
      mm(
        { a: dtype, b: 'f32', c: 'f32' },
        { a: dev.q, b: ek, c: s },
        { a: Q, b: transpose(kvFromQ(r, d)), c: contiguous(H, nq, r) },
        { batch: B * H, inner: H, m: nq, n: r, k: d, alpha: p.scale },
      ),
      softmax(s, B * H * nq, r),
      mm({ a: 'f32', b: 'f32', c: dtype }, { a: s, b: fv, c: y }, { a: contiguous(H, nq, r), b: kvFromQ(r, dv), c: Yop }, { batch: B * H, inner: H, m: nq, n: dv, k: r }),
    );
  } else if (spec.kind === 'performer') {
    const m = spec.features;
    const W = upload(performerW(m, d, spec.seed, spec.orthogonal));
    const ones = upload(new Array<number>(nk).fill(1));
    const phiQ = f32buf(B * H * nq * m);
    const phiK = f32buf(B * G * nk * m);
    const kv = f32buf(B * G * m * dv);
    const ksum = f32buf(B * G * m);
    const num = f32buf(B * H * nq * dv);
    const den = f32buf(B * H * nq);
    const features = (x: GPUBuffer, op: Operand, batch: number, inner: number, rows: number, out: GPUBuffer): KernelStep => ({
      program: performerFeaturesProgram(dtype, d),
      storage: [x, W, out],
      uniforms: { total: batch * rows * m, rows, features: m, inner, root: Math.sqrt(p.scale), norm: 1 / Math.sqrt(m), ...operandUniforms('x', op) },
      workgroups: Math.ceil((batch * rows * m) / SEQUENCE_WORKGROUP),
    });
    first.push(
      features(dev.q, Q, B * H, H, nq, phiQ),
      features(dev.k, K, B * G, G, nk, phiK),
      mm({ a: 'f32', b: dtype, c: 'f32' }, { a: phiK, b: dev.v, c: kv }, { a: contiguous(G, nk, m, true), b: V, c: contiguous(G, m, dv) }, { batch: B * G, inner: G, m, n: dv, k: nk }),
      mm(
        { a: 'f32', b: 'f32', c: 'f32' },
        { a: phiK, b: ones, c: ksum },
        { a: contiguous(1, nk, m, true), b: { base: 0, so: 0, si: 0, div: 1, sr: 1, sc: 0 }, c: contiguous(1, m, 1) },
        { batch: B * G, inner: 1, m, n: 1, k: nk },
      ),
      mm({ a: 'f32', b: 'f32', c: 'f32' }, { a: phiQ, b: kv, c: num }, { a: contiguous(H, nq, m), b: kvFromQ(m, dv), c: contiguous(H, nq, dv) }, { batch: B * H, inner: H, m: nq, n: dv, k: m }),
      mm({ a: 'f32', b: 'f32', c: 'f32' }, { a: phiQ, b: ksum, c: den }, { a: contiguous(H, nq, m), b: kvFromQ(m, 1), c: contiguous(H, nq, 1) }, { batch: B * H, inner: H, m: nq, n: 1, k: m }),
      {
        program: rowDivideProgram(dtype),
        storage: [num, den, y],
        uniforms: { total: B * H * nq * dv, rows: nq, cols: dv, inner: H, ...operandUniforms('y', Yop) },
        workgroups: Math.ceil((B * H * nq * dv) / SEQUENCE_WORKGROUP),
      },
    );
  } else {
    const m = Math.min(spec.landmarks, nq, nk);
    const Mq = upload(segmentMeanMatrix(m, nq));
    const Mk = upload(segmentMeanMatrix(m, nk));
    const ql = f32buf(B * H * m * d);
    const kl = f32buf(B * G * m * d);
    const fm = f32buf(B * H * nq * m);
    const a = f32buf(B * H * m * m);
    const bm = f32buf(B * H * m * nk);
    const bv = f32buf(B * H * m * dv);
    const z = f32buf(B * H * m * dv);
    first.push(
      mm({ a: 'f32', b: dtype, c: 'f32' }, { a: Mq, b: dev.q, c: ql }, { a: shared(nq), b: Q, c: contiguous(H, m, d) }, { batch: B * H, inner: H, m, n: d, k: nq }),
      mm({ a: 'f32', b: dtype, c: 'f32' }, { a: Mk, b: dev.k, c: kl }, { a: shared(nk), b: K, c: contiguous(G, m, d) }, { batch: B * G, inner: G, m, n: d, k: nk }),
      mm(
        { a: dtype, b: 'f32', c: 'f32' },
        { a: dev.q, b: kl, c: fm },
        { a: Q, b: transpose(kvFromQ(m, d)), c: contiguous(H, nq, m) },
        { batch: B * H, inner: H, m: nq, n: m, k: d, alpha: p.scale },
      ),
      softmax(fm, B * H * nq, m),
      mm(
        { a: 'f32', b: 'f32', c: 'f32' },
        { a: ql, b: kl, c: a },
        { a: contiguous(H, m, d), b: transpose(kvFromQ(m, d)), c: contiguous(H, m, m) },
        { batch: B * H, inner: H, m, n: m, k: d, alpha: p.scale },
      ),
      softmax(a, B * H * m, m),
      mm(
        { a: 'f32', b: dtype, c: 'f32' },
        { a: ql, b: dev.k, c: bm },
        { a: contiguous(H, m, d), b: transpose(KfromQ), c: contiguous(H, m, nk) },
        { batch: B * H, inner: H, m, n: nk, k: d, alpha: p.scale },
      ),
      softmax(bm, B * H * m, nk),
      mm({ a: 'f32', b: dtype, c: 'f32' }, { a: bm, b: dev.v, c: bv }, { a: contiguous(H, m, nk), b: VfromQ, c: contiguous(H, m, dv) }, { batch: B * H, inner: H, m, n: dv, k: nk }),
    );
    second = async (flush) => {
      await flush();
      const host = new Float32Array(await rt.download(a, B * H * m * m * 4));
      const pinv = new Float64Array(B * H * m * m);
      for (let t = 0; t < B * H; t++) pinv.set(pseudoInverse({ rows: m, cols: m, data: Float64Array.from(host.subarray(t * m * m, (t + 1) * m * m)) }).data, t * m * m);
      const ap = f32buf(B * H * m * m);
      rt.device.queue.writeBuffer(ap, 0, Float32Array.from(pinv));
      return [
        mm({ a: 'f32', b: 'f32', c: 'f32' }, { a: ap, b: bv, c: z }, { a: contiguous(H, m, m), b: contiguous(H, m, dv), c: contiguous(H, m, dv) }, { batch: B * H, inner: H, m, n: dv, k: m }),
        mm({ a: 'f32', b: 'f32', c: dtype }, { a: fm, b: z, c: y }, { a: contiguous(H, nq, m), b: contiguous(H, m, dv), c: Yop }, { batch: B * H, inner: H, m: nq, n: dv, k: m }),
      ];
    };
  }

  const maxPerDim = options.limits.maxComputeWorkgroupsPerDimension;
  const empty = B * H * nq * dv === 0 || nk === 0;
  const encoded = empty ? undefined : await encodeSteps(rt, first, owned, maxPerDim);
  const kernels = first.map((s) => s.program.name);
  if (second) kernels.push('host pinv', 'matmul', 'matmul');
  return {
    kernels,
    blocks: { full: 0, partial: 0, skipped: 0 },
    async run() {
      if (!encoded) {
        // No keys or no output: Y = 0 (the reference's empty sums).
        rt.device.queue.writeBuffer(y, 0, new Uint8Array(y.size));
        return;
      }
      if (!second) return runSteps(rt, spec.kind, encoded);
      const rest = await second(() => runSteps(rt, spec.kind, encoded));
      const scratch: GPUBuffer[] = [];
      await runSteps(rt, spec.kind, await encodeSteps(rt, rest, scratch, maxPerDim));
      for (const b of scratch) rt.release(b);
    },
    read: () => readOutput(rt, y, yElems, dtype),
    release() {
      for (const b of owned) rt.release(b);
      owned.length = 0;
    },
  };
}

/** The m x n matrix whose row t averages rows [floor(t n / m), floor((t + 1) n / m)) (segmentMeans). */
export function segmentMeanMatrix(m: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let t = 0; t < m; t++) {
    const lo = Math.floor((t * n) / m);
    const hi = Math.floor(((t + 1) * n) / m);
    for (let i = lo; i < hi; i++) out[t * n + i] = 1 / (hi - lo);
  }
  return out;
}
