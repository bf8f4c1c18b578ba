// compileAttention: an Attention op's params -> a CPU kernel specialized to head dim, scale, softcap, GQA
// grouping and layout, running the generated block kernel (kernels.ts) over the spec's block plan.
//
// Per call: Q, K and V go into one shared memory, as given (one copy per tensor, read with the layout's
// row strides) or, with past K/V or head dims that are not multiples of 4, packed per head into
// zero-padded rows; keys and values at or past kvLength are zeroed there (padding may hold anything, and a partial
// block reads it before masking it); the plan lists, per (batch, head, query block), the non-empty key blocks of
// classifyBlockRow, with a mask tile (the spec's kept key ranges, kvLength, bias) only for Partial ones;
// items run on the calling thread (run) or on a worker pool (runParallel), largest first.
// With options.guard the items run the guarded kernel (guard/guard-shape.ts): the block lists of the spec inside
// the model's mask and of the model's mask itself (the fallback), the dropped key segments of each query block and
// their summaries; runGuarded / runGuardedParallel return Y with the certificate per row and the fallback count.

import './wasm/webassembly-types.js';
import {
  type AttentionParams,
  BlockClass,
  dense,
  intersect,
  classifyBlockRow,
  halfToFloat,
  isDataDependent,
  isLowRank,
  kvHeadOf,
  type LeafResolver,
  type MaskDims,
  type MaskSpec,
  rowKeys,
  intervals,
  type IntervalSet,
  validateAttentionParams,
} from '@attnopt/ir';
import {
  type AttendFn,
  checkKernelShape,
  jsAttentionKernel,
  jsAttentionKernelSource,
  fullKernelShape,
  guardMetadata,
  kernelCacheKey,
  type KernelShape,
  MASKED,
  scratchBytes,
  wasmAttentionKernel,
} from './kernels.js';
import { type CpuWorkerPool, type KernelCode, SharedWorkspace } from './pool.js';
import { checkGuard, GUARD_ITEM as GI, GUARD_ITEM_WORDS, type GuardOptions, guardScratch, SUMMARY_ITEM_WORDS } from './guard/guard-shape.js';
import { type GuardPlan, layoutGuard, planGuard, type ResolvedGuard, type SummaryKernels, writeGuard } from './guard/host.js';
import { type GuardedAttendFn, jsGuardedKernel, jsGuardedKernelSource } from './guard/js-guard.js';
import { wasmGuardedModule } from './wasm/wasm-guard.js';

/** A float tensor, row-major: float32/float64 values, or float16 bit patterns (converted on load). */
export type CpuTensor =
  | { readonly shape: readonly number[]; readonly data: Float32Array | Float64Array }
  | { readonly shape: readonly number[]; readonly data: Uint16Array };
/** A partial key block's mask tile: the kept key ranges of its rows. */
interface TileDesc {
  readonly b: number;
  readonly h: number;
  readonly kb: number;
  readonly i0: number;
  readonly rowSets: IntervalSet[];
  readonly valid: number;
}

/** Per (b, h, query block): pairs (key block, tile index + 1 or 0), and their count. */
interface BlockLists {
  readonly plans: Int32Array[];
  readonly total: number;
}

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
  /**
   * The guarded form: the spec is run sparse, each row's dropped mass is certified from key-segment summaries
   * and rows whose output bound exceeds epsilon are recomputed over `modelMask` (see guard/guard-shape.ts).
   */
  readonly guard?: GuardOptions;
}

/** What a guarded call reports besides Y. */
export interface GuardedResult {
  readonly y: Float32Array;
  /** The certificate m_hat per (batch, head, query row): an upper bound on the row's dropped softmax mass. */
  readonly certificates: Float32Array;
  /** The output bound m_hat · R per (batch, head, query row) (R: the largest range of a V coordinate). */
  readonly bounds: Float32Array;
  /** Rows whose bound exceeded epsilon (each recomputed exactly). */
  readonly fallbackRows: number;
  /** Rows recomputed (flagged rows and the rows that share their strip of 4 or their block). */
  readonly recomputedRows: number;
  /** batch · heads · query rows. */
  readonly rows: number;
}

/** What the metadata of a guarded kernel records. */
export interface GuardInfo {
  readonly tier: 'guarded';
  readonly epsilon: number;
  readonly block: number;
  readonly modelMask: MaskSpec;
  readonly summaries: readonly string[];
}

export interface CpuRunOptions {
  /** Key sets of data-dependent leaves (top-k blocks, LSH) for (batch, query head). */
  readonly resolver?: (b: number, h: number) => LeafResolver;
  /**
   * Where to write Y (batch · nq · heads · vHeadDim floats, the layout of Q); returned. Default: a new
   * array per call. Reusing one saves the allocation, which costs page faults for large outputs.
   */
  readonly output?: Float32Array;
}

export interface CpuAttentionKernel {
  readonly cacheKey: string;
  readonly shape: KernelShape;
  /** Y in the layout of Q (packed-qkv: bsd), on the calling thread. */
  run(inputs: CpuAttentionInputs, options?: CpuRunOptions): Float32Array;
  /** Y on the pool's worker threads. */
  runParallel(inputs: CpuAttentionInputs, pool: CpuWorkerPool, options?: CpuRunOptions): Promise<Float32Array>;
  /** Present on a guarded kernel: tier, budget, summary block and summaries used. */
  readonly guard?: GuardInfo;
  /** A guarded kernel's call with its certificates and fallback count (throws on an unguarded kernel). */
  runGuarded(inputs: CpuAttentionInputs, options?: CpuRunOptions): GuardedResult;
  runGuardedParallel(inputs: CpuAttentionInputs, pool: CpuWorkerPool, options?: CpuRunOptions): Promise<GuardedResult>;
  /** The block plan of a call without running it: non-empty blocks, Partial blocks, kept pairs. */
  planStats(inputs: CpuAttentionInputs, options?: CpuRunOptions): { blocks: number; partial: number };
}

const moduleCache = new Map<string, WebAssembly.Module>();
const jsCache = new Map<string, AttendFn>();
const jsGuardedCache = new Map<string, GuardedAttendFn>();
const instanceCache = new WeakMap<WebAssembly.Memory, Map<string, AttendFn>>();
const guardedInstanceCache = new WeakMap<WebAssembly.Memory, Map<string, GuardedAttendFn>>();
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

/** Whether a bias broadcast to [batch, heads, nq, nk] is the same for every query row (its query dim is 1 or absent). */
function isKeyBias(bias: CpuTensor | CpuBoolTensor): boolean {
  const rank = bias.shape.length;
  return rank < 2 || bias.shape[rank - 2] === 1;
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

/** Words per work item: q, out, blocks, nBlocks, rows, cost (and 2 spare). */
export const ITEM_WORDS = 8;

interface Prepared {
  readonly workspace: SharedWorkspace;
  readonly code: KernelCode;
  readonly items: number;
  readonly nItems: number;
  readonly counter: number;
  readonly scratch: number;
  readonly scratchStride: number;
  readonly itemWords: number;
  readonly blocks: number;
  readonly partial: number;
  readonly readOutput: () => Float32Array;
  readonly readGuard?: (y: Float32Array) => GuardedResult;
  /** The summary items the workers run before the items (SUMMARY_ITEM), when the guard's summaries are deferred. */
  readonly summaryJob?: { readonly items: number; readonly nItems: number };
}

/** Row strides (f32 elements) of Q, K, V and Y when the kernel reads the inputs in their own layout. */
function layoutStrides(p: AttentionParams): { q: number; k: number; v: number; o: number } {
  const { numHeads: H, kvNumHeads: KVH, headDim: d, vHeadDim: dv } = p;
  switch (p.layout) {
    case 'bhsd':
      return { q: d, k: d, v: dv, o: dv };
    case 'bshd':
    case 'bsd':
      return { q: H * d, k: KVH * d, v: KVH * dv, o: H * dv };
    case 'packed-qkv': {
      const w = (H + KVH) * d + KVH * dv;
      return { q: w, k: w, v: w, o: H * dv };
    }
  }
}

/**
 * Compiles the Attention params to a CPU kernel (see the file comment). Low-rank specs are not supported yet.
 *
 * Inputs are read in place when they can be: with no past K/V and head dims that are multiples of 4, Q, K
 * and V are copied as they are into the shared memory (one copy per tensor) and the kernel reads them with
 * the layout's row strides and writes Y in its final layout. Otherwise (past K/V, odd head dims) they are
 * packed per head into zero-padded rows and Y is unpacked afterwards.
 */
export function compileAttention(params: AttentionParams, options: CpuKernelOptions = {}): CpuAttentionKernel {
  const p = validateAttentionParams(params);
  if (isLowRank(p.spec)) throw new Error(`backend-cpu: low-rank spec ${p.spec.kind} has no generated kernel yet`);
  // guarded: the sparse keys are taken inside the model's own mask (spec ∩ modelMask), so that the dropped keys
  // are exactly modelMask \ spec and a fallback row equals the model's attention
  const modelMask = options.guard?.modelMask ?? dense;
  const spec: MaskSpec = options.guard && modelMask.kind !== 'dense' ? intersect(modelMask, p.spec as MaskSpec) : (p.spec as MaskSpec);
  const backend = options.backend ?? 'wasm';
  const BQ = options.blockQ ?? 64;
  const BK = options.blockK ?? 64;
  const H = p.numHeads;
  const KVH = p.kvNumHeads;
  const d = p.headDim;
  const dv = p.vHeadDim;
  const DP = Math.ceil(d / 4) * 4;
  const DVP = Math.ceil(dv / 8) * 8;
  const inPlace = d % 4 === 0 && dv % 4 === 0;
  const st = layoutStrides(p);
  const common = { blockQ: BQ, blockK: BK, dvPad: DVP, softcap: p.softcap, scale: p.scale };
  const directShape: KernelShape = { ...common, dPad: d, qStride: st.q, kStride: st.k, vStride: st.v, oStride: st.o, dvOut: dv };
  const packedShape: KernelShape = { ...common, dPad: DP, qStride: DP, kStride: DP, vStride: DVP, oStride: DVP, dvOut: Math.ceil(dv / 4) * 4 };
  const mainShape = inPlace ? directShape : packedShape;
  checkKernelShape(mainShape);

  if (options.guard) checkGuard(options.guard);
  const guard: ResolvedGuard | undefined = options.guard
    ? { epsilon: options.guard.epsilon, block: options.guard.block ?? BK, modelMask }
    : undefined;
  let guardPlanCache: { key: string; plan: GuardPlan } | undefined;
  // the key-block lists and their mask tiles' rows, reused while the shapes stay (see prepare)
  let listCache: { key: string; sparse: BlockLists; base: BlockLists | undefined; tiles: readonly TileDesc[] } | undefined;
  const codes = new Map<KernelShape, KernelCode>();
  function codeFor(shape: KernelShape): KernelCode {
    let code = codes.get(shape);
    if (code) return code;
    if (guard && backend === 'wasm') {
      const key = `${kernelCacheKey('wasm', shape)}-guard${guard.epsilon}`;
      let module = moduleCache.get(key);
      const bytes = wasmGuardedModule(fullKernelShape(shape), guard.epsilon, key);
      if (!module) moduleCache.set(key, (module = new WebAssembly.Module(bytes)));
      code = { key, bytes, module, entry: 'attendGuarded' };
    } else if (guard) {
      const key = `${kernelCacheKey('js', shape)}-d${d}-dv${dv}-guard${guard.epsilon}`;
      code = { key, source: jsGuardedKernelSource(shape, d, dv, guard.epsilon), entry: 'attendGuarded' };
      if (!jsGuardedCache.has(key)) jsGuardedCache.set(key, jsGuardedKernel(shape, d, dv, guard.epsilon));
    } else if (backend === 'wasm') {
      const w = wasmAttentionKernel(shape);
      let module = moduleCache.get(w.cacheKey);
      if (!module) moduleCache.set(w.cacheKey, (module = new WebAssembly.Module(w.bytes)));
      code = { key: w.cacheKey, bytes: w.bytes, module };
    } else {
      const key = `${kernelCacheKey('js', shape)}-d${d}-dv${dv}`;
      code = { key, source: jsAttentionKernelSource(shape, d, dv) };
      if (!jsCache.has(key)) jsCache.set(key, jsAttentionKernel(shape, d, dv));
    }
    codes.set(shape, code);
    return code;
  }
  const cacheKey = `${codeFor(mainShape).key}|${p.layout}|h${H}/${KVH}|${JSON.stringify(spec)}${guard ? `|guard${JSON.stringify(guard)}` : ''}`;

  /** `onPool`: the items run on a worker pool, which with a WebAssembly guard also builds the summaries (summaryJob). */
  function prepare(inputs: CpuAttentionInputs, workspace: SharedWorkspace, threads: number, runOptions: CpuRunOptions, onPool = false): Prepared {
    // shapes and readers
    const packed = p.layout === 'packed-qkv';
    if (packed && (inputs.k || inputs.v)) throw new Error('packed-qkv layout: K and V must be absent');
    if (!packed && (!inputs.k || !inputs.v)) throw new Error(`${p.layout} layout: K and V are required`);
    if ((inputs.pastKey === undefined) !== (inputs.pastValue === undefined)) throw new Error('pastKey and pastValue must be given together');
    const qData = floats(inputs.q);
    const kData = packed ? qData : floats(inputs.k!);
    const vData = packed ? qData : floats(inputs.v!);
    const batch = inputs.q.shape[0]!;
    if (packed && inputs.q.shape[2] !== st.q) throw new Error(`packed-qkv input needs width ${st.q}, got [${inputs.q.shape.join(', ')}]`);
    const qo = seqOffset(p.layout, inputs.q.shape, H, d, 0);
    const ko = seqOffset(p.layout, packed ? inputs.q.shape : inputs.k!.shape, KVH, d, H * d);
    const vo = seqOffset(p.layout, packed ? inputs.q.shape : inputs.v!.shape, KVH, dv, (H + KVH) * d);
    const nq = qo.seq;
    const nkNew = ko.seq;
    if (vo.seq !== nkNew) throw new Error(`K has ${nkNew} keys but V has ${vo.seq}`);
    for (const [name, t] of [['K', inputs.k], ['V', inputs.v]] as const) {
      if (t && t.shape[0] !== batch) throw new Error(`${name} has batch ${t.shape[0]} but Q has ${batch}`);
    }
    const past = inputs.pastKey?.shape[2] ?? 0;
    const pk = inputs.pastKey ? floats(inputs.pastKey) : undefined;
    const pv = inputs.pastValue ? floats(inputs.pastValue) : undefined;
    const pko = inputs.pastKey ? seqOffset('bhsd', inputs.pastKey.shape, KVH, d).at : undefined;
    const pvo = inputs.pastValue ? seqOffset('bhsd', inputs.pastValue.shape, KVH, dv).at : undefined;
    if (inputs.pastValue && inputs.pastValue.shape[2] !== past) throw new Error(`pastKey has ${past} positions but pastValue has ${inputs.pastValue.shape[2]}`);
    const nk = past + nkNew;
    const kvLength = inputs.kvLength;
    if (kvLength !== undefined && kvLength.length !== batch) throw new Error(`kvLength needs ${batch} entries`);
    const bias = inputs.bias ? biasReader(inputs.bias, [batch, H, nq, nk]) : undefined;
    // a key bias (ALiBi as slope · j, a key-padding mask): the same along the query axis
    const keyBias = inputs.bias !== undefined && isKeyBias(inputs.bias);
    const perHead = bias !== undefined || isDataDependent(spec);
    const direct = inPlace && inputs.pastKey === undefined;
    const shape = direct ? directShape : packedShape;
    const code = codeFor(shape);

    const nqBlocks = Math.ceil(nq / BQ);
    const nkBlocks = Math.ceil(nk / BK);
    const nqPad = nqBlocks * BQ;
    const nkPad = nkBlocks * BK;

    // plan: per (b, h, query block) the non-empty key blocks; a mask tile for each Partial one, filled
    // once memory is laid out from the kept key ranges of its rows (rowKeys)
    const tiles: TileDesc[] = [];
    // with a key bias, the tile of a key block every row keeps whole is the bias row repeated: one per (b, h, kb)
    const sharedTiles = new Map<number, number>();
    const wholeRows: IntervalSet[] = Array.from({ length: BQ }, () => intervals.range(0, nk, nk));
    const dimsOf = (b: number): MaskDims => ({ nq, nk, past: inputs.pastKey !== undefined ? past : kvLength !== undefined ? kvLength[b]! - nq : 0 });
    const validOf = (b: number) => (kvLength === undefined ? nk : kvLength[b]!);
    /** Per (b, h, r): pairs (key block, tile index + 1 or 0), and their count. */
    const planLists = (which: MaskSpec, headDependent: boolean): BlockLists => {
      const plans: Int32Array[] = [];
      let total = 0;
      for (let b = 0; b < batch; b++) {
        const dims = dimsOf(b);
        const valid = validOf(b);
        let shared: Int32Array[] | undefined;
        for (let h = 0; h < H; h++) {
          if (!headDependent && shared) {
            plans.push(...shared);
            for (const pl of shared) total += pl.length / 2;
            continue;
          }
          const resolve = runOptions.resolver?.(b, h);
          const rowsOfHead: Int32Array[] = [];
          for (let r = 0; r < nqBlocks; r++) {
            const cls = classifyBlockRow(which, r, BQ, BK, dims, resolve);
            const list: number[] = [];
            let rowSets: IntervalSet[] | undefined;
            for (let kb = 0; kb < nkBlocks; kb++) {
              let c: number = cls[kb]!;
              if (c === BlockClass.Empty || kb * BK >= valid) continue;
              if (c === BlockClass.Full && keyBias && (kb + 1) * BK <= valid) {
                const key = (b * H + h) * nkBlocks + kb;
                let t = sharedTiles.get(key);
                if (t === undefined) {
                  tiles.push({ b, h, kb, i0: 0, rowSets: wholeRows, valid });
                  sharedTiles.set(key, (t = tiles.length));
                }
                list.push(kb, t);
                continue;
              }
              if ((kb + 1) * BK > valid || bias !== undefined) c = BlockClass.Partial;
              if (c === BlockClass.Full) {
                list.push(kb, 0);
                continue;
              }
              rowSets ??= Array.from({ length: Math.min(BQ, nq - r * BQ) }, (_, ii) => rowKeys(which, r * BQ + ii, dims, resolve));
              tiles.push({ b, h, kb, i0: r * BQ, rowSets, valid });
              list.push(kb, tiles.length);
            }
            const pl = Int32Array.from(list);
            total += pl.length / 2;
            rowsOfHead.push(pl);
          }
          plans.push(...rowsOfHead);
          if (!headDependent) shared = rowsOfHead;
        }
      }
      return { plans, total };
    };
    // without a bias or data-dependent leaves the lists depend on the shapes alone: planned once, then reused
    const shapeKey = `${batch}|${nq}|${nk}|${past}|${inputs.pastKey !== undefined}|${kvLength === undefined ? '' : Array.from(kvLength).join(',')}`;
    const listKey = bias === undefined && !isDataDependent(spec) && !(guard && isDataDependent(guard.modelMask)) ? shapeKey : undefined;
    let sparsePlan: BlockLists;
    let basePlan: BlockLists | undefined;
    if (listKey !== undefined && listCache?.key === listKey) {
      tiles.push(...listCache.tiles);
      sparsePlan = listCache.sparse;
      basePlan = listCache.base;
    } else {
      sparsePlan = planLists(spec, perHead);
      basePlan = guard ? planLists(guard.modelMask, bias !== undefined || isDataDependent(guard.modelMask)) : undefined;
      if (listKey !== undefined) listCache = { key: listKey, sparse: sparsePlan, base: basePlan, tiles: tiles.slice() };
    }
    const plans = sparsePlan.plans;
    const blocksTotal = sparsePlan.total + (basePlan?.total ?? 0);
    // the dropped segments depend on the data only through a bias or data-dependent leaves: else reuse them
    const guardKey = guard && !perHead ? shapeKey : undefined;
    const guardPlan = guard
      ? guardKey !== undefined && guardPlanCache?.key === guardKey
        ? guardPlanCache.plan
        : planGuard(guard, { spec, batch, H, nq, nqBlocks, BQ, dimsOf, validOf, perHead, resolver: runOptions.resolver, bias, keyBias })
      : undefined;
    if (guardKey !== undefined && guardPlan) guardPlanCache = { key: guardKey, plan: guardPlan };
    const partialTotal = tiles.length;

    // memory layout
    let top = 16; // counter at 0
    const alloc = (bytes: number) => {
      const at = top;
      top = align16(top + bytes);
      return at;
    };
    type Region = { at: number; floats: number; pad: number };
    const region = (floats: number, pad: number): Region => ({ at: alloc((floats + pad) * 4), floats, pad });
    // in place: the tensors as given, each followed by zeros covering the rows a last partial block reads
    // past its end; packed: [b][head][seqPad][width] with zero-padded rows
    let qReg: Region, kReg: Region, vReg: Region, outReg: Region;
    if (direct) {
      const padQ = BQ * st.q + 8;
      const padKV = BK * Math.max(st.k, st.v) + 8;
      qReg = region(qData.length, packed ? Math.max(padQ, padKV) : padQ);
      kReg = packed ? qReg : region(kData.length, padKV);
      vReg = packed ? qReg : region(vData.length, padKV);
      outReg = region(batch * nq * H * dv, 0);
    } else {
      qReg = region(batch * H * nqPad * DP, 0);
      kReg = region(batch * KVH * nkPad * DP, 0);
      vReg = region(batch * KVH * nkPad * DVP, 0);
      outReg = region(batch * H * nqPad * DVP, 0);
    }
    const tileBytes = BQ * BK * 4;
    const tileReg = alloc(tiles.length * tileBytes);
    const blockReg = alloc(blocksTotal * 12);
    const nItems = batch * H * nqBlocks;
    const itemWords = guard ? GUARD_ITEM_WORDS : ITEM_WORDS;
    const itemReg = alloc(nItems * itemWords * 4);
    // on a pool the WebAssembly guard's summaries are built by the workers, before the items (runPool)
    const deferSummaries = onPool && 'bytes' in code;
    const guardMem = guardPlan ? layoutGuard(guardPlan, alloc, shape.dPad, KVH, nItems, BQ, deferSummaries) : undefined;
    const scratchStride = align16(guard ? guardScratch(shape, nkBlocks).bytes : scratchBytes(shape));
    const scratch = alloc(threads * scratchStride);
    workspace.ensure(top);
    const F = new Float32Array(workspace.memory.buffer);
    const I = new Int32Array(workspace.memory.buffer);

    // row addresses (bytes) of Q, K, V, Y
    let qRow: SeqOffset, kRow: SeqOffset, vRow: SeqOffset, yRow: SeqOffset;
    if (direct) {
      F.set(qData, qReg.at >> 2);
      F.fill(0, (qReg.at >> 2) + qReg.floats, (qReg.at >> 2) + qReg.floats + qReg.pad);
      if (!packed) {
        for (const [reg, data] of [[kReg, kData], [vReg, vData]] as const) {
          F.set(data, reg.at >> 2);
          F.fill(0, (reg.at >> 2) + reg.floats, (reg.at >> 2) + reg.floats + reg.pad);
        }
      }
      const yo = seqOffset(packed ? 'bsd' : p.layout, p.layout === 'bhsd' ? [batch, H, nq, dv] : p.layout === 'bshd' ? [batch, nq, H, dv] : [batch, nq, H * dv], H, dv);
      qRow = (b, h, s) => qReg.at + qo.at(b, h, s) * 4;
      kRow = (b, g, j) => kReg.at + ko.at(b, g, j) * 4;
      vRow = (b, g, j) => vReg.at + vo.at(b, g, j) * 4;
      yRow = (b, h, s) => outReg.at + yo.at(b, h, s) * 4;
    } else {
      F.fill(0, qReg.at >> 2, (vReg.at >> 2) + vReg.floats);
      qRow = (b, h, s) => qReg.at + ((b * H + h) * nqPad + s) * DP * 4;
      kRow = (b, g, j) => kReg.at + ((b * KVH + g) * nkPad + j) * DP * 4;
      vRow = (b, g, j) => vReg.at + ((b * KVH + g) * nkPad + j) * DVP * 4;
      yRow = (b, h, s) => outReg.at + ((b * H + h) * nqPad + s) * DVP * 4;
      for (let b = 0; b < batch; b++) {
        for (let h = 0; h < H; h++) {
          for (let s = 0; s < nq; s++) {
            const src = qo.at(b, h, s);
            const dst = qRow(b, h, s) >> 2;
            for (let c = 0; c < d; c++) F[dst + c] = qData[src + c]!;
          }
        }
        for (let g = 0; g < KVH; g++) {
          for (let j = 0; j < nk; j++) {
            const fromPast = j < past;
            const kSrc = fromPast ? pk! : kData;
            const ks = fromPast ? pko!(b, g, j) : ko.at(b, g, j - past);
            const kdst = kRow(b, g, j) >> 2;
            for (let c = 0; c < d; c++) F[kdst + c] = kSrc[ks + c]!;
            const vSrc = fromPast ? pv! : vData;
            const vs = fromPast ? pvo!(b, g, j) : vo.at(b, g, j - past);
            const vdst = vRow(b, g, j) >> 2;
            for (let c = 0; c < dv; c++) F[vdst + c] = vSrc[vs + c]!;
          }
        }
      }
    }
    // padding keys and values (at or past kvLength[b]: a KV cache's unwritten slots may hold anything) zeroed in the
    // workspace, the caller's arrays untouched: a partial block reads them and masks them after (0 · NaN = NaN in P V)
    if (kvLength !== undefined) {
      for (let b = 0; b < batch; b++) {
        for (let g = 0; g < KVH; g++) {
          for (let j = Math.max(0, validOf(b)); j < nk; j++) {
            F.fill(0, kRow(b, g, j) >> 2, (kRow(b, g, j) >> 2) + d);
            F.fill(0, vRow(b, g, j) >> 2, (vRow(b, g, j) >> 2) + dv);
          }
        }
      }
    }
    const guardLists = guardPlan && guardMem
      ? writeGuard(F, I, guardPlan, guardMem, { batch, H, KVH, nqBlocks, d, dv, dPad: shape.dPad, kvHeadOf: (h) => kvHeadOf(p, h) }, (b, g, j) => kRow(b, g, j) >> 2, (b, g, j) => vRow(b, g, j) >> 2, deferSummaries ? 'deferred' : 'bytes' in code ? guardedExports(workspace.memory, code) : undefined)
      : undefined;
    // mask tiles: MASKED, then 0 (or the bias) on the kept keys of each row
    tiles.forEach((t, k) => {
      const base = (tileReg + k * tileBytes) >> 2;
      F.fill(MASKED, base, base + BQ * BK);
      const j0 = t.kb * BK;
      const j1 = Math.min(j0 + BK, t.valid);
      t.rowSets.forEach((set, ii) => {
        const row = base + ii * BK - j0;
        for (let e = 0; e < set.length; e += 2) {
          const a = Math.max(set[e]!, j0);
          const z = Math.min(set[e + 1]!, j1);
          if (a >= z) continue;
          if (!bias) F.fill(0, row + a, row + z);
          else for (let j = a; j < z; j++) F[row + j] = bias(t.b, t.h, t.i0 + ii, j);
        }
      });
    });

    // block lists and work items, largest first
    const order: { at: number; cost: number; q: number; out: number; rows: number; base: number; nBase: number; idx: number; g: number; b: number }[] = [];
    let bp = blockReg;
    let planIdx = 0;
    const writeList = (pl: Int32Array, b: number, g: number) => {
      const at = bp;
      for (let e = 0; e < pl.length; e += 2) {
        const kb = pl[e]!;
        const t = pl[e + 1]!;
        I[(bp >> 2) + 0] = kRow(b, g, kb * BK);
        I[(bp >> 2) + 1] = vRow(b, g, kb * BK);
        I[(bp >> 2) + 2] = t === 0 ? 0 : tileReg + (t - 1) * tileBytes;
        bp += 12;
      }
      return at;
    };
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < H; h++) {
        const g = kvHeadOf(p, h);
        for (let r = 0; r < nqBlocks; r++) {
          const idx = planIdx++;
          const pl = plans[idx]!;
          const at = writeList(pl, b, g);
          const bpl = basePlan?.plans[idx];
          const base = bpl ? writeList(bpl, b, g) : 0;
          const nBase = bpl ? bpl.length / 2 : 0;
          // a guarded item may run its sparse list, then the whole block again: both count towards its cost
          const cost = pl.length / 2 + (guard ? (guardLists!.entryCount[idx]! > 0 ? 1 : 0) : 0);
          order.push({ at, cost, q: qRow(b, h, r * BQ), out: yRow(b, h, r * BQ), rows: Math.min(BQ, nq - r * BQ), base, nBase, idx, g, b });
        }
      }
    }
    order.sort((x, y) => y.cost - x.cost);
    order.forEach((it, k) => {
      const x = (itemReg >> 2) + itemWords * k;
      I[x] = it.q;
      I[x + 1] = it.out;
      I[x + 2] = it.at;
      I[x + 3] = (plans[it.idx]!.length / 2) | 0;
      I[x + 4] = it.rows;
      I[x + 5] = it.cost;
      if (guardLists && guardMem) {
        I[x + GI.base] = it.base;
        I[x + GI.nBase] = it.nBase;
        I[x + GI.entries] = guardLists.entryAt[it.idx]!;
        I[x + GI.nEntries] = guardLists.entryCount[it.idx]!;
        I[x + GI.cert] = guardMem.cert + it.idx * BQ * 4;
        I[x + GI.vRange] = guardMem.vRange + 4 * (it.b * KVH + it.g);
        I[x + GI.flagged] = 0;
        I[x + GI.recomputed] = 0;
        F[x + GI.coarseCount] = guardLists.coarse[2 * it.idx]!;
        F[x + GI.coarseBias] = guardLists.coarse[2 * it.idx + 1]!;
      }
    });

    const readGuard = guardMem
      ? (y: Float32Array): GuardedResult => {
          const Fo = new Float32Array(workspace.memory.buffer);
          const Io = new Int32Array(workspace.memory.buffer);
          const certificates = new Float32Array(batch * H * nq);
          const bounds = new Float32Array(batch * H * nq);
          let fallbackRows = 0;
          let recomputedRows = 0;
          order.forEach((it, k) => {
            const x = (itemReg >> 2) + itemWords * k;
            fallbackRows += Io[x + GI.flagged]!;
            recomputedRows += Io[x + GI.recomputed]!;
            const r = it.idx % nqBlocks;
            const bh = (it.idx - r) / nqBlocks;
            const R = Fo[Io[x + GI.vRange]! >> 2]!;
            for (let ii = 0; ii < it.rows; ii++) {
              const m = Fo[(guardMem.cert >> 2) + it.idx * BQ + ii]!;
              certificates[bh * nq + r * BQ + ii] = m;
              bounds[bh * nq + r * BQ + ii] = m * R;
            }
          });
          return { y, certificates, bounds, fallbackRows, recomputedRows, rows: batch * H * nq };
        }
      : undefined;
    const yLength = batch * H * nq * dv;
    const given = runOptions.output;
    if (given !== undefined && given.length !== yLength) throw new Error(`output needs ${yLength} floats, got ${given.length}`);
    const readOutput = () => {
      const Fo = new Float32Array(workspace.memory.buffer);
      const y = given ?? new Float32Array(yLength);
      if (direct) {
        y.set(Fo.subarray(outReg.at >> 2, (outReg.at >> 2) + outReg.floats));
        return y;
      }
      const yo = seqOffset(packed ? 'bsd' : p.layout, p.layout === 'bhsd' ? [batch, H, nq, dv] : p.layout === 'bshd' ? [batch, nq, H, dv] : [batch, nq, H * dv], H, dv);
      for (let b = 0; b < batch; b++) {
        for (let h = 0; h < H; h++) {
          for (let s = 0; s < nq; s++) {
            const src = yRow(b, h, s) >> 2;
            const dst = yo.at(b, h, s);
            for (let c = 0; c < dv; c++) y[dst + c] = Fo[src + c]!;
          }
        }
      }
      return y;
    };
    const summaryJob = guardMem && guardMem.nSummaryItems > 0 ? { items: guardMem.summaryItems, nItems: guardMem.nSummaryItems } : undefined;
    return { workspace, code, items: itemReg, itemWords, nItems, counter: 0, scratch, scratchStride, blocks: blocksTotal, partial: partialTotal, readOutput, ...(readGuard ? { readGuard } : {}), ...(summaryJob ? { summaryJob } : {}) };
  }

  function localAttend(memory: WebAssembly.Memory, code: KernelCode): AttendFn {
    let perMemory = instanceCache.get(memory);
    if (!perMemory) instanceCache.set(memory, (perMemory = new Map()));
    let fn = perMemory.get(code.key);
    if (!fn) {
      if ('bytes' in code) {
        const inst = new WebAssembly.Instance(moduleCache.get(code.key)!, { env: { memory } });
        const attend = inst.exports['attend'] as (q: number, o: number, b: number, n: number, s: number, rows: number) => void;
        fn = (_F, _I, q, o, b, n, s, rows) => attend(q, o, b, n, s, rows);
      } else {
        fn = jsCache.get(code.key)!;
      }
      perMemory.set(code.key, fn);
    }
    return fn;
  }

  const guardedInstances = new WeakMap<WebAssembly.Memory, Map<string, Record<string, unknown>>>();
  function guardedExports(memory: WebAssembly.Memory, code: KernelCode): { attendGuarded: (item: number, scratch: number) => void } & SummaryKernels {
    let perMemory = guardedInstances.get(memory);
    if (!perMemory) guardedInstances.set(memory, (perMemory = new Map()));
    let ex = perMemory.get(code.key);
    if (!ex) perMemory.set(code.key, (ex = new WebAssembly.Instance(moduleCache.get(code.key)!, { env: { memory } }).exports as Record<string, unknown>));
    return ex as unknown as { attendGuarded: (item: number, scratch: number) => void } & SummaryKernels;
  }

  function localGuarded(memory: WebAssembly.Memory, code: KernelCode): GuardedAttendFn {
    let perMemory = guardedInstanceCache.get(memory);
    if (!perMemory) guardedInstanceCache.set(memory, (perMemory = new Map()));
    let fn = perMemory.get(code.key);
    if (!fn) {
      if ('bytes' in code) {
        const attendGuarded = guardedExports(memory, code).attendGuarded;
        fn = (_F, _I, item, scratch) => attendGuarded(item, scratch);
      } else {
        fn = jsGuardedCache.get(code.key)!;
      }
      perMemory.set(code.key, fn);
    }
    return fn;
  }

  function runLocal(inputs: CpuAttentionInputs, runOptions: CpuRunOptions): Prepared {
    localWorkspace ??= new SharedWorkspace();
    const prep = prepare(inputs, localWorkspace, 1, runOptions);
    const memory = prep.workspace.memory;
    const F = new Float32Array(memory.buffer);
    const I = new Int32Array(memory.buffer);
    if (guard) {
      const attendGuarded = localGuarded(memory, prep.code);
      for (let k = 0; k < prep.nItems; k++) attendGuarded(F, I, prep.items + 4 * prep.itemWords * k, prep.scratch);
      return prep;
    }
    const attend = localAttend(memory, prep.code);
    for (let k = 0; k < prep.nItems; k++) {
      const x = (prep.items >> 2) + ITEM_WORDS * k;
      attend(F, I, I[x]!, I[x + 1]!, I[x + 2]!, I[x + 3]!, prep.scratch, I[x + 4]!);
    }
    return prep;
  }

  async function runPool(inputs: CpuAttentionInputs, pool: CpuWorkerPool, runOptions: CpuRunOptions): Promise<Prepared> {
    const prep = prepare(inputs, pool.workspace, pool.threads, runOptions, true);
    const job = { counter: prep.counter, scratch: prep.scratch, scratchStride: prep.scratchStride };
    // the guard's summaries first: every item's certificate reads them
    if (prep.summaryJob) await pool.run({ ...job, code: { ...prep.code, entry: 'summarizeItems' }, items: prep.summaryJob.items, itemWords: SUMMARY_ITEM_WORDS, nItems: prep.summaryJob.nItems });
    await pool.run({ ...job, code: prep.code, items: prep.items, itemWords: prep.itemWords, nItems: prep.nItems });
    return prep;
  }

  const guarded = (prep: Prepared): GuardedResult => {
    if (!prep.readGuard) throw new Error('runGuarded: this kernel was compiled without a guard (pass options.guard to compileAttention)');
    return prep.readGuard(prep.readOutput());
  };

  return {
    cacheKey,
    shape: mainShape,
    ...(options.guard ? { guard: guardMetadata(options.guard, BK) } : {}),
    run(inputs, runOptions = {}) {
      return runLocal(inputs, runOptions).readOutput();
    },
    async runParallel(inputs, pool, runOptions = {}) {
      return (await runPool(inputs, pool, runOptions)).readOutput();
    },
    runGuarded(inputs, runOptions = {}) {
      return guarded(runLocal(inputs, runOptions));
    },
    async runGuardedParallel(inputs, pool, runOptions = {}) {
      return guarded(await runPool(inputs, pool, runOptions));
    },
    planStats(inputs, runOptions = {}) {
      localWorkspace ??= new SharedWorkspace();
      const prep = prepare(inputs, localWorkspace, 1, runOptions);
      return { blocks: prep.blocks, partial: prep.partial };
    },
  };
}
