// Data-dependent leaves of a mask spec (LSH buckets, top-k key blocks), made available to the attention
// kernel's predicate as per-head codes in one u32 buffer `data_codes` (see wgsl/mask-predicate.ts):
// - lsh: hashed on the device before the attention dispatch, in the same pass: lsh_hash over Q (per query
//   head) and over the present K (per key/value head); with chunk > 0, lsh_chunk turns the bucket codes into
//   chunk indices (sorted position / chunk). Hashing is f32 (the reference hashes in float64: a projection
//   within f32 rounding of a tie can pick another bucket; with continuous inputs that has probability ~1e-7
//   per hash);
// - topkBlocks: resolved on the host from the inputs as given, by @attnopt/ir's topkBlockIndices (the exact
//   selection rule, float64), one 0/1 code per (query head, query block, key block).

import { type AttentionParams, lshRotations, type TopKBlocks, topkBlockIndices } from '@attnopt/ir';
import type { StorageDType } from './attention-program.js';
import { type AttentionShape, concatPast, type DeviceInputs, gatherBhsd, type WgslAttentionInputs } from './attention.js';
import { lshChunkProgram, lshHashProgram } from './kernels/lsh.js';
import { operandUniforms, SEQUENCE_WORKGROUP } from './kernels/operand.js';
import type { WgslRuntime } from './runtime.js';
import type { KernelStep } from './sequence.js';
import { maskPredicate } from './wgsl/mask-predicate.js';

export interface PreparedDataLeaves {
  readonly buffer: GPUBuffer;
  /** leaf<n>_q / leaf<n>_k offsets (elements) into the buffer. */
  readonly uniforms: Readonly<Record<string, number>>;
  /** Device steps that fill the buffer (LSH hashing), to run before the attention kernel. */
  readonly steps: readonly KernelStep[];
}

/** Prepares the codes of every data leaf of params.spec; undefined when it has none. */
export async function prepareDataLeaves(
  rt: WgslRuntime,
  p: AttentionParams,
  inputs: WgslAttentionInputs,
  shape: AttentionShape,
  dev: DeviceInputs,
  dtype: StorageDType,
  owned: GPUBuffer[],
): Promise<PreparedDataLeaves | undefined> {
  if (p.spec.kind === 'nystrom' || p.spec.kind === 'linformer' || p.spec.kind === 'performer') return undefined;
  const leaves = maskPredicate(p.spec).dataLeaves;
  if (leaves.length === 0) return undefined;
  const { batch: B, nq } = shape;
  const { numHeads: H, kvNumHeads: G, headDim: d } = p;
  const nk = dev.nk;
  const uniforms: Record<string, number> = {};
  const steps: ((codes: GPUBuffer) => KernelStep)[] = [];
  const host: { offset: number; data: Uint32Array<ArrayBuffer> }[] = [];
  let size = 0;
  const region = (n: number): number => {
    const at = size;
    size += n;
    return at;
  };
  let heads: { q: Float64Array; k: Float64Array } | undefined;
  const hostHeads = () => (heads ??= hostQk(p, inputs, shape, nk));

  leaves.forEach((leaf, n) => {
    if (leaf.kind === 'lsh') {
      const R = leaf.hashes;
      if (leaf.chunk !== 0 && nq !== nk) {
        throw new Error(`WGSL attention: lsh with chunk ${leaf.chunk} is defined for self-attention (nq == nk), got ${nq} x ${nk}`);
      }
      const qAt = region(B * H * R * nq);
      const kAt = region(B * G * R * nk);
      uniforms[`leaf${n}_q`] = qAt;
      uniforms[`leaf${n}_k`] = kAt;
      const rot = rt.upload(Float32Array.from(lshRotations(leaf, d)));
      owned.push(rot);
      const hashTo = leaf.chunk === 0 ? { q: qAt, k: kAt } : { q: region(B * H * R * nq), k: region(B * G * R * nk) };
      for (const side of ['q', 'k'] as const) {
        const rows = side === 'q' ? nq : nk;
        const total = B * (side === 'q' ? H : G) * R * rows;
        const st = side === 'q' ? dev.qSt : dev.kSt;
        const x = { base: st.base, so: st.sb, si: st.sh, div: 1, sr: st.ss, sc: 1 };
        steps.push((codes) => ({
          program: lshHashProgram(dtype, d, leaf.buckets),
          storage: [side === 'q' ? dev.q : dev.k, rot, codes],
          uniforms: { total, rows, rounds: R, inner: side === 'q' ? H : G, out_base: hashTo[side], ...operandUniforms('x', x) },
          workgroups: Math.ceil(total / SEQUENCE_WORKGROUP),
        }));
        if (leaf.chunk !== 0) {
          steps.push((codes) => ({
            program: lshChunkProgram(),
            storage: [codes],
            uniforms: { total, rows, chunk: leaf.chunk, in_base: hashTo[side], out_base: side === 'q' ? qAt : kAt },
            workgroups: Math.ceil(total / SEQUENCE_WORKGROUP),
          }));
        }
      }
    } else {
      const at = region(B * H * Math.ceil(nq / leaf.block) * Math.ceil(nk / leaf.block));
      uniforms[`leaf${n}_q`] = at;
      uniforms[`leaf${n}_k`] = 0;
      host.push({ offset: at, data: topkCodes(leaf, p, B, nq, nk, hostHeads()) });
    }
  });
  const buffer = rt.acquire(Math.max(4, size * 4), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
  owned.push(buffer);
  for (const h of host) rt.device.queue.writeBuffer(buffer, h.offset * 4, h.data);
  return { buffer, uniforms, steps: steps.map((s) => s(buffer)) };
}

/** Q [B, H, nq, d] and present K [B, G, nk, d] as float64 bhsd, from the inputs as given. */
function hostQk(p: AttentionParams, inputs: WgslAttentionInputs, shape: AttentionShape, nk: number): { q: Float64Array; k: Float64Array } {
  const { batch, nq, nkNew, past } = shape;
  const q = gatherBhsd(inputs.q.data, shape.q, batch, p.numHeads, nq, p.headDim);
  const kData = p.layout === 'packed-qkv' ? inputs.q.data : inputs.k!.data;
  const kNow = gatherBhsd(kData, shape.k, batch, p.kvNumHeads, nkNew, p.headDim);
  const k = past > 0 ? concatPast(inputs.pastKey!, kNow, batch, p.kvNumHeads, past, nkNew, p.headDim) : kNow;
  if (k.length !== batch * p.kvNumHeads * nk * p.headDim) throw new Error('WGSL attention: present K size mismatch');
  return { q, k };
}

/** 0/1 per (query head, query block, key block): the key blocks topkBlocks keeps. */
function topkCodes(leaf: TopKBlocks, p: AttentionParams, B: number, nq: number, nk: number, qk: { q: Float64Array; k: Float64Array }): Uint32Array<ArrayBuffer> {
  const { numHeads: H, kvNumHeads: G, headDim: d } = p;
  const nqb = Math.ceil(nq / leaf.block);
  const nkb = Math.ceil(nk / leaf.block);
  const out = new Uint32Array(B * H * nqb * nkb);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / G));
      const head = {
        q: qk.q.subarray((b * H + h) * nq * d, (b * H + h + 1) * nq * d),
        k: qk.k.subarray((b * G + g) * nk * d, (b * G + g + 1) * nk * d),
        nq,
        nk,
        d,
        scale: p.scale,
      };
      for (let r = 0; r < nqb; r++) {
        for (const c of topkBlockIndices(leaf, head, r)) out[((b * H + h) * nqb + r) * nkb + c] = 1;
      }
    }
  }
  return out;
}
