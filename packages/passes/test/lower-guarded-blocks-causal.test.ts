// The guarded block-gathered lowering on a causal site (BOUNDS.md (b')): causal ∩ topkBlocks and causal ∩ a fixed
// block layout, guarded over the causal baseline, in onnxruntime against the float64 reference of causal attention,
// n = 1024, opset 21. The kept set is chosen ∩ causal (the diagonal block partly masked); the certificate counts only
// the visible keys of the dropped blocks. Every output is within the budget plus float32 rounding
// (|y - ref| <= budget + 1e-4: inputs and values of size <= 12, f32 scores and sums) on natural and adversarial
// inputs (local, logits up to 80, diffuse, repeated spans 600 back, one outlier key far back). The unguarded form
// is the IR's semantics (the reference of causal ∩ spec, atol 1e-4), and on the adversarial inputs it breaks the
// budget (so the guard did the work). Budget 0 gives the causal reference. The fallback flags are checked against
// the float64 certificate of @attnopt/bounds on the same blocks, and that check fails for two wrong certificates:
// one counting the future keys of the dropped blocks as dropped, one taking the diagonal block's future keys as kept.
// Aligns: top-left, bottom-right with fewer queries than keys (offset 64), past (top-left without past keys).
// Top-k both as ranked over every key block and ranked causally (topkBlocks(.., causal=align): only the blocks the
// query block can see), the second the form sparsify writes.
// The unguarded form also with past keys and a lengths input (batch 2, nq = 200 after 64 cached keys, the last 5
// keys of batch 1 padding), each align, against the float64 reference of the spec: |y - ref| <= 1e-5 + 1e-4 |ref|;
// and guarded (bottom-right) with a lengths input (batch 2, 300 keys of batch 1 padding) on local and diffuse
// inputs, within the budget of the causal reference with the same lengths.

import { guardedDroppedMass, guardFallsBack, keyBlockSummaries, valueRange } from '@attnopt/bounds';
import {
  type Align,
  type AttentionParams,
  type AttentionSpec,
  attentionNode,
  blockSparse,
  causal,
  Graph,
  intersect,
  type MaskSpec,
  SplitMix64,
  tensorType,
  topkBlockIndices,
  topkBlocks,
  Value,
} from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { cannotLower, GUARD_FALLBACK_VALUE, lowerAttentionPass } from '../src/lower/index.js';
import { localInputs, type QKV, repeatSpans } from './helpers/guarded-inputs.js';
import { lowerSite, runSite } from './helpers/lowered-site.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

const N = 1024;
const D = 16;
const H = 2;
const BLOCK = 64;
const BUDGET = 1e-3;
const ROUNDING = 1e-4;
const SCALE = 1 / Math.sqrt(D);

/** Each query block r keeps key block 0, r - 1, r and r + 1 (the last a future block under the causal cut). */
const LAYOUT_ROWS = Array.from({ length: N / BLOCK }, (_, r) => [...new Set([0, Math.max(0, r - 1), r, Math.min(N / BLOCK - 1, r + 1)])]);
const LAYOUT = blockSparse(BLOCK, BLOCK, LAYOUT_ROWS);
const TOPK = topkBlocks(BLOCK, 4, 'quest');

function params(spec: AttentionSpec, guard?: { budget: number; align: Align }): AttentionParams {
  return {
    numHeads: H,
    kvNumHeads: H,
    headDim: D,
    vHeadDim: D,
    scale: SCALE,
    softcap: 0,
    layout: 'bhsd',
    spec,
    ...(guard ? { guard: { budget: guard.budget, blockSize: BLOCK, baseline: causal(guard.align) } } : {}),
  };
}

/** The site lowered for onnxruntime (q of nq rows, k and v of N); with `flags` the fallback flags [1, H, nq] are an output too. */
function build(p: AttentionParams, flags = false): Uint8Array {
  const g = new Graph('guarded_blocks_causal');
  const q = g.addInput(new Value('q', tensorType('f32', [1, H, 'seq', D])));
  const k = g.addInput(new Value('k', tensorType('f32', [1, H, 'kseq', D])));
  const v = g.addInput(new Value('v', tensorType('f32', [1, H, 'kseq', D])));
  const y = new Value('y', tensorType('f32'));
  const node = attentionNode(p, { q, k, v }, { y }, 'attn');
  g.addNode(node);
  g.outputs.push(y);
  expect(cannotLower(node, { opset: 21 })).toBeUndefined();
  runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
  if (flags) g.outputs.push(g.nodes.flatMap((n) => n.outputs).find((o) => o.name.endsWith(`/${GUARD_FALLBACK_VALUE}`))!);
  return exportOnnx(newOnnxModel(g, { opset: 21 }));
}

const f32 = (t: Float64Array) => Float64Array.from(Float32Array.from(t));

/** The last nq query rows of every head (bottom-right: the queries are the last nq positions). */
function lastQueries(q: Float64Array, nq: number): Float64Array {
  const out = new Float64Array(H * nq * D);
  for (let h = 0; h < H; h++) out.set(q.subarray((h * N + N - nq) * D, (h + 1) * N * D), h * nq * D);
  return out;
}

async function run(model: Uint8Array, x: QKV, nq: number): Promise<{ y: Float64Array; flags?: Float64Array }> {
  const out = await runModel(model, {
    q: ortTensor('f32', [1, H, nq, D], x.q),
    k: ortTensor('f32', [1, H, N, D], x.k),
    v: ortTensor('f32', [1, H, N, D], x.v),
  });
  const flags = Object.keys(out).find((k) => k !== 'y');
  return { y: ortValues(out.y!), ...(flags ? { flags: ortValues(out[flags]!) } : {}) };
}

/** `spec` in float64 on the f32-rounded inputs onnxruntime reads. */
function reference(spec: AttentionSpec, x: QKV, nq: number): Float64Array {
  return referenceAttention(params(spec), { q: { shape: [1, H, nq, D], data: f32(x.q) }, k: { shape: [1, H, N, D], data: f32(x.k) }, v: { shape: [1, H, N, D], data: f32(x.v) } }).y.data;
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let t = 0; t < a.length; t++) m = Math.max(m, Math.abs(a[t]! - b[t]!));
  return m;
};

const local = (seed: number, amplitude = 1): QKV => {
  const x = localInputs(seed, 1, H, N, D);
  if (amplitude !== 1) for (const t of [x.q, x.k]) for (let j = 0; j < t.length; j++) t[j]! *= amplitude;
  return x;
};

/** Independent uniform q, k in [-1, 1]: diffuse attention, every visible block carries mass. */
function diffuse(seed: number): QKV {
  const rng = new SplitMix64(seed);
  const u = () => Float64Array.from({ length: H * N * D }, () => rng.nextFloat() * 2 - 1);
  return { q: u(), k: u(), v: u() };
}

/** One outlier key (12 on every channel) at position 100, far back for most queries, aligned with every query. */
function outlier(seed: number): QKV {
  const x = local(seed);
  for (let h = 0; h < H; h++) for (let c = 0; c < D; c++) x.k[(h * N + 100) * D + c] = 12;
  for (let t = 0; t < x.q.length; t++) x.q[t] = Math.abs(x.q[t]!);
  return x;
}

type Family = (seed: number) => QKV;
const FAMILIES: Record<string, Family> = {
  local: (s) => local(s),
  logits80: (s) => local(s, Math.sqrt(10) / 3),
  diffuse,
  spans: (s) => repeatSpans(local(s), 600, 1, H, N, D),
  outlier,
};

/** Per spec (given the site's align): where no row may fall back, and where the unguarded form must break the budget. */
const CASES: [name: string, leaf: (align: Align) => MaskSpec, noFallback: string[], breaks: string[]][] = [
  ['top-k blocks (64, 4, quest)', () => TOPK, ['local'], ['diffuse']],
  ['top-k blocks ranked causally (64, 4, quest, causal=align)', (align) => topkBlocks(BLOCK, 4, 'quest', align), ['local'], ['diffuse']],
  ['a fixed layout (blocks 0, r - 1, r, r + 1)', () => LAYOUT, ['local', 'logits80'], ['diffuse', 'spans', 'outlier']],
];

/** Align and query count: top-left and past over nq = N; bottom-right over the last N - 64 queries. */
const ALIGNS: [align: Align, nq: number][] = [
  ['top-left', N],
  ['bottom-right', N - BLOCK],
  ['past', N],
];

for (const [name, leaf, noFallback, breaks] of CASES)
  for (const [align, nq] of ALIGNS)
    describe(`guarded causal(${align}) ∩ ${name} in onnxruntime, within the budget of the float64 causal reference (n = ${N}, nq = ${nq})`, () => {
      const spec = intersect(causal(align), leaf(align));
      const guarded = build(params(spec, { budget: BUDGET, align }), true);
      const unguarded = build(params(spec));
      const forced = build(params(spec, { budget: 0, align }));
      it.each(Object.keys(FAMILIES))('%s', async (family) => {
        const full = FAMILIES[family]!(17);
        const x = { ...full, q: lastQueries(full.q, nq) };
        const ref = reference(causal(align), x, nq);
        const g = await run(guarded, x, nq);
        const u = await run(unguarded, x, nq);
        // the unguarded form is the IR's causal ∩ spec
        expect(maxAbsDiff(u.y, reference(spec, x, nq))).toBeLessThanOrEqual(ROUNDING);
        expect(maxAbsDiff(g.y, ref)).toBeLessThanOrEqual(BUDGET + ROUNDING);
        if (breaks.includes(family)) expect(maxAbsDiff(u.y, ref)).toBeGreaterThan(BUDGET + ROUNDING);
        if (noFallback.includes(family)) {
          expect(g.flags!.reduce((a, f) => a + f, 0)).toBe(0);
          expect(maxAbsDiff(g.y, u.y)).toBe(0);
        }
        // a query flagged in some head is the dense causal row in every head, any other query the sparse row
        for (let i = 0; i < nq; i++) {
          const anyHead = Array.from({ length: H }, (_, h) => g.flags![h * nq + i]!).some((f) => f === 1);
          for (let h = 0; h < H; h++) {
            const at = (t: Float64Array) => t.subarray((h * nq + i) * D, (h * nq + i + 1) * D);
            if (anyHead) expect(maxAbsDiff(at(g.y), at(ref))).toBeLessThanOrEqual(ROUNDING);
            else expect(maxAbsDiff(at(g.y), at(u.y))).toBe(0);
          }
        }
        expect(maxAbsDiff((await run(forced, x, nq)).y, ref)).toBeLessThanOrEqual(ROUNDING);
      }, 120_000);
    });

/** A wrong certificate the flags check must catch. */
type Mutation = 'none' | 'future keys dropped' | 'future keys kept';

/**
 * The rows whose fallback flag disagrees with the float64 certificate of a top-left causal site (bottom-right and
 * past read the same with their offset): kept = chosen blocks ∩ [0, i], dropped counts = the visible keys of the
 * unchosen blocks, U from the whole blocks' summaries (as the lowering takes them). A row over the budget in
 * float64 must be flagged; a flagged row must be over the budget up to the float32 widening (under 5% here).
 */
function flagDisagreements(x: QKV, flags: Float64Array, chosenOf: (h: number, r: number) => number[], mutation: Mutation): number {
  const [q, k, v] = [f32(x.q), f32(x.k), f32(x.v)];
  let wrong = 0;
  for (let h = 0; h < H; h++) {
    const kh = k.subarray(h * N * D, (h + 1) * N * D);
    const summaries = keyBlockSummaries(kh, N, D, BLOCK);
    const range = valueRange(v.subarray(h * N * D, (h + 1) * N * D), D);
    for (let i = 0; i < N; i++) {
      const qi = q.subarray((h * N + i) * D, (h * N + i + 1) * D);
      const chosen = chosenOf(h, Math.floor(i / BLOCK));
      const visible = (c: number) => Math.max(0, Math.min((c + 1) * BLOCK, i + 1) - c * BLOCK);
      const counts = Float64Array.from({ length: N / BLOCK }, (_, c) => (chosen.includes(c) ? 0 : mutation === 'future keys dropped' ? BLOCK : visible(c)));
      const keptKeys = chosen.flatMap((c) => Array.from({ length: mutation === 'future keys kept' ? BLOCK : visible(c) }, (_, t) => c * BLOCK + t));
      const scores = keptKeys.map((j) => SCALE * qi.reduce((a, qc, d) => a + qc * kh[j * D + d]!, 0));
      const top = Math.max(...scores);
      const logZKept = scores.length === 0 ? -Infinity : top + Math.log(scores.reduce((a, s) => a + Math.exp(s - top), 0));
      const dropsSome = counts.some((c) => c > 0);
      const mHat = dropsSome ? guardedDroppedMass(qi, summaries, SCALE, 0, logZKept, counts) : 0;
      const over = dropsSome && (scores.length === 0 || guardFallsBack(mHat, range, BUDGET));
      const flag = flags[h * N + i]!;
      if (over && flag !== 1) wrong++;
      else if (flag === 1 && scores.length > 0 && !(mHat * range > BUDGET / 1.05)) wrong++;
    }
  }
  return wrong;
}

describe('causal (top-left): the fallback flags against the float64 certificate of @attnopt/bounds', () => {
  const ranked = topkBlocks(BLOCK, 4, 'quest', 'top-left');
  for (const [name, leaf] of [['the fixed layout', LAYOUT], ['top-k blocks', TOPK], ['top-k blocks ranked causally', ranked]] as const) {
    const guarded = build(params(intersect(causal('top-left'), leaf), { budget: BUDGET, align: 'top-left' }), true);
    it.each(Object.keys(FAMILIES))(`${name}, %s`, async (family) => {
      const x = FAMILIES[family]!(23);
      const flags = (await run(guarded, x, N)).flags!;
      const [q, k] = [f32(x.q), f32(x.k)];
      const chosenOf = (h: number, r: number) =>
        leaf.kind === 'blocks'
          ? LAYOUT_ROWS[r]!
          : topkBlockIndices(leaf, { q: q.subarray(h * N * D, (h + 1) * N * D), k: k.subarray(h * N * D, (h + 1) * N * D), nq: N, nk: N, d: D, scale: SCALE }, r);
      expect(flagDisagreements(x, flags, chosenOf, 'none')).toBe(0);
    }, 120_000);
  }
  // both wrong certificates disagree with the flags somewhere: the check above can fail
  it.each(['future keys dropped', 'future keys kept'] as const)('a certificate with %s disagrees with the flags', async (mutation) => {
    const guarded = build(params(intersect(causal('top-left'), LAYOUT), { budget: BUDGET, align: 'top-left' }), true);
    let wrong = 0;
    for (const family of ['local', 'spans', 'logits80']) {
      const x = FAMILIES[family]!(23);
      wrong += flagDisagreements(x, (await run(guarded, x, N)).flags!, (_h, r) => LAYOUT_ROWS[r]!, mutation);
    }
    expect(wrong).toBeGreaterThan(0);
  }, 120_000);
});

describe('unguarded causal ∩ top-k blocks with past keys and a lengths input', () => {
  it.each([
    ['top-left', false],
    ['bottom-right', false],
    ['past', false],
    ['top-left', true],
    ['bottom-right', true],
    ['past', true],
  ] as const)('%s, ranked causally: %s', async (align, ranked) => {
    const site = { params: params(intersect(causal(align), topkBlocks(32, 3, 'quest', ranked ? align : undefined))), batch: 2, past: 64, kvLength: true };
    const lowered = lowerSite(site, { opset: 21 });
    expect(lowered.graph.nodes.some((n) => n.op === 'GatherND')).toBe(true);
    const r = await runSite(lowered, site, 200, 5, { atol: 1e-5, rtol: 1e-4 });
    expect(r.mismatches).toEqual([]);
  }, 60_000);
});

describe('guarded causal(bottom-right) ∩ top-k blocks with a lengths input, batch 2', () => {
  const kvLength = [N, N - 300];
  const site = (budget: number) => ({ params: params(intersect(causal('bottom-right'), TOPK), { budget, align: 'bottom-right' }), batch: 2, kvLength: true });
  const guarded = lowerSite(site(BUDGET), { opset: 21 }).bytes;
  const forced = lowerSite(site(0), { opset: 21 }).bytes;
  const two = (x: QKV, y: QKV): QKV => ({ q: Float64Array.from([...x.q, ...y.q]), k: Float64Array.from([...x.k, ...y.k]), v: Float64Array.from([...x.v, ...y.v]) });
  it.each([
    ['local', () => two(local(61), local(62))],
    ['diffuse', () => two(diffuse(63), diffuse(64))],
  ] as const)('%s', async (_name, inputs) => {
    const x = inputs();
    const shape = [2, H, N, D];
    const feeds = { q: ortTensor('f32', shape, x.q), k: ortTensor('f32', shape, x.k), v: ortTensor('f32', shape, x.v), kv_length: ortTensor('i64', [2], kvLength) };
    const ref = referenceAttention(params(causal('bottom-right')), { q: { shape, data: f32(x.q) }, k: { shape, data: f32(x.k) }, v: { shape, data: f32(x.v) }, kvLength }).y.data;
    expect(maxAbsDiff(ortValues((await runModel(guarded, feeds)).y!), ref)).toBeLessThanOrEqual(BUDGET + ROUNDING);
    expect(maxAbsDiff(ortValues((await runModel(forced, feeds)).y!), ref)).toBeLessThanOrEqual(ROUNDING);
  }, 60_000);
});

describe('refusals', () => {
  const node = (p: AttentionParams) => {
    const g = new Graph('refused');
    const [q, k, v] = ['q', 'k', 'v'].map((n) => g.addInput(new Value(n, tensorType('f32', [1, H, 'seq', D]))));
    return attentionNode(p, { q: q!, k: k!, v: v! }, { y: new Value('y', tensorType('f32')) }, 'attn');
  };
  it('a causal cut that is not the baseline’s own', () => {
    expect(cannotLower(node(params(intersect(causal('bottom-right'), TOPK), { budget: BUDGET, align: 'top-left' })), { opset: 21 })).toMatch(/the causal cut must be the baseline's own/);
  });
  it('the past alignment with a lengths input (the offset would differ per batch)', () => {
    const g = new Graph('refused_past');
    const [q, k, v] = ['q', 'k', 'v'].map((n) => g.addInput(new Value(n, tensorType('f32', [1, H, 'seq', D]))));
    const kvLength = g.addInput(new Value('kv_length', tensorType('i64', [1])));
    const n = attentionNode(params(intersect(causal('past'), TOPK), { budget: BUDGET, align: 'past' }), { q: q!, k: k!, v: v!, kvLength }, { y: new Value('y', tensorType('f32')) }, 'attn');
    expect(cannotLower(n, { opset: 21 })).toMatch(/kvLength with the past alignment/);
  });
  it('top-k blocks without the causal cut over a causal baseline', () => {
    expect(cannotLower(node(params(TOPK, { budget: BUDGET, align: 'top-left' })), { opset: 21 })).toMatch(/must be cut by that causal mask/);
  });
});
