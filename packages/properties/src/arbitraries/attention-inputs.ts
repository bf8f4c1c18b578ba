// Arbitrary attention problems: params (GQA, head sizes up to 96, every layout, a spec) and float64 inputs
// (odd lengths, optional bias with fully masked rows, optional past K/V, optional lengths input whose padding keys
// and values hold NaN in one problem of two), small enough for float64 loops.

import fc from 'fast-check';
import { ATTENTION_LAYOUTS, type AttentionLayout, type AttentionParams, type AttentionSpec, dense, isLowRank, SplitMix64 } from '@attnopt/ir';
import { type BoolTensor, fromBhsd, packQkv, type ReferenceInputs, type Tensor64 } from '@attnopt/reference';

/** One attention problem: the inputs in params.layout, and the same data in bhsd for independent checks. */
export interface AttentionProblem {
  readonly params: AttentionParams;
  readonly inputs: ReferenceInputs;
  /** Q [B, H, nq, d], K [B, kvH, nk, d], V [B, kvH, nk, dv] (this call's keys only), past K/V, bias. */
  readonly bhsd: {
    readonly q: Tensor64;
    readonly k: Tensor64;
    readonly v: Tensor64;
    readonly pastKey?: Tensor64;
    readonly pastValue?: Tensor64;
    readonly bias?: Tensor64 | BoolTensor;
  };
}

export interface AttentionProblemOptions {
  /** Spec of every problem (default dense). */
  readonly spec?: fc.Arbitrary<AttentionSpec>;
  /** Largest query and key count of this call (default 40; head sizes 80 and 96 use at most 12). */
  readonly maxLen?: number;
  /** Allow past K/V (default true). */
  readonly past?: boolean;
  /** Allow a bias / mask (default true). */
  readonly bias?: boolean;
  /** Layouts to draw from (default all four). */
  readonly layouts?: readonly AttentionLayout[];
  /** Require nq == nk and no past (self-attention). */
  readonly selfAttention?: boolean;
  /** Values are uniform in [-range, range] (default 4). */
  readonly range?: number;
  /**
   * Draw a lengths input in one problem of two (default false): kvLength[b] in [0, past + nk], keys at or past it
   * are padding (ONNX nonpad_kv_seqlen). In one such problem of two the padding keys and values hold NaN, as a KV
   * cache's unwritten slots may: the reference never reads them, so neither may the kernel. Not with low-rank specs.
   */
  readonly kvLength?: boolean;
}

/** Uniform values in [-range, range) from a seed (SplitMix64 of @attnopt/ir): fast for large tensors. */
export function seededValues(seed: number, count: number, range: number): Float64Array {
  const rng = new SplitMix64(seed);
  return Float64Array.from({ length: count }, () => (2 * rng.nextFloat() - 1) * range);
}

const HEAD_DIMS = [1, 2, 3, 5, 8, 16, 80, 96];

export function attentionProblemArbitrary(options: AttentionProblemOptions = {}): fc.Arbitrary<AttentionProblem> {
  const { maxLen = 40, past: allowPast = true, bias: allowBias = true, layouts = ATTENTION_LAYOUTS, selfAttention = false, range = 4, kvLength: allowKvLength = false } = options;
  const specArb = options.spec ?? fc.constant<AttentionSpec>(dense);
  return fc
    .record({
      batch: fc.integer({ min: 1, max: 2 }),
      kvNumHeads: fc.integer({ min: 1, max: 2 }),
      group: fc.integer({ min: 1, max: 3 }),
      headDim: fc.constantFrom(...HEAD_DIMS),
      vSame: fc.boolean(),
      vHeadDim: fc.integer({ min: 1, max: 6 }),
      nq: fc.integer({ min: 1, max: maxLen }),
      nk: fc.integer({ min: 1, max: maxLen }),
      past: allowPast && !selfAttention ? fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 8 })) : fc.constant(0),
      layout: fc.constantFrom(...layouts),
      scale: fc.oneof(fc.constant(undefined), fc.double({ min: 0.05, max: 1.5, noNaN: true })),
      softcap: fc.oneof(fc.constant(0), fc.double({ min: 0.5, max: 30, noNaN: true })),
      biasKind: allowBias ? fc.constantFrom('none', 'float', 'bool', 'none') : fc.constant('none'),
      biasRank: fc.integer({ min: 2, max: 4 }),
      biasShort: fc.boolean(),
      maskedRows: fc.integer({ min: 0, max: 3 }),
      seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      spec: specArb,
      lengths: allowKvLength ? fc.option(fc.tuple(fc.nat(), fc.nat(), fc.boolean()), { freq: 2 }) : fc.constant(null),
    })
    .map((r) => {
      const cap = r.headDim >= 80 ? Math.min(12, maxLen) : maxLen;
      const packed = r.layout === 'packed-qkv';
      const nq = Math.min(r.nq, cap);
      const nk = selfAttention || packed ? nq : Math.min(r.nk, cap);
      const past = packed ? 0 : r.past;
      const vHeadDim = r.vSame || packed ? r.headDim : r.vHeadDim;
      const H = r.kvNumHeads * r.group;
      const B = r.batch;
      const total = past + nk;
      const vals = (salt: number, shape: number[]): Tensor64 => ({
        shape,
        data: seededValues(r.seed * 8 + salt, shape.reduce((a, b) => a * b, 1), range),
      });
      const q = vals(0, [B, H, nq, r.headDim]);
      const k = vals(1, [B, r.kvNumHeads, nk, r.headDim]);
      const v = vals(2, [B, r.kvNumHeads, nk, vHeadDim]);
      const pastKey = past > 0 ? vals(3, [B, r.kvNumHeads, past, r.headDim]) : undefined;
      const pastValue = past > 0 ? vals(4, [B, r.kvNumHeads, past, vHeadDim]) : undefined;
      // a lengths input: kvLength[b] in [0, past + nk]; its padding (the present keys at or past it) NaN when drawn so
      const kvLength = r.lengths && !isLowRank(r.spec) ? Array.from({ length: B }, (_, b) => (r.lengths![0] + b * r.lengths![1]) % (total + 1)) : undefined;
      if (kvLength && r.lengths![2]) {
        for (let b = 0; b < B; b++) {
          for (let g = 0; g < r.kvNumHeads; g++) {
            for (let j = kvLength[b]!; j < total; j++) {
              const [kt, vt, row] = j < past ? [pastKey!, pastValue!, j] : [k, v, j - past];
              const rows = kt.shape[2]!;
              kt.data.fill(NaN, ((b * r.kvNumHeads + g) * rows + row) * r.headDim, ((b * r.kvNumHeads + g) * rows + row + 1) * r.headDim);
              vt.data.fill(NaN, ((b * r.kvNumHeads + g) * rows + row) * vHeadDim, ((b * r.kvNumHeads + g) * rows + row + 1) * vHeadDim);
            }
          }
        }
      }
      let bias: Tensor64 | BoolTensor | undefined;
      if (r.biasKind !== 'none') {
        const width = r.biasShort && total > 1 ? total - 1 : total;
        const full = [B, H, nq, width];
        const shape = full.slice(4 - r.biasRank).map((d, k, all) => (k === 0 && all.length === 3 ? H : d));
        const n = shape.reduce((a, b) => a * b, 1);
        const raw = seededValues(r.seed * 8 + 5, n, 1);
        const rows = n / width;
        if (r.biasKind === 'float') {
          const data = raw.map((x) => (x < -0.7 ? -Infinity : 2 * x));
          for (let m = 0; m < Math.min(r.maskedRows, rows); m++) data.fill(-Infinity, m * 2 * width % n, (m * 2 * width % n) + width);
          bias = { shape, data };
        } else {
          const data = Uint8Array.from(raw, (x) => (x > -0.5 ? 1 : 0));
          for (let m = 0; m < Math.min(r.maskedRows, rows); m++) data.fill(0, m * 2 * width % n, (m * 2 * width % n) + width);
          bias = { shape, data };
        }
      }
      const params: AttentionParams = {
        numHeads: H,
        kvNumHeads: r.kvNumHeads,
        headDim: r.headDim,
        vHeadDim,
        scale: r.scale ?? 1 / Math.sqrt(r.headDim),
        softcap: r.softcap,
        layout: r.layout,
        spec: r.spec,
      };
      const inLayout = (t: Tensor64) => (r.layout === 'packed-qkv' ? t : fromBhsd(t, r.layout));
      const inputs: ReferenceInputs = {
        ...(packed ? { q: packQkv(q, k, v) } : { q: inLayout(q), k: inLayout(k), v: inLayout(v) }),
        ...(bias ? { bias } : {}),
        ...(pastKey && pastValue ? { pastKey, pastValue } : {}),
        ...(kvLength ? { kvLength } : {}),
      };
      return { params, inputs, bhsd: { q, k, v, ...(pastKey && pastValue ? { pastKey, pastValue } : {}), ...(bias ? { bias } : {}) } };
    });
}
