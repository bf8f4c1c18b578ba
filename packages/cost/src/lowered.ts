// The kernels onnxruntime runs for the non-dense forms @attnopt/passes emits (which form: the IR's
// loweringChoice, the rule the lowering itself uses):
//   banded:  queries in blocks of b; block r gathers (in granules of g keys) X extra rows (an empty-row key and
//            the E extra keys: sinks, global tokens) and the L = b + w keys of its band (both rounded up to g):
//            scores B·H·⌈nq/b⌉·b·(X + L), never nq x nk, plus a bias shared by the heads; global query rows dense.
//   blocks:  each query block of bq reads its m chosen key blocks of bk (GatherND): scores B·H·⌈nq/bq⌉·bq·m·bk;
//            top-k blocks adds the block scores (Quest bounds or block means) and a TopK.
//   lsh:     per round, Q and K hashed (MatMul by the rotations, ArgMax), sorted by bucket (TopK), gathered in
//            chunks of c; each chunk of queries scores its own and the previous key chunk: scores
//            B·H·rounds·⌈n/c⌉·c·2c; with several rounds a candidate test against each other round (dedup) and a
//            logsumexp merge.
//   nystrom: segment-mean landmarks (an m x n averaging MatMul), three softmax kernels (n·m, m·m, m·n), the
//            m x m pseudo-inverse by `steps` Newton–Schulz steps of 4 float64 MatMuls, F (A⁺ (G V)).
// Index arithmetic (Shape, Gather, Range, Min/Max clamps) is O(n) int64 work: counted as small kernels.

import { absoluteReach, type AttentionParams, bandGranule, type KeySupport, type Lsh, type MaskSpec } from '@attnopt/ir';
import { type OpWork, work } from './ops.js';
import type { Extent } from './shape.js';
import { maskOps, type UnfusedOptions } from './unfused.js';

/** Sizes of the banded form for a call: query blocks, band width, extra rows, global rows. */
export interface BandedShape {
  readonly blockSize: number;
  readonly blocks: number;
  /** Padded queries (blocks · blockSize). */
  readonly paddedQueries: number;
  /** Keys of one block's band (b + hi - lo rounded up to the gather granule), 0 without a band. */
  readonly band: number;
  /** Extra rows every block reads: the empty-row key and the extra keys, in whole granules. */
  readonly extra: number;
  readonly globalRows: number;
  /** Blocks whose bias is computed from the spec at run time (head and tail; all with kvLength). */
  readonly edgeBlocks: number;
  /** Scores per head: paddedQueries · (band + extra) + globalRows · nk. */
  readonly scores: number;
}

export function bandedShape(support: KeySupport, blockSize: number, nq: number, nk: number, spec?: MaskSpec, kvLength = false): BandedShape {
  const g = bandGranule(blockSize);
  const blocks = Math.ceil(nq / blockSize);
  const paddedQueries = blocks * blockSize;
  const band = support.lo <= support.hi ? Math.ceil((blockSize + support.hi - support.lo) / g) * g : 0;
  const extra = Math.ceil((support.extra.length + 1) / g) * g;
  const globalRows = support.globalQueries.length;
  const reach = spec ? absoluteReach(spec) : Math.max(0, ...support.extra.map((e) => e + 1));
  const head = band > 0 ? Math.ceil(Math.max(0, reach - Math.min(support.lo, 0)) / blockSize) : 0;
  const tail = band > 0 ? Math.ceil(Math.max(0, band - blockSize + Math.max(support.hi, 0)) / blockSize) + 1 : 0;
  const edgeBlocks = band === 0 ? 0 : kvLength ? blocks : Math.min(blocks, head + tail);
  return { blockSize, blocks, paddedQueries, band, extra, globalRows, edgeBlocks, scores: paddedQueries * (band + extra) + globalRows * nk };
}

const small = (op: string, what: string, bytes: number): OpWork => work(op, what, { bytes });

/** Score-side kernels shared by the banded and block forms: scale / softcap over `s` scores. */
function scoreOps(p: AttentionParams, E: number, s: number, o: UnfusedOptions, what: string): OpWork[] {
  const ops: OpWork[] = [];
  if (o.graphOptimization !== 'all') ops.push(work('Mul', `${what} scale`, { bytes: 2 * E * s }));
  if (p.softcap > 0) for (const op of ['Div', 'Tanh', 'Mul']) ops.push(work(op, `${what} softcap`, { bytes: 2 * E * s }));
  return ops;
}

/** The kernels of the banded lowering (bandedAttention in @attnopt/passes). */
export function bandedOps(p: AttentionParams, spec: MaskSpec, support: KeySupport, blockSize: number, x: Extent, o: UnfusedOptions): OpWork[] {
  const { B, H, d, dv, nq, nk, E } = x;
  const sh = bandedShape(support, blockSize, nq, nk, spec, o.kvLength);
  const { blocks: nB, paddedQueries: nqp, band: L, extra: X, globalRows: G, edgeBlocks: m } = sh;
  const Ex = support.extra.length;
  const BH = B * H;
  const W = L + X;
  const Sw = BH * nqp * W;
  const biasB = o.kvLength ? B : 1; // the bias is shared by the heads (and the batch without kvLength)
  const ops: OpWork[] = [];
  // lengths, offsets, block counts, padding, granule indices: ~40 small int64 kernels
  for (let k = 0; k < 40; k++) ops.push(small('Shape/Gather/Sub', 'band lengths, offsets and granule indices', 8));
  ops.push(work('Pad', 'queries to whole blocks', { bytes: E * BH * (nq + nqp) * d }));
  // K'' and V'': the extra rows, then the keys shifted to a granule (one Concat each)
  ops.push(work('Gather', 'extra keys', { bytes: 2 * E * BH * Ex * d }), work('Gather', 'extra values', { bytes: 2 * E * BH * Ex * dv }));
  if (L > 0) {
    ops.push(work('Concat', 'keys with extra rows', { bytes: 2 * E * BH * (nk + X + 8) * d }), work('Concat', 'values with extra rows', { bytes: 2 * E * BH * (nk + X + 8) * dv }));
  }
  const windows = L > 0 ? nB : 1;
  ops.push(work('Gather', 'key windows (granules)', { bytes: 2 * E * BH * windows * W * d }), work('Gather', 'value windows (granules)', { bytes: 2 * E * BH * windows * W * dv }));
  if (o.graphOptimization !== 'all') ops.push(work('Transpose', 'key windows ᵀ', { bytes: 2 * E * BH * windows * W * d }));
  ops.push(work('MatMul', 'band scores Q Kᵀ', { flops: 2 * Sw * d, bytes: E * (BH * nqp * d + BH * windows * W * d + Sw) }));
  ops.push(...scoreOps(p, E, Sw, o, 'band'));
  // the bias [nB, b, W] (per batch with kvLength): extra columns from the spec for every block, the band's
  // constant pattern expanded with its edge blocks from the spec scattered in, the empty-row key
  if (Ex > 0) {
    const se = biasB * nqp * Ex;
    ops.push(...maskOps(spec, se).ops);
    for (const op of ['Less', 'Not', 'Add', 'Less', 'And', 'Not', 'And', 'And']) ops.push(small(op, 'extra keep', 3 * se));
    ops.push(work('Expand', 'extra keep', { bytes: 2 * se }), work('Where', 'extra bias', { bytes: se + E * se }));
    ops.push(work('Exp', 'extra kept', { bytes: 2 * E * se }), work('MatMul', 'kept keys per row (extra)', { flops: 2 * se, bytes: E * (se + biasB * nqp) }));
  }
  if (L > 0) {
    const sb = biasB * m * blockSize * L;
    ops.push(...maskOps(spec, sb).ops);
    for (const op of ['Add', 'Add', 'Less', 'Not', 'Less', 'And', 'And', 'And']) ops.push(small(op, 'edge blocks keep', 3 * sb));
    ops.push(work('Where', 'edge blocks bias', { bytes: sb + E * sb }));
    const full = biasB * nqp * L;
    if (!o.kvLength) ops.push(work('Expand', 'band pattern', { bytes: E * full }), work('ScatterND', 'edge blocks into the pattern', { bytes: 2 * E * full }));
    ops.push(work('Exp', 'band kept', { bytes: 2 * E * full }), work('MatMul', 'kept keys per row (band)', { flops: 2 * full, bytes: E * (full + biasB * nqp) }));
  }
  ops.push(small('Where', 'empty-row key bias', 3 * E * biasB * nqp), work('Concat', 'bias', { bytes: 2 * E * biasB * nqp * W }));
  ops.push(work('Add', 'logits + bias', { bytes: E * (2 * Sw + biasB * nqp * W) }));
  ops.push(work('Softmax', 'probabilities', { softmaxFlops: 5 * Sw, softmaxElements: Sw, bytes: 2 * E * Sw }));
  ops.push(work('MatMul', 'band P V', { flops: 2 * Sw * dv, bytes: E * (Sw + BH * windows * W * dv + BH * nqp * dv) }));
  ops.push(small('Reshape', 'unblock', 0), work('Slice', 'drop padded queries', { bytes: E * BH * (nqp + nq) * dv }));
  if (G > 0) {
    const Sg = BH * G * nk;
    ops.push(work('Gather', 'global query rows', { bytes: 2 * E * BH * G * d }));
    if (o.graphOptimization !== 'all') ops.push(work('Transpose', 'Kᵀ (global rows)', { bytes: 2 * E * BH * nk * d }));
    ops.push(work('MatMul', 'global scores', { flops: 2 * Sg * d, bytes: E * (BH * G * d + BH * nk * d + Sg) }));
    ops.push(...scoreOps(p, E, Sg, o, 'global'));
    ops.push(...maskOps(spec, G * nk).ops);
    ops.push(work('Where', 'global masked logits', { bytes: G * nk + 2 * E * Sg }));
    ops.push(work('Softmax', 'global probabilities', { softmaxFlops: 5 * Sg, softmaxElements: Sg, bytes: 2 * E * Sg }));
    ops.push(work('IsNaN', 'global fully masked', { bytes: E * Sg + Sg }), work('Where', 'global zero rows', { bytes: Sg + 2 * E * Sg }));
    ops.push(work('MatMul', 'global P V', { flops: 2 * Sg * dv, bytes: E * (Sg + BH * nk * dv + BH * G * dv) }));
    for (const op of ['Range', 'Equal', 'Cast', 'ArgMax', 'Gather', 'Equal']) ops.push(small(op, 'place global rows', 8 * nq * G));
    ops.push(work('Gather', 'global rows per query', { bytes: 2 * E * BH * nq * dv }));
    ops.push(work('Where', 'global rows over banded', { bytes: nq + 3 * E * BH * nq * dv }));
  }
  return ops;
}

/** Sizes of the block-gathered form: query blocks of bq, m chosen key blocks of bk per query block. */
export function blockGatherShape(spec: Extract<MaskSpec, { kind: 'blocks' | 'topkBlocks' }>, nq: number, nk: number) {
  const bq = spec.kind === 'blocks' ? spec.blockQ : spec.block;
  const bk = spec.kind === 'blocks' ? spec.blockK : spec.block;
  const queryBlocks = Math.ceil(nq / bq);
  const keyBlocks = Math.ceil(nk / bk);
  const m = spec.kind === 'blocks' ? Math.max(1, ...spec.rows.map((r) => r.length)) : Math.min(spec.k, keyBlocks);
  return { bq, bk, queryBlocks, keyBlocks, m, paddedQueries: queryBlocks * bq, paddedKeys: keyBlocks * bk, scores: queryBlocks * bq * m * bk };
}

/** The kernels of the block-gathered lowering (blockGatherAttention in @attnopt/passes), selection included. */
export function blockGatherOps(p: AttentionParams, spec: Extract<MaskSpec, { kind: 'blocks' | 'topkBlocks' }>, x: Extent, o: UnfusedOptions): OpWork[] {
  const { B, H, d, dv, nq, nk, E } = x;
  const { bk, queryBlocks: nQB, keyBlocks: nKB, m, paddedQueries: nqp, paddedKeys: nkp } = blockGatherShape(spec, nq, nk);
  const BH = B * H;
  const W = m * bk;
  const S = BH * nqp * W;
  const ops: OpWork[] = [];
  for (let k = 0; k < 12; k++) ops.push(small('Shape/Gather/Div', 'block counts and padding', 8));
  ops.push(work('Pad', 'queries to whole blocks', { bytes: E * BH * (nq + nqp) * d }));
  ops.push(work('Pad', 'keys to whole blocks', { bytes: E * BH * (nk + nkp) * d }));
  ops.push(work('Pad', 'values to whole blocks', { bytes: E * BH * (nk + nkp) * dv }));
  if (spec.kind === 'blocks') {
    for (const op of ['Range', 'Min', 'Gather', 'Gather', 'Concat', 'Expand']) ops.push(small(op, 'block table', 8 * nQB * m * (op === 'Expand' ? BH : 1)));
  } else if (spec.score === 'quest') {
    const nb = BH * nqp * nKB;
    ops.push(work('Pad', 'keys (+inf) for block min', { bytes: E * BH * (nk + nkp) * d }), work('Pad', 'keys (-inf) for block max', { bytes: E * BH * (nk + nkp) * d }));
    ops.push(work('ReduceMin', 'key block min', { bytes: E * BH * (nkp + nKB) * d }), work('ReduceMax', 'key block max', { bytes: E * BH * (nkp + nKB) * d }));
    ops.push(work('Relu', 'q+', { bytes: 2 * E * BH * nqp * d }), work('Sub', 'q-', { bytes: 3 * E * BH * nqp * d }));
    ops.push(work('MatMul', 'bound q+ · kmax', { flops: 2 * nb * d, bytes: E * (BH * nqp * d + BH * nKB * d + nb) }));
    ops.push(work('MatMul', 'bound q- · kmin', { flops: 2 * nb * d, bytes: E * (BH * nqp * d + BH * nKB * d + nb) }));
    ops.push(work('Add', 'Quest bound', { bytes: 3 * E * nb }), work('Where', 'real queries', { bytes: 2 * E * nb + nqp }));
    ops.push(work('ReduceMax', 'block score (max over the block)', { bytes: E * (nb + BH * nQB * nKB) }));
  } else {
    ops.push(work('Where', 'real queries', { bytes: 2 * E * BH * nqp * d + nqp }), work('ReduceSum', 'query block sums', { bytes: E * BH * (nqp + nQB) * d }));
    ops.push(work('ReduceSum', 'key block sums', { bytes: E * BH * (nkp + nKB) * d }));
    ops.push(work('MatMul', 'block means', { flops: 2 * BH * nQB * nKB * d, bytes: E * BH * ((nQB + nKB) * d + nQB * nKB) }));
  }
  if (spec.kind === 'topkBlocks' && spec.causal !== undefined) {
    ops.push(work('Where', 'future key blocks ranked last', { bytes: 2 * E * BH * nQB * nKB + nQB * nKB }));
  }
  if (spec.kind === 'topkBlocks') {
    ops.push(work('TopK', `keep ${spec.k} blocks`, { otherOps: BH * nQB * nKB * Math.log2(Math.max(2, nKB)), bytes: E * BH * nQB * nKB + 8 * BH * nQB * m }));
  }
  ops.push(small('Min', 'clamp blocks', 16 * BH * nQB * m), small('Unsqueeze', 'GatherND indices', 0));
  ops.push(work('GatherND', 'chosen key blocks', { bytes: 2 * E * BH * nQB * W * d }));
  ops.push(work('GatherND', 'chosen value blocks', { bytes: 2 * E * BH * nQB * W * dv }));
  if (o.graphOptimization !== 'all') ops.push(work('Transpose', 'gathered Kᵀ', { bytes: 2 * E * BH * nQB * W * d }));
  ops.push(work('MatMul', 'block scores Q Kᵀ', { flops: 2 * S * d, bytes: E * (BH * nqp * d + BH * nQB * W * d + S) }));
  ops.push(...scoreOps(p, E, S, o, 'block'));
  const keys = BH * nQB * W; // key index per gathered column
  ops.push(small('Mul', 'key indices', 16 * keys), small('Add', 'key indices', 16 * keys), small('Less', 'key < nk', 9 * keys));
  if (spec.kind === 'blocks') ops.push(small('Expand', 'valid slots', 2 * nQB * W), work('And', 'keep', { bytes: 3 * keys }));
  if (o.kvLength) ops.push(small('Less', 'kv length', 9 * keys), work('And', 'keep & kv length', { bytes: 3 * keys }));
  ops.push(work('Where', 'masked logits', { bytes: keys + 2 * E * S }));
  ops.push(work('Softmax', 'probabilities', { softmaxFlops: 5 * S, softmaxElements: S, bytes: 2 * E * S }));
  ops.push(work('IsNaN', 'fully masked rows', { bytes: E * S + S }), work('Where', 'zero fully masked rows', { bytes: S + 2 * E * S }));
  ops.push(work('MatMul', 'P V', { flops: 2 * S * dv, bytes: E * (S + BH * nQB * W * dv + BH * nqp * dv) }));
  ops.push(small('Reshape', 'unblock', 0), work('Slice', 'drop padded queries', { bytes: E * BH * (nqp + nq) * dv }));
  return ops;
}

/** Sizes of the chunked LSH form: rounds, chunks of c, padded rows, scores per batch and head. */
export function lshChunkedShape(leaf: Lsh, n: number) {
  const chunks = Math.ceil(n / leaf.chunk);
  const padded = chunks * leaf.chunk;
  return { rounds: leaf.hashes, chunk: leaf.chunk, chunks, padded, keysPerQuery: leaf.hashes * 2 * leaf.chunk, scores: leaf.hashes * padded * 2 * leaf.chunk };
}

/**
 * The kernels of the sorted, chunked LSH lowering (lshChunkedAttention in @attnopt/passes) for a spec inside
 * one chunked leaf (`rest`: its index terms, read on the candidate pairs). Self-attention: n = nq = nk.
 */
export function lshChunkedOps(p: AttentionParams, leaf: Lsh, rest: MaskSpec, x: Extent, o: UnfusedOptions): OpWork[] {
  const { B, H, d, dv, nq: n, E } = x;
  const BH = B * H;
  const { rounds: R, chunk: c, padded: np, scores } = lshChunkedShape(leaf, n);
  const half = leaf.buckets / 2;
  const S = BH * scores;
  const ops: OpWork[] = [];
  for (let k = 0; k < 8; k++) ops.push(small('Shape/Gather/Div', 'lengths and chunk counts', 8));
  for (const side of ['Q', 'K']) {
    ops.push(work('MatMul', `${side} rotations (${R} rounds)`, { flops: 2 * BH * R * n * d * half, bytes: E * (BH * n * d + R * d * half + BH * R * n * half) }));
    ops.push(work('Neg', `${side} -xR`, { bytes: 2 * E * BH * R * n * half }), work('Concat', `${side} [xR; -xR]`, { bytes: 4 * E * BH * R * n * half }));
    ops.push(work('ArgMax', `${side} buckets`, { bytes: 2 * E * BH * R * n * half + 8 * BH * R * n }));
    ops.push(small('Mul', `${side} sort keys`, 16 * BH * R * n), small('Add', `${side} sort keys`, 24 * BH * R * n));
    ops.push(work('TopK', `${side} sort by (bucket, index)`, { otherOps: BH * R * n * Math.log2(Math.max(2, n)), bytes: 8 * 3 * BH * R * n }));
    ops.push(small('ScatterElements', `${side} inverse permutation`, 8 * 3 * BH * R * n), small('Pad', `${side} rows to whole chunks`, 16 * BH * R * np));
  }
  ops.push(small('Pad/Slice/Concat', 'previous key chunk indices', 8 * 5 * BH * R * np), small('Max', 'clamp row indices', 8 * 3 * BH * R * np * 3));
  ops.push(work('GatherND', 'sorted query chunks', { bytes: 2 * E * BH * R * np * d }));
  ops.push(work('GatherND', 'sorted key windows', { bytes: 2 * E * BH * R * np * 2 * d }));
  ops.push(work('GatherND', 'sorted value windows', { bytes: 2 * E * BH * R * np * 2 * dv }));
  if (o.graphOptimization !== 'all') ops.push(work('Transpose', 'key windows ᵀ', { bytes: 2 * E * BH * R * np * 2 * d }));
  ops.push(work('MatMul', 'chunk scores Q Kᵀ', { flops: 2 * S * d, bytes: E * (BH * R * np * d + BH * R * np * 2 * d + S) }));
  ops.push(...scoreOps(p, E, S, o, 'chunk'));
  ops.push(small('Less', 'key padding', 9 * S), small('Not', 'key padding', 2 * S));
  ops.push(...maskOps(rest, S).ops);
  if (o.kvLength) ops.push(small('Less', 'kv length', 9 * S), work('And', 'keep & kv length', { bytes: 3 * S }));
  ops.push(work('And', 'keep', { bytes: 3 * S }));
  if (R > 1) {
    // per other round (shift s = 1 .. R - 1): its chunk ids at this round's sorted rows, two compares over [c, 2c]
    ops.push(small('Div', 'chunk ids', 8 * 2 * BH * R * n));
    for (let s = 1; s < R; s++) {
      ops.push(small('Gather', 'chunk ids of round r + s', 8 * 2 * BH * R * n));
      ops.push(work('GatherND', 'query chunk ids', { bytes: 16 * BH * R * np }), work('GatherND', 'key chunk ids', { bytes: 16 * BH * R * np * 2 }));
      ops.push(work('Equal', 'same chunk', { bytes: S }), work('Equal', 'previous chunk', { bytes: S }), work('Or', 'candidate', { bytes: 3 * S }));
    }
    if (R === 2) ops.push(work('Sub', 'logits - log 2', { bytes: 2 * E * S }), work('Where', 'dedup logits', { bytes: S + 3 * E * S }));
    else {
      for (let s = 1; s < R; s++) ops.push(work('Cast', 'candidate', { bytes: (1 + E) * S }), work('Add', 'rounds per pair', { bytes: 3 * E * S }));
      ops.push(work('Log', 'log rounds', { bytes: 2 * E * S }), work('Sub', 'dedup logits', { bytes: 3 * E * S }));
    }
  }
  ops.push(work('Where', 'masked logits', { bytes: S + 2 * E * S }));
  ops.push(work('Softmax', 'probabilities with logsumexp (ReduceMax, Sub, Exp, ReduceSum, Div)', { softmaxFlops: 5 * S, softmaxElements: S, bytes: 6 * E * S }));
  ops.push(work('IsNaN', 'empty rows', { bytes: E * S + S }), work('Where', 'zero empty rows', { bytes: S + 2 * E * S }));
  ops.push(work('MatMul', 'P V', { flops: 2 * S * dv, bytes: E * (S + BH * R * np * 2 * dv + BH * R * np * dv) }));
  ops.push(work('GatherND', 'outputs back to query order', { bytes: 2 * E * BH * R * n * dv }));
  if (R > 1) {
    for (const op of ['Add', 'Log', 'GatherND', 'ReduceMax', 'Sub', 'Exp', 'ReduceSum']) ops.push(small(op, 'round weights (logsumexp)', 2 * E * BH * R * n));
    ops.push(work('Mul', 'weighted round outputs', { bytes: 3 * E * BH * R * n * dv }), work('ReduceSum', 'merge rounds', { bytes: E * BH * (R + 1) * n * dv }));
    ops.push(work('Div', 'normalize', { bytes: 3 * E * BH * n * dv }), work('IsNaN', 'empty rows', { bytes: (E + 1) * BH * n * dv }), work('Where', 'zero empty rows', { bytes: 3 * E * BH * n * dv }));
  }
  return ops;
}

/** Newton–Schulz steps of the Nystrom pseudo-inverse the lowering emits (NYSTROM_PINV_STEPS in @attnopt/passes). */
export const NYSTROM_LOWERED_STEPS = 28;

/** The kernels of the Nystrom lowering (nystromAttention in @attnopt/passes): m = min(landmarks, nq, nk). */
export function nystromOps(landmarks: number, x: Extent, steps = NYSTROM_LOWERED_STEPS): OpWork[] {
  const { B, H, d, dv, nq, nk, E } = x;
  const BH = B * H;
  const m = Math.min(landmarks, nq, nk);
  const mm = (what: string, rows: number, inner: number, cols: number, e = E): OpWork =>
    work('MatMul', what, { flops: 2 * BH * rows * inner * cols, bytes: e * BH * (rows * inner + inner * cols + rows * cols) });
  const softmax = (what: string, elements: number, e = E): OpWork => work('Softmax', what, { softmaxFlops: 5 * elements, softmaxElements: elements, bytes: 2 * e * elements });
  const ops: OpWork[] = [];
  for (const op of ['Range', 'Div', 'Less', 'Not', 'Less', 'And', 'Cast', 'Div']) ops.push(small(op, 'segment averaging matrices', (8 + E) * m * (nq + nk)));
  ops.push(mm('query landmarks (segment means)', m, nq, d), mm('key landmarks (segment means)', m, nk, d));
  ops.push(mm('F: Q K̃ᵀ', nq, d, m), work('Mul', 'F scale', { bytes: 2 * E * BH * nq * m }), softmax('F', BH * nq * m));
  ops.push(work('Cast', 'landmarks to float64', { bytes: (E + 8) * 2 * BH * m * d }));
  ops.push(mm('A: Q̃ K̃ᵀ (float64)', m, d, m, 8), work('Mul', 'A scale', { bytes: 16 * BH * m * m }), softmax('A (float64)', BH * m * m, 8));
  ops.push(mm('G: Q̃ Kᵀ', m, d, nk), work('Mul', 'G scale', { bytes: 2 * E * BH * m * nk }), softmax('G', BH * m * nk));
  for (const op of ['ReduceSum', 'ReduceMax', 'ReduceSum', 'ReduceMax', 'Transpose', 'Div']) ops.push(small(op, 'pseudo-inverse start Aᵀ / (‖A‖₁ ‖A‖∞)', 16 * BH * m * m));
  for (let t = 0; t < steps; t++) {
    for (let k = 0; k < 4; k++) ops.push(mm(`pseudo-inverse step ${t + 1} (float64)`, m, m, m, 8));
    for (const op of ['Sub', 'Sub', 'Mul', 'Sub']) ops.push(small(op, `pseudo-inverse step ${t + 1}`, 24 * BH * m * m));
  }
  ops.push(work('Cast', 'A⁺ to the model type', { bytes: (8 + E) * BH * m * m }));
  ops.push(mm('G V', m, nk, dv), mm('A⁺ (G V)', m, m, dv), mm('F (A⁺ G V)', nq, m, dv));
  return ops;
}
