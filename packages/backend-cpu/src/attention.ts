// compileAttention: an Attention op's params -> a CPU kernel specialized to head dim, scale, softcap, GQA
// grouping and layout, running the generated block kernel (kernels.ts) over the spec's block plan.
//
// Per call: Q (scaled), Kᵀ per key block and V are packed once per key/value head (GQA: the group's query
// heads share them) into one shared memory; the plan lists, per (batch, head, query block), the non-empty
// key blocks of classifyBlockRow, with a mask tile (the generated spec predicate, kvLength, bias) only for
// Partial ones; items run on the calling thread (run) or on a worker pool (runParallel).

import './wasm/webassembly-types.js';
import {
  type AttentionParams,
  BlockClass,
  classifyBlockRow,
  halfToFloat,
  isDataDependent,
  isLowRank,
  kvHeadOf,
  type LeafResolver,
  type MaskDims,
  type MaskSpec,
  validateAttentionParams,
} from '@attnopt/ir';
import { type AttendFn, jsAttentionKernel, jsAttentionKernelSource, type KernelShape, MASKED, wasmAttentionKernel } from './kernels.js';
import { compileMaskPredicate } from './mask-predicate.js';
import { type CpuWorkerPool, type KernelCode, SharedWorkspace } from './pool.js';

/** A float tensor, row-major: float32/float64 values, or float16 bit patterns (converted on load). */
export type CpuTensor =
  | { readonly shape: readonly number[]; readonly data: Float32Array | Float64Array }
  | { readonly shape: readonly number[]; readonly data: Uint16Array };
/** A boolean keep-mask (1 = keep). */
export interface CpuBoolTensor {
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

/** The inputs of one call, as referenceAttention takes them (past K/V always bhsd). */
export interface CpuAttentionInputs {
  readonly q: CpuTensor;
  readonly k?: CpuTensor;
  readonly v?: CpuTensor;
  readonly bias?: CpuTensor | CpuBoolTensor;
  readonly pastKey?: CpuTensor;
  readonly pastValue?: CpuTensor;
  readonly kvLength?: ArrayLike<number>;
}

export interface CpuKernelOptions {
  /** Generated WebAssembly SIMD128 (default) or the portable generated JavaScript. */
  readonly backend?: 'wasm' | 'js';
  /** Query rows per block (multiple of 4, default 64). */
  readonly blockQ?: number;
  /** Keys per block (multiple of 8, default 64). */
  readonly blockK?: number;
}

export interface CpuRunOptions {
  /** Key sets of data-dependent leaves (top-k blocks, LSH) for (batch, query head). */
  readonly resolver?: (b: number, h: number) => LeafResolver;
}

export interface CpuAttentionKernel {
  readonly cacheKey: string;
  readonly shape: KernelShape;
  /** Y in the layout of Q (packed-qkv: bsd), on the calling thread. */
  run(inputs: CpuAttentionInputs, options?: CpuRunOptions): Float32Array;
  /** Y on the pool's worker threads. */
  runParallel(inputs: CpuAttentionInputs, pool: CpuWorkerPool, options?: CpuRunOptions): Promise<Float32Array>;
  /** The block plan of a call without running it: non-empty blocks, Partial blocks, kept pairs. */
  planStats(inputs: CpuAttentionInputs, options?: CpuRunOptions): { blocks: number; partial: number };
}

const moduleCache = new Map<string, WebAssembly.Module>();
const jsCache = new Map<string, AttendFn>();
const instanceCache = new WeakMap<WebAssembly.Memory, Map<string, AttendFn>>();
let localWorkspace: SharedWorkspace | undefined;

let halfTable: Float32Array | undefined;
function floats(t: CpuTensor): Float32Array | Float64Array {
  if (!(t.data instanceof Uint16Array)) return t.data;
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  const out = new Float32Array(t.data.length);
  for (let k = 0; k < out.length; k++) out[k] = halfTable[t.data[k]!]!;
  return out;
}

/** Element offset of (b, head, s, 0) for a [.., seq, .., dim] tensor in a layout. */
type SeqOffset = (b: number, h: number, s: number) => number;

function seqOffset(layout: AttentionParams['layout'] | 'bhsd', shape: readonly number[], heads: number, dim: number, col = 0): { seq: number; at: SeqOffset } {
  const want = (rank: number) => {
    if (shape.length !== rank) throw new Error(`attention input must have rank ${rank} for layout ${layout}, got [${shape.join(', ')}]`);
  };
  switch (layout) {
    case 'bhsd': {
      want(4);
      const S = shape[2]!;
      if (shape[1] !== heads || shape[3] !== dim) throw new Error(`bhsd input [${shape.join(', ')}] needs ${heads} heads of ${dim}`);
      return { seq: S, at: (b, h, s) => ((b * heads + h) * S + s) * dim };
    }
    case 'bshd': {
      want(4);
      const S = shape[1]!;
      if (shape[2] !== heads || shape[3] !== dim) throw new Error(`bshd input [${shape.join(', ')}] needs ${heads} heads of ${dim}`);
      return { seq: S, at: (b, h, s) => ((b * S + s) * heads + h) * dim };
    }
    case 'bsd': {
      want(3);
      const S = shape[1]!;
      if (shape[2] !== heads * dim) throw new Error(`bsd input [${shape.join(', ')}] needs width ${heads * dim}`);
      return { seq: S, at: (b, h, s) => (b * S + s) * heads * dim + h * dim };
    }
    case 'packed-qkv': {
      want(3);
      const S = shape[1]!;
      const W = shape[2]!;
      return { seq: S, at: (b, h, s) => (b * S + s) * W + col + h * dim };
    }
  }
}

/** Bias (float or bool), numpy-broadcast to [batch, heads, nq, nk]; keys past its width are masked. */
function biasReader(bias: CpuTensor | CpuBoolTensor, target: readonly number[]): (b: number, h: number, i: number, j: number) => number {
  const rank = bias.shape.length;
  if (rank < 1 || rank > 4) throw new Error(`attention bias must have rank 1 to 4, got [${bias.shape.join(', ')}]`);
  const s4 = [...new Array<number>(4 - rank).fill(1), ...bias.shape];
  for (let k = 0; k < 3; k++) {
    if (s4[k] !== 1 && s4[k] !== target[k]) throw new Error(`attention bias [${bias.shape.join(', ')}] does not broadcast to [${target.join(', ')}]`);
  }
  const width = s4[3]!;
  const st = [s4[1]! * s4[2]! * s4[3]!, s4[2]! * s4[3]!, s4[3]!, 1].map((x, k) => (s4[k] === 1 ? 0 : x)) as [number, number, number, number];
  if (bias.data instanceof Uint8Array) {
    const data = bias.data;
    return (b, h, i, j) => (j >= width ? MASKED : data[b * st[0] + h * st[1] + i * st[2] + j * st[3]] ? 0 : MASKED);
  }
  const data = floats(bias as CpuTensor);
  return (b, h, i, j) => (j >= width ? MASKED : Math.max(MASKED, data[b * st[0] + h * st[1] + i * st[2] + j * st[3]]!));
}

const align16 = (x: number) => Math.ceil(x / 16) * 16;

interface Prepared {
  readonly workspace: SharedWorkspace;
  readonly items: number;
  readonly nItems: number;
  readonly counter: number;
  readonly scratch: number;
  readonly scratchStride: number;
  readonly blocks: number;
  readonly partial: number;
  readonly readOutput: () => Float32Array;
}

/** Compiles the Attention params to a CPU kernel (see the file comment). Low-rank specs are not supported yet. */
export function compileAttention(params: AttentionParams, options: CpuKernelOptions = {}): CpuAttentionKernel {
  const p = validateAttentionParams(params);
  if (isLowRank(p.spec)) throw new Error(`backend-cpu: low-rank spec ${p.spec.kind} has no generated kernel yet`);
  const spec = p.spec as MaskSpec;
  const backend = options.backend ?? 'wasm';
  const shape: KernelShape = {
    blockQ: options.blockQ ?? 64,
    blockK: options.blockK ?? 64,
    dPad: Math.ceil(p.headDim / 4) * 4,
    dvPad: Math.ceil(p.vHeadDim / 8) * 8,
    softcap: p.softcap,
  };
  const { blockQ: BQ, blockK: BK, dPad: DP, dvPad: DVP } = shape;
  const H = p.numHeads;
  const KVH = p.kvNumHeads;
  const d = p.headDim;
  const dv = p.vHeadDim;

  let code: KernelCode;
  if (backend === 'wasm') {
    const w = wasmAttentionKernel(shape);
    code = { key: w.cacheKey, bytes: w.bytes };
    if (!moduleCache.has(w.cacheKey)) moduleCache.set(w.cacheKey, new WebAssembly.Module(w.bytes));
  } else {
    const key = `attend-js-q${BQ}-k${BK}-d${d}-dv${dv}-dp${DP}-dvp${DVP}-cap${p.softcap}`;
    code = { key, source: jsAttentionKernelSource(shape, d, dv) };
    if (!jsCache.has(key)) jsCache.set(key, jsAttentionKernel(shape, d, dv));
  }
  const cacheKey = `${code.key}|${p.layout}|h${H}/${KVH}|scale${p.scale}|${JSON.stringify(spec)}`;

  function prepare(inputs: CpuAttentionInputs, workspace: SharedWorkspace, threads: number, runOptions: CpuRunOptions): Prepared {
    // shapes and readers
    const packed = p.layout === 'packed-qkv';
    if (packed && (inputs.k || inputs.v)) throw new Error('packed-qkv layout: K and V must be absent');
    if (!packed && (!inputs.k || !inputs.v)) throw new Error(`${p.layout} layout: K and V are required`);
    if ((inputs.pastKey === undefined) !== (inputs.pastValue === undefined)) throw new Error('pastKey and pastValue must be given together');
    const qData = floats(inputs.q);
    const kData = packed ? qData : floats(inputs.k!);
    const vData = packed ? qData : floats(inputs.v!);
    const batch = inputs.q.shape[0]!;
    if (packed && inputs.q.shape[2] !== (H + 2 * KVH) * d) throw new Error(`packed-qkv input needs width ${(H + 2 * KVH) * d}`);
    const qo = seqOffset(p.layout, inputs.q.shape, H, d, 0);
    const ko = seqOffset(p.layout, packed ? inputs.q.shape : inputs.k!.shape, KVH, d, H * d);
    const vo = seqOffset(p.layout, packed ? inputs.q.shape : inputs.v!.shape, KVH, dv, (H + KVH) * d);
    const nq = qo.seq;
    const nkNew = ko.seq;
    if (vo.seq !== nkNew) throw new Error(`K has ${nkNew} keys but V has ${vo.seq}`);
    const past = inputs.pastKey?.shape[2] ?? 0;
    const pk = inputs.pastKey ? floats(inputs.pastKey) : undefined;
    const pv = inputs.pastValue ? floats(inputs.pastValue) : undefined;
    const pko = inputs.pastKey ? seqOffset('bhsd', inputs.pastKey.shape, KVH, d).at : undefined;
    const pvo = inputs.pastValue ? seqOffset('bhsd', inputs.pastValue.shape, KVH, dv).at : undefined;
    const nk = past + nkNew;
    const kvLength = inputs.kvLength;
    if (kvLength !== undefined && kvLength.length !== batch) throw new Error(`kvLength needs ${batch} entries`);
    const bias = inputs.bias ? biasReader(inputs.bias, [batch, H, nq, nk]) : undefined;
    const perHead = bias !== undefined || isDataDependent(spec);

    const nqBlocks = Math.ceil(nq / BQ);
    const nkBlocks = Math.ceil(nk / BK);
    const nqPad = nqBlocks * BQ;
    const nkPad = nkBlocks * BK;

    // plan: per (b, h, query block) the non-empty key blocks; tiles for Partial ones
    const tiles: Float32Array[] = [];
    const plans: Int32Array[] = []; // per (b, h, r): pairs (key block, tile index + 1 or 0)
    let blocksTotal = 0;
    let partialTotal = 0;
    for (let b = 0; b < batch; b++) {
      const dims: MaskDims = { nq, nk, past: inputs.pastKey !== undefined ? past : kvLength !== undefined ? kvLength[b]! - nq : 0 };
      const valid = kvLength === undefined ? nk : kvLength[b]!;
      let shared: Int32Array[] | undefined;
      for (let h = 0; h < H; h++) {
        if (!perHead && shared) {
          plans.push(...shared);
          for (const pl of shared) blocksTotal += pl.length / 2;
          continue;
        }
        const resolve = runOptions.resolver?.(b, h);
        const keep = compileMaskPredicate(spec, dims, resolve);
        const rowsOfHead: Int32Array[] = [];
        for (let r = 0; r < nqBlocks; r++) {
          const cls = classifyBlockRow(spec, r, BQ, BK, dims, resolve);
          const list: number[] = [];
          for (let kb = 0; kb < nkBlocks; kb++) {
            let c: number = cls[kb]!;
            if (c === BlockClass.Empty || kb * BK >= valid) continue;
            if ((kb + 1) * BK > valid || bias !== undefined) c = BlockClass.Partial;
            if (c === BlockClass.Full) {
              list.push(kb, 0);
              continue;
            }
            const tile = new Float32Array(BQ * BK).fill(MASKED);
            for (let ii = 0; ii < BQ; ii++) {
              const i = r * BQ + ii;
              if (i >= nq) break;
              for (let jj = 0; jj < BK; jj++) {
                const j = kb * BK + jj;
                if (j >= valid) break;
                if (keep(i, j)) tile[ii * BK + jj] = bias ? bias(b, h, i, j) : 0;
              }
            }
            tiles.push(tile);
            partialTotal++;
            list.push(kb, tiles.length);
          }
          const pl = Int32Array.from(list);
          blocksTotal += pl.length / 2;
          rowsOfHead.push(pl);
        }
        plans.push(...rowsOfHead);
        if (!perHead) shared = rowsOfHead;
      }
    }

    // memory layout
    let top = 16; // counter at 0
    const alloc = (bytes: number) => {
      const at = top;
      top = align16(top + bytes);
      return at;
    };
    const qReg = alloc(batch * H * nqPad * DP * 4);
    const ktReg = alloc(batch * KVH * nkBlocks * DP * BK * 4);
    const vReg = alloc(batch * KVH * nkPad * DVP * 4);
    const outReg = alloc(batch * H * nqPad * DVP * 4);
    const tileReg = alloc(tiles.length * BQ * BK * 4);
    const blockReg = alloc(blocksTotal * 12);
    const nItems = batch * H * nqBlocks;
    const itemReg = alloc(nItems * 16);
    const scratchStride = align16((BQ * BK + 2 * BQ) * 4);
    const scratch = alloc(threads * scratchStride);
    workspace.ensure(top);
    const F = new Float32Array(workspace.memory.buffer);
    const I = new Int32Array(workspace.memory.buffer);

    // pack Q (scaled), Kᵀ per key block, V; zero padding
    F.fill(0, qReg >> 2, (outReg >> 2));
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < H; h++) {
        for (let s = 0; s < nq; s++) {
          const src = qo.at(b, h, s);
          const dst = (qReg >> 2) + ((b * H + h) * nqPad + s) * DP;
          for (let c = 0; c < d; c++) F[dst + c] = qData[src + c]! * p.scale;
        }
      }
      for (let g = 0; g < KVH; g++) {
        for (let j = 0; j < nk; j++) {
          const fromPast = j < past;
          const kSrc = fromPast ? pk! : kData;
          const ks = fromPast ? pko!(b, g, j) : ko.at(b, g, j - past);
          const kb = Math.floor(j / BK);
          const kdst = (ktReg >> 2) + ((b * KVH + g) * nkBlocks + kb) * DP * BK + (j - kb * BK);
          for (let c = 0; c < d; c++) F[kdst + c * BK] = kSrc[ks + c]!;
          const vSrc = fromPast ? pv! : vData;
          const vs = fromPast ? pvo!(b, g, j) : vo.at(b, g, j - past);
          const vdst = (vReg >> 2) + ((b * KVH + g) * nkPad + j) * DVP;
          for (let c = 0; c < dv; c++) F[vdst + c] = vSrc[vs + c]!;
        }
      }
    }
    tiles.forEach((t, k) => F.set(t, (tileReg >> 2) + k * BQ * BK));

    // block lists and work items, largest first
    const order: { at: number; cost: number; q: number; out: number }[] = [];
    let bp = blockReg;
    let planIdx = 0;
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < H; h++) {
        const g = kvHeadOf(p, h);
        for (let r = 0; r < nqBlocks; r++) {
          const pl = plans[planIdx++]!;
          const at = bp;
          for (let e = 0; e < pl.length; e += 2) {
            const kb = pl[e]!;
            const t = pl[e + 1]!;
            I[(bp >> 2) + 0] = ktReg + ((b * KVH + g) * nkBlocks + kb) * DP * BK * 4;
            I[(bp >> 2) + 1] = vReg + ((b * KVH + g) * nkPad + kb * BK) * DVP * 4;
            I[(bp >> 2) + 2] = t === 0 ? 0 : tileReg + (t - 1) * BQ * BK * 4;
            bp += 12;
          }
          const row = (b * H + h) * nqPad + r * BQ;
          order.push({ at, cost: pl.length / 2, q: qReg + row * DP * 4, out: outReg + row * DVP * 4 });
        }
      }
    }
    order.sort((x, y) => y.cost - x.cost);
    order.forEach((it, k) => {
      const x = (itemReg >> 2) + 4 * k;
      I[x] = it.q;
      I[x + 1] = it.out;
      I[x + 2] = it.at;
      I[x + 3] = it.cost;
    });

    const readOutput = () => {
      const Fo = new Float32Array(workspace.memory.buffer);
      const y = new Float32Array(batch * H * nq * dv);
      const yo = seqOffset(p.layout === 'packed-qkv' ? 'bsd' : p.layout, p.layout === 'bhsd' ? [batch, H, nq, dv] : p.layout === 'bshd' ? [batch, nq, H, dv] : [batch, nq, H * dv], H, dv);
      for (let b = 0; b < batch; b++) {
        for (let h = 0; h < H; h++) {
          for (let s = 0; s < nq; s++) {
            const src = (outReg >> 2) + ((b * H + h) * nqPad + s) * DVP;
            const dst = yo.at(b, h, s);
            for (let c = 0; c < dv; c++) y[dst + c] = Fo[src + c]!;
          }
        }
      }
      return y;
    };
    return { workspace, items: itemReg, nItems, counter: 0, scratch, scratchStride, blocks: blocksTotal, partial: partialTotal, readOutput };
  }

  function localAttend(memory: WebAssembly.Memory): AttendFn {
    let perMemory = instanceCache.get(memory);
    if (!perMemory) instanceCache.set(memory, (perMemory = new Map()));
    let fn = perMemory.get(code.key);
    if (!fn) {
      if ('bytes' in code) {
        const inst = new WebAssembly.Instance(moduleCache.get(code.key)!, { env: { memory } });
        const attend = inst.exports['attend'] as (q: number, o: number, b: number, n: number, s: number) => void;
        fn = (_F, _I, q, o, b, n, s) => attend(q, o, b, n, s);
      } else {
        fn = jsCache.get(code.key)!;
      }
      perMemory.set(code.key, fn);
    }
    return fn;
  }

  return {
    cacheKey,
    shape,
    run(inputs, runOptions = {}) {
      localWorkspace ??= new SharedWorkspace();
      const prep = prepare(inputs, localWorkspace, 1, runOptions);
      const memory = prep.workspace.memory;
      const attend = localAttend(memory);
      const F = new Float32Array(memory.buffer);
      const I = new Int32Array(memory.buffer);
      for (let k = 0; k < prep.nItems; k++) {
        const x = (prep.items >> 2) + 4 * k;
        attend(F, I, I[x]!, I[x + 1]!, I[x + 2]!, I[x + 3]!, prep.scratch);
      }
      return prep.readOutput();
    },
    async runParallel(inputs, pool, runOptions = {}) {
      const prep = prepare(inputs, pool.workspace, pool.threads, runOptions);
      await pool.run({ code, items: prep.items, nItems: prep.nItems, counter: prep.counter, scratch: prep.scratch, scratchStride: prep.scratchStride });
      return prep.readOutput();
    },
    planStats(inputs, runOptions = {}) {
      localWorkspace ??= new SharedWorkspace();
      const prep = prepare(inputs, localWorkspace, 1, runOptions);
      return { blocks: prep.blocks, partial: prep.partial };
    },
  };
}
