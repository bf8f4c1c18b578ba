// attentionCost against hand-computed counts; shapes of the model (monotone in the spec and in n).

import { type AttentionParams, type AttentionSpec, blockSparse, causal, dense, intersect, intervals, linformer, performer, slidingWindow, union, sinks, topkBlocks } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { attentionCost } from './attention-cost.js';
import { attnoptCpuProfile, onnxruntimeCpuProfile, webgpuGenericProfile } from './profiles/index.js';
import { validateProfile } from './profile.js';
import { pairsKept } from './work.js';

const params = (spec: AttentionSpec, over: Partial<AttentionParams> = {}): AttentionParams => ({
  numHeads: 1, kvNumHeads: 1, headDim: 2, vHeadDim: 2, scale: 1, softcap: 0, layout: 'bhsd', spec, ...over,
});

describe('FLOP counts (hand-computed)', () => {
  it('dense n=4, d=2, 1 head, unfused: QKᵀ 2·4·4·2 = 64, PV 64, softmax 5·16 = 80', () => {
    const c = attentionCost(params(dense), { batch: 1, nq: 4, nk: 4 }, onnxruntimeCpuProfile);
    expect(c.flops).toBe(128);
    expect(c.softmaxFlops).toBe(80);
    expect(c.keptPairs).toBe(16);
    expect(c.largestIntermediate).toBe(4 * 4 * 4); // 16 scores x 4 bytes
  });
  it('causal n=4: 4·5/2 = 10 kept pairs; unfused still computes all 16', () => {
    const c = attentionCost(params(causal()), { batch: 1, nq: 4, nk: 4 }, onnxruntimeCpuProfile);
    expect(c.keptPairs).toBe(10);
    expect(c.computedPairs).toBe(16);
    expect(c.flops).toBe(128);
  });
  it('causal n=1000 keeps n(n+1)/2 pairs', () => {
    expect(pairsKept(causal(), { nq: 1000, nk: 1000 })).toBe(500500);
  });
  it('window left=w-1 keeps w·n minus the edge triangle w(w-1)/2', () => {
    const n = 1000;
    const w = 64;
    expect(pairsKept(slidingWindow(w - 1, 0), { nq: n, nk: n })).toBe(w * n - (w * (w - 1)) / 2);
  });
  it('fused: dense n=128 on 64x64 tiles computes 4 full tiles, 2·128·128·(2+2) FLOPs', () => {
    const c = attentionCost(params(dense), { batch: 1, nq: 128, nk: 128 }, attnoptCpuProfile);
    expect(c.blocks).toMatchObject({ full: 4, partial: 0, empty: 0 });
    expect(c.flops).toBe(2 * 128 * 128 * 4);
  });
  it('fused: causal n=128 on 64x64 tiles: 2 partial (diagonal) + 1 full, 1 empty: area 3·64·64', () => {
    const c = attentionCost(params(causal()), { batch: 1, nq: 128, nk: 128 }, attnoptCpuProfile);
    expect(c.blocks).toMatchObject({ full: 1, partial: 2, empty: 1 });
    expect(c.computedPairs).toBe(3 * 64 * 64);
  });
  it('linformer rank r: projections 2·nk·r·d for K and V plus attention over r', () => {
    const [n, r, d] = [100, 8, 2];
    const c = attentionCost(params(linformer(r, 1)), { batch: 1, nq: n, nk: n }, attnoptCpuProfile);
    expect(c.flops).toBe(2 * n * r * d * 2 + 2 * n * r * d * 2);
  });
});

describe('shape of the model', () => {
  const mha = params(dense, { numHeads: 8, kvNumHeads: 8, headDim: 64, vHeadDim: 64, layout: 'bsd' });
  it('a subset spec never costs more FLOPs on a block-skipping target', () => {
    const dims = { batch: 1, nq: 1000, nk: 1000 };
    const specs = [dense, causal(), intersect(causal(), slidingWindow(100, 0)), intersect(causal(), slidingWindow(10, 0))];
    const flops = specs.map((s) => attentionCost({ ...mha, spec: s }, dims, attnoptCpuProfile).flops);
    for (let k = 1; k < flops.length; k++) expect(flops[k]).toBeLessThanOrEqual(flops[k - 1]!);
    const u = attentionCost({ ...mha, spec: union(sinks(4), slidingWindow(10, 0)) }, dims, attnoptCpuProfile).flops;
    expect(u).toBeLessThanOrEqual(flops[0]!);
  });
  it('GQA moves fewer bytes than MHA on a fused target', () => {
    const dims = { batch: 1, nq: 512, nk: 512 };
    const gqa = attentionCost({ ...mha, kvNumHeads: 2 }, dims, attnoptCpuProfile);
    const full = attentionCost(mha, dims, attnoptCpuProfile);
    expect(gqa.bytes).toBeLessThan(full.bytes);
    expect(gqa.flops).toBe(full.flops);
  });
  it('unfused (onnxruntime): a window is lowered banded, so it costs less than causal and far less memory', () => {
    const dims = { batch: 1, nq: 4096, nk: 4096 };
    const c = attentionCost({ ...mha, spec: causal() }, dims, onnxruntimeCpuProfile);
    const w = attentionCost({ ...mha, spec: slidingWindow(255, 0) }, dims, onnxruntimeCpuProfile);
    expect(w.flops).toBeLessThan(c.flops / 4);
    expect(w.time).toBeLessThan(c.time);
    expect(w.peakMemory).toBeLessThan(c.peakMemory / 4);
    expect(w.ops.some((o) => o.op === 'Gather' && o.what === 'key windows (granules)')).toBe(true);
  });
  it('the shipped profiles load, times are positive and increase with n on every target', () => {
    for (const profile of [onnxruntimeCpuProfile, attnoptCpuProfile, webgpuGenericProfile]) {
      validateProfile(profile);
      let last = 0;
      for (const n of [64, 256, 1024, 4096]) {
        const t = attentionCost({ ...mha, spec: causal() }, { batch: 1, nq: n, nk: n }, profile).time;
        expect(t).toBeGreaterThan(last);
        last = t;
      }
    }
  });
  it('a window spec at n = 16384 is costed from row and block queries (finishes, no n x n)', () => {
    const c = attentionCost({ ...mha, spec: slidingWindow(255, 0) }, { batch: 1, nq: 16384, nk: 16384 }, attnoptCpuProfile);
    expect(c.keptPairs).toBe(256 * 16384 - (256 * 255) / 2);
    expect(c.blocks!.partial + c.blocks!.full).toBeLessThan(6 * 256);
    expect(c.largestIntermediate).toBe(64 * 64 * 4);
  });
});

describe('onnxruntime-cpu follows the lowering: banded, block-gathered, low-rank, dense (hand-computed)', () => {
  const mha = params(dense, { numHeads: 8, kvNumHeads: 8, headDim: 64, vHeadDim: 64, layout: 'bsd' });
  it('window(3, 0), n=100, d=2: block 16, 8 extra rows + band 16 + 3 -> 24 keys, 7 blocks = 112 padded queries', () => {
    const c = attentionCost(params(slidingWindow(3, 0)), { batch: 1, nq: 100, nk: 100 }, onnxruntimeCpuProfile);
    expect(c.computedPairs).toBe(112 * 32); // not 100 x 100
    expect(c.flops).toBe(2 * 112 * 32 * 2 * 2 + 2 * 112 * 24); // QKᵀ and PV over the window, kept keys per row
    expect(c.softmaxFlops).toBe(5 * 112 * 32);
    expect(c.largestIntermediate).toBe(4 * 112 * 32);
    expect(c.keptPairs).toBe(4 * 100 - 6);
  });
  it('causal window 64, n=512, 8 heads, d=64: block 32, 8 + 96 keys per query: 2·2·8·512·104·64 FLOPs', () => {
    const c = attentionCost({ ...mha, spec: slidingWindow(63, 0) }, { batch: 1, nq: 512, nk: 512 }, onnxruntimeCpuProfile);
    expect(c.computedPairs).toBe(512 * 104);
    expect(c.flops).toBe(2 * 2 * 8 * 512 * 104 * 64 + 2 * 512 * 96); // + kept keys per row (bias shared by heads)
    expect(c.largestIntermediate).toBe(4 * 8 * 512 * 104);
  });
  it('causal ∩ (window 256 ∪ sinks 4), n=1000: block 64, band 64 + 255 -> 320 + 8 extra rows, 1024 padded queries', () => {
    const spec = intersect(causal(), union(slidingWindow(255, 0), sinks(4)));
    const c = attentionCost({ ...mha, spec }, { batch: 1, nq: 1000, nk: 1000 }, onnxruntimeCpuProfile);
    expect(c.computedPairs).toBe(1024 * (320 + 8));
    expect(c.flops).toBe(2 * 2 * 8 * 1024 * 328 * 64 + 2 * 1024 * 4 + 2 * 1024 * 320);
    expect(c.softmaxFlops).toBe(5 * 8 * 1024 * 328);
    expect(c.ops.filter((o) => o.op === 'MatMul').map((o) => o.what)).toEqual(['band scores Q Kᵀ', 'kept keys per row (extra)', 'kept keys per row (band)', 'band P V']);
  });
  it('memory is O(n · (b + w)): at n = 16384 the window-256 scores are 8 · 16384 · 328 floats, not n x n', () => {
    const c = attentionCost({ ...mha, spec: slidingWindow(255, 0) }, { batch: 1, nq: 16384, nk: 16384 }, onnxruntimeCpuProfile);
    expect(c.largestIntermediate).toBe(4 * 8 * 16384 * 328);
    const d = attentionCost({ ...mha, spec: causal() }, { batch: 1, nq: 16384, nk: 16384 }, onnxruntimeCpuProfile);
    expect(d.largestIntermediate).toBe(4 * 8 * 16384 * 16384);
    expect(c.peakMemory).toBeLessThan(d.peakMemory / 10);
  });
  it('dense where the lowering is dense: a float bias, or static keys fewer than twice the keys read', () => {
    const w = { ...mha, spec: slidingWindow(63, 0) };
    expect(attentionCost(w, { batch: 1, nq: 512, nk: 512 }, onnxruntimeCpuProfile, { bias: 'float' }).computedPairs).toBe(512 * 512);
    expect(attentionCost(w, { batch: 1, nq: 200, nk: 200 }, onnxruntimeCpuProfile, { staticKeys: true }).computedPairs).toBe(200 * 200); // 200 < 2 · 104
    expect(attentionCost(w, { batch: 1, nq: 200, nk: 200 }, onnxruntimeCpuProfile).computedPairs).toBe(224 * 104); // symbolic: banded
    expect(attentionCost({ ...mha, spec: causal() }, { batch: 1, nq: 512, nk: 512 }, onnxruntimeCpuProfile).computedPairs).toBe(512 * 512);
  });
  it('block-sparse layouts are block-gathered: 2 blocks of 64 per query block, n=256: 256 · 128 scores per head', () => {
    const spec = blockSparse(64, 64, [[0], [0, 1], [1, 2], [2, 3]]);
    const c = attentionCost({ ...mha, spec }, { batch: 1, nq: 256, nk: 256 }, onnxruntimeCpuProfile);
    expect(c.computedPairs).toBe(256 * 128);
    expect(c.flops).toBe(2 * 2 * 8 * 256 * 128 * 64);
  });
  it('top-k blocks: k blocks per query block plus the Quest bounds (2 MatMuls of nq x nKB x d) and a TopK', () => {
    const c = attentionCost({ ...mha, spec: topkBlocks(64, 4) }, { batch: 1, nq: 1024, nk: 1024 }, onnxruntimeCpuProfile);
    expect(c.computedPairs).toBe(1024 * 256);
    expect(c.flops).toBe(2 * 2 * 8 * 1024 * 256 * 64 + 2 * 2 * 8 * 1024 * 16 * 64);
    expect(c.ops.some((o) => o.op === 'TopK')).toBe(true);
  });
  it('top-k blocks cut by a causal mask: the same gathered scores and flops as top-k alone, plus the causal cut', () => {
    const plain = attentionCost({ ...mha, spec: topkBlocks(64, 4) }, { batch: 1, nq: 1024, nk: 1024 }, onnxruntimeCpuProfile);
    // the kept set needs Q and K: a resolver that keeps the query block's own and three earlier key blocks
    const resolve = (_leaf: unknown, row: number, dims: { nk: number }) => intervals.range(Math.max(0, (Math.floor(row / 64) - 3) * 64), (Math.floor(row / 64) + 1) * 64, dims.nk);
    const cut = attentionCost({ ...mha, spec: intersect(causal(), topkBlocks(64, 4)) }, { batch: 1, nq: 1024, nk: 1024 }, onnxruntimeCpuProfile, { resolve });
    expect(cut.computedPairs).toBe(1024 * 256);
    expect(cut.flops).toBe(plain.flops);
    expect(cut.ops.filter((o) => o.what === 'causal cut' || o.what === 'keep & causal')).toHaveLength(2);
    expect(cut.time).toBeGreaterThan(plain.time);
  });
  it('performer is costed as its MatMuls, linear in n', () => {
    const a = attentionCost({ ...mha, spec: performer(256, 1) }, { batch: 1, nq: 2048, nk: 2048 }, onnxruntimeCpuProfile);
    const b = attentionCost({ ...mha, spec: performer(256, 1) }, { batch: 1, nq: 4096, nk: 4096 }, onnxruntimeCpuProfile);
    expect(b.flops).toBeCloseTo(2 * a.flops, -3);
    expect(a.computedPairs).toBe(0);
  });
});

describe('a lengths input (kvLength)', () => {
  // the lowering puts padding K and V out of reach before any part reads them: a GatherND over each, every unfused form
  const gqa = params(dense, { numHeads: 8, kvNumHeads: 2, headDim: 64, vHeadDim: 32 });
  const dims = { batch: 3, nq: 512, nk: 512 };
  const specs: [string, AttentionSpec][] = [
    ['dense', dense],
    ['banded', intersect(causal(), union(slidingWindow(63, 0), sinks(2)))],
    ['block-gathered', blockSparse(64, 64, [[0], [0, 1]])],
  ];
  it.each(specs)('%s: a GatherND over [B, Hkv, nk, d] and one over [B, Hkv, nk, dv], only with kvLength', (_name, spec) => {
    const outOfReach = (kvLength: boolean) => attentionCost({ ...gqa, spec }, dims, onnxruntimeCpuProfile, { kvLength }).ops.filter((o) => /padding (row index|keys out of reach|values out of reach)/.test(o.what));
    expect(outOfReach(false)).toEqual([]);
    // 3 batches x 2 kv heads x 512 rows: the int64 index, and (64 | 32) channels x 4 bytes read and written
    const rows = 3 * 2 * 512;
    expect(outOfReach(true).map((o) => [o.op, o.bytes])).toEqual([
      ['Expand', 8 * rows],
      ['GatherND', 2 * 4 * rows * 64 + 8 * rows],
      ['GatherND', 2 * 4 * rows * 32 + 8 * rows],
    ]);
  });
});
