// The guarded kernel's per-call data, laid out by the host driver (attention.ts): the dropped segments of every
// (batch, head, query block), the summary records of every (batch, kv head, segment), the range of V per
// (batch, kv head), and the certificate rows the kernel writes.

import type { LeafResolver, MaskDims, MaskSpec } from '@attnopt/ir';
import { MASKED, ROW_EMPTY } from '../wasm/kernel-shape.js';
import { type DroppedEntry, droppedEntries, keySegments, writeSegmentSummary } from './segments.js';
import { ENTRY_WORDS, segmentFloats, SUMMARY_ITEM_WORDS } from './guard-shape.js';

export interface ResolvedGuard {
  readonly epsilon: number;
  readonly block: number;
  readonly modelMask: MaskSpec;
}

interface GuardContext {
  readonly spec: MaskSpec;
  readonly batch: number;
  readonly H: number;
  readonly nq: number;
  readonly nqBlocks: number;
  readonly BQ: number;
  readonly dimsOf: (b: number) => MaskDims;
  readonly validOf: (b: number) => number;
  readonly perHead: boolean;
  readonly resolver?: ((b: number, h: number) => LeafResolver) | undefined;
  readonly bias?: ((b: number, h: number, i: number, j: number) => number) | undefined;
  /** The bias is the same for every query row (a key bias): its max over a segment is read once per (b, h). */
  readonly keyBias?: boolean;
}

type Entry = DroppedEntry & { readonly biasMax: number };

export interface GuardPlan {
  /** Segment starts per batch. */
  readonly starts: Int32Array[];
  /** Entries per (b, h, query block), in item plan order. */
  readonly entries: Entry[][];
  readonly totalEntries: number;
  /** The same entries as flat arrays, what writeGuard copies each call. */
  readonly table: EntryTable;
}

/** Item idx's entries are first[idx] .. first[idx + 1] - 1: segment, and count, rowLo, rowHi, max bias (4 f32 each). */
interface EntryTable {
  readonly first: Int32Array;
  readonly segment: Int32Array;
  readonly values: Float32Array;
  /** Per item: the entries' total count and largest bias (0 without entries), for the pre-check. */
  readonly countSum: Float64Array;
  readonly biasMax: Float64Array;
}

function entryTable(entries: readonly Entry[][], total: number): EntryTable {
  const first = new Int32Array(entries.length + 1);
  const segment = new Int32Array(total);
  const values = new Float32Array(4 * total);
  const countSum = new Float64Array(entries.length);
  const biasMax = new Float64Array(entries.length);
  let t = 0;
  entries.forEach((list, idx) => {
    first[idx] = t;
    let bias = list.length > 0 ? -Infinity : 0;
    for (const e of list) {
      segment[t] = e.segment;
      values[4 * t] = e.count;
      values[4 * t + 1] = e.rowLo;
      values[4 * t + 2] = e.rowHi;
      values[4 * t + 3] = e.biasMax;
      countSum[idx]! += e.count;
      bias = Math.max(bias, e.biasMax);
      t++;
    }
    biasMax[idx] = bias;
  });
  first[entries.length] = t;
  return { first, segment, values, countSum, biasMax };
}

export function planGuard(guard: ResolvedGuard, c: GuardContext): GuardPlan {
  const starts: Int32Array[] = [];
  const entries: Entry[][] = [];
  let totalEntries = 0;
  for (let b = 0; b < c.batch; b++) {
    const dims = c.dimsOf(b);
    const valid = c.validOf(b);
    const st = keySegments(c.spec, valid, guard.block);
    starts.push(st);
    let shared: Entry[][] | undefined;
    for (let h = 0; h < c.H; h++) {
      // a key bias: the max over each segment's keys, the same for every row of the head
      const segmentMax = new Map<number, number>();
      const rowsOfHead: Entry[][] =
        !c.perHead && shared
          ? shared
          : Array.from({ length: c.nqBlocks }, (_, r) => {
              const i0 = r * c.BQ;
              const i1 = Math.min(c.nq, i0 + c.BQ);
              const list = droppedEntries(c.spec, guard.modelMask, i0, i1, dims, valid, st, c.resolver?.(b, h));
              return list.flatMap((e) => {
                let biasMax = 0;
                if (c.bias) {
                  biasMax = MASKED;
                  const cached = c.keyBias ? segmentMax.get(e.segment) : undefined;
                  if (cached !== undefined) biasMax = cached;
                  else {
                    for (let i = i0 + e.rowLo; i < (c.keyBias ? i0 + e.rowLo + 1 : i0 + e.rowHi); i++) {
                      for (let j = st[e.segment]!; j < st[e.segment + 1]!; j++) biasMax = Math.max(biasMax, c.bias(b, h, i, j));
                    }
                    if (c.keyBias) segmentMax.set(e.segment, biasMax);
                  }
                  // every dropped key of the entry is masked by the bias: it drops nothing
                  if (biasMax <= ROW_EMPTY) return [];
                }
                return [{ ...e, biasMax }];
              });
            });
      if (!c.perHead) shared = rowsOfHead;
      for (const list of rowsOfHead) totalEntries += list.length;
      entries.push(...rowsOfHead);
    }
  }
  return { starts, entries, totalEntries, table: entryTable(entries, totalEntries) };
}

/** The summary functions of the WebAssembly guarded module (byte addresses). */
export interface SummaryKernels {
  summarize(k: number, n: number, out: number): void;
  valueRange(v: number, n: number): number;
}

export interface GuardMemory {
  readonly summaries: number[];
  readonly entries: number;
  readonly cert: number;
  readonly vRange: number;
  /** With the summaries deferred to the workers: the segment starts per batch (i32), and the summary items. */
  readonly starts: number[];
  readonly summaryItems: number;
  readonly nSummaryItems: number;
}

/** Segments per summary item: a (batch, kv head)'s records take ceil(nSeg / SUMMARY_SEGMENTS) items, its V range one more. */
const SUMMARY_SEGMENTS = 16;

/** Allocates the guard's regions: summaries per (b, g), entries, certificate rows per item, V ranges. */
export function layoutGuard(plan: GuardPlan, alloc: (bytes: number) => number, dPad: number, KVH: number, nItems: number, BQ: number, deferSummaries = false): GuardMemory {
  const seg = segmentFloats(dPad) * 4;
  const summaries: number[] = [];
  plan.starts.forEach((st) => {
    for (let g = 0; g < KVH; g++) summaries.push(alloc((st.length - 1) * seg));
  });
  const nSummaryItems = deferSummaries ? plan.starts.reduce((t, st) => t + KVH * (Math.ceil((st.length - 1) / SUMMARY_SEGMENTS) + 1), 0) : 0;
  return {
    summaries,
    entries: alloc(plan.totalEntries * ENTRY_WORDS * 4),
    cert: alloc(nItems * BQ * 4),
    vRange: alloc(plan.starts.length * KVH * 4),
    starts: deferSummaries ? plan.starts.map((st) => alloc(st.length * 4)) : [],
    summaryItems: alloc(nSummaryItems * SUMMARY_ITEM_WORDS * 4),
    nSummaryItems,
  };
}

/**
 * Builds the summaries (keys in memory at f32 index kRow(b, g, j)) and the V range of each (b, g), and writes
 * the entries of every item; returns the entry address and count per item in plan order.
 */
export function writeGuard(
  F: Float32Array,
  I: Int32Array,
  plan: GuardPlan,
  mem: GuardMemory,
  c: { batch: number; H: number; KVH: number; nqBlocks: number; d: number; dv: number; dPad: number; kvHeadOf: (h: number) => number },
  kRow: (b: number, g: number, j: number) => number,
  vRow: (b: number, g: number, j: number) => number,
  kernel?: SummaryKernels | 'deferred',
): { entryAt: Int32Array; entryCount: Int32Array; coarse: Float32Array } {
  const segF = segmentFloats(c.dPad);
  let summaryItem = mem.summaryItems >> 2;
  plan.starts.forEach((st, b) => {
    if (kernel === 'deferred') I.set(st, mem.starts[b]! >> 2);
    for (let g = 0; g < c.KVH; g++) {
      const base = mem.summaries[b * c.KVH + g]! >> 2;
      if (kernel === 'deferred') {
        // summary items for the WebAssembly kernel's workers (SUMMARY_ITEM): the segments in runs, then V's range
        const nSeg = st.length - 1;
        const valid = st[st.length - 1]!;
        const words = (k: number, s0: number, s1: number, out: number, v: number, vRange: number) => {
          I.set([k, mem.starts[b]!, s0, s1, out, v, valid, vRange], summaryItem);
          summaryItem += SUMMARY_ITEM_WORDS;
        };
        for (let s0 = 0; s0 < nSeg; s0 += SUMMARY_SEGMENTS) words(4 * kRow(b, g, 0), s0, Math.min(nSeg, s0 + SUMMARY_SEGMENTS), 4 * base, 0, 0);
        const rangeAt = mem.vRange + 4 * (b * c.KVH + g);
        F[rangeAt >> 2] = 0;
        words(0, 0, 0, 0, valid > 0 ? 4 * vRow(b, g, 0) : 0, rangeAt);
        continue;
      }
      if (kernel) {
        // the WebAssembly kernel's own summaries (rows are kStride / vStride apart)
        for (let k = 0; k + 1 < st.length; k++) kernel.summarize(4 * kRow(b, g, st[k]!), st[k + 1]! - st[k]!, 4 * (base + k * segF));
        const valid = st[st.length - 1]!;
        F[(mem.vRange >> 2) + b * c.KVH + g] = valid > 0 ? kernel.valueRange(4 * vRow(b, g, 0), valid) : 0;
        continue;
      }
      for (let k = 0; k + 1 < st.length; k++) writeSegmentSummary(F, (j) => kRow(b, g, j), st[k]!, st[k + 1]!, c.d, c.dPad, base + k * segF);
      // R: the largest range of one V coordinate over the keys below `valid`; NaN where a value is (no bound: every
      // row of the head falls back, as in the WebAssembly kernel)
      const valid = st[st.length - 1]!;
      const lo = new Float32Array(c.dv).fill(Infinity);
      const hi = new Float32Array(c.dv).fill(-Infinity);
      let nan = false;
      for (let j = 0; j < valid; j++) {
        const r = vRow(b, g, j);
        for (let col = 0; col < c.dv; col++) {
          const x = F[r + col]!;
          if (x < lo[col]!) lo[col] = x;
          if (x > hi[col]!) hi[col] = x;
          if (x !== x) nan = true;
        }
      }
      let range = 0;
      for (let col = 0; col < c.dv; col++) if (hi[col]! - lo[col]! > range) range = hi[col]! - lo[col]!;
      F[(mem.vRange >> 2) + b * c.KVH + g] = nan ? Number.NaN : range;
    }
  });
  const { first, segment, values, countSum, biasMax } = plan.table;
  const n = plan.entries.length;
  const entryAt = new Int32Array(n);
  const entryCount = new Int32Array(n);
  // per item: the entries' total count and largest bias (the Cauchy-Schwarz pre-check, with the kernel's key norm)
  const coarse = new Float32Array(2 * n);
  let at = mem.entries;
  let idx = 0;
  for (let b = 0; b < c.batch; b++) {
    for (let h = 0; h < c.H; h++) {
      const g = c.kvHeadOf(h);
      const sum = mem.summaries[b * c.KVH + g]!;
      for (let r = 0; r < c.nqBlocks; r++, idx++) {
        const t0 = first[idx]!;
        const t1 = first[idx + 1]!;
        entryAt[idx] = at;
        entryCount[idx] = t1 - t0;
        coarse[2 * idx] = countSum[idx]!;
        coarse[2 * idx + 1] = biasMax[idx]!;
        for (let t = t0; t < t1; t++) {
          const x = at >> 2;
          I[x] = sum + segment[t]! * segF * 4;
          F[x + 1] = values[4 * t]!;
          F[x + 2] = values[4 * t + 1]!;
          F[x + 3] = values[4 * t + 2]!;
          F[x + 4] = values[4 * t + 3]!;
          at += ENTRY_WORDS * 4;
        }
      }
    }
  }
  return { entryAt, entryCount, coarse };
}
