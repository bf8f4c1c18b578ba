// Which per-block attention runs fastest in onnxruntime (CPU) for the banded form: the single-attention model of
// onnx-speedup.ts (8 heads, head dim 64, batch 1, layout bsd, causal ∩ (window 256 ∪ sinks 4)), with the same
// blocking as the banded lowering (64-query blocks, every block's K/V window: an empty-row key, the 4 sinks, 3 pad
// rows, then the 320 band keys, gathered by granules of 8 keys; an additive 0/-inf bias). Candidates:
//   banded:     the banded lowering as lowerAttentionPass emits it (bhsd; MatMul, Add, Softmax, MatMul);
//   lowered:    the onnxruntime form (lowerAttentionPass with native 'onnxruntime', banded-native.ts: one ONNX
//               Attention over the batch of blocks, bias built at run time);
//   mha:        com.microsoft MultiHeadAttention, batch = nBlocks, q_len 64, kv_len W = 328, the K/V windows
//               gathered in bsd layout (no Transpose in the graph), attention_bias [nBlocks, 1, 64, W];
//   attn23:     the standard ONNX Attention (opset 23) on the same blocked 3D tensors, attn_mask [nBlocks, 1, 64, W];
//   attn23b:    the same with a boolean attn_mask;
//   attn23s:    the same with one [1, 1, 64, W] mask shared by every block (wrong at the sequence ends: timing
//               only, to see what a per-block bias costs);
//   attn23c:    attn23 with its mask passed through a run-time Where (computed, not a constant);
//   attn23_32, attn23_128: attn23 at query blocks of 32 and 128;
//   old:        a banded model exported by an earlier version of the lowering (--old-model FILE, e.g. made by
//               banded-profile.ts's bandedModel in a checkout of that version), to compare versions side by side;
//   gqa:        com.microsoft GroupQueryAttention, each block a batch: its 64 queries and keys as the new tokens,
//               the 256 keys before it as past (BNSH), local_window_size 256 (no sinks; onnxruntime 1.30 refuses
//               it: "batch_size must be 1 when sequence_length > 1 and past context is given").
// The mha/attn23*/gqa candidates are prototypes: the window indices and the bias are constants computed for each
// n (the lowering computes them at run time). Every output is compared with the banded lowering's (max abs diff).
// Times: all sessions in this process, graphOptimizationLevel 'all', --threads intra-op threads (2), two warm-ups
// each, then the runs interleaved in alternating order. Reported: medians, minima, process CPU time per run, and
// the median of the per-round ratios banded / candidate ("paired": each round runs every candidate back to back,
// so a load change between rounds cancels). --profile: kernel time by op type (--by-node: by node), medians of 6
// profiled runs.
//
//   npx tsx --conditions=@attnopt/source tools/bench/banded-native.ts [--sizes 2048,4096,8192] [--repeats 5]
//     [--only banded,lowered,attn23,...] [--threads 2] [--profile [--by-node]]

import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type AttentionParams, attentionNode, causal, type DType, Graph, intersect, keeps, type MaskSpec, Node, sinks, slidingWindow, Tensor, tensorAttr, tensorType, union, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { lowerAttentionPass } from '@attnopt/passes';
import { runPipeline } from '@attnopt/rewrite';
import * as ort from 'onnxruntime-node';
import { steadyMalloc } from '../src/steady-malloc.js';

process.env.ORT_DISABLE_TELEMETRY = '1';
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const SIZES = opt('--sizes', '2048,4096,8192').split(',').map(Number);
const REPEATS = Number(opt('--repeats', '5'));
const H = 8;
const D = 64;
const WINDOW = 256;
const SINKS = 4;
const BLOCK = 64;
const G = 8; // granule: the extra rows are one granule
const LO = -(WINDOW - 1);
const BAND = Math.ceil((BLOCK - LO) / G) * G; // 320
const W = G + BAND; // 328
const SPEC: MaskSpec = intersect(causal(), union(slidingWindow(WINDOW - 1, 0), sinks(SINKS)));
const THREADS = Number(opt('--threads', '2'));
const SESSION: ort.InferenceSession.SessionOptions = { intraOpNumThreads: THREADS, interOpNumThreads: 1, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } };

/** A tiny graph builder for the prototypes. */
class B {
  readonly g = new Graph('proto');
  private k = 0;
  op(op: string, inputs: (Value | undefined)[], attrs: Record<string, unknown> = {}, outs = 1, domain?: string): Value[] {
    const outputs = Array.from({ length: outs }, () => new Value(`v${this.k++}`));
    this.g.addNode(new Node({ op, ...(domain ? { domain } : {}), name: `n${this.k++}`, inputs, outputs, attrs: attrs as never }));
    return outputs;
  }
  one(op: string, inputs: (Value | undefined)[], attrs: Record<string, unknown> = {}, domain?: string): Value {
    return this.op(op, inputs, attrs, 1, domain)[0]!;
  }
  const(t: Tensor): Value {
    return this.one('Constant', [], { value: tensorAttr(t) });
  }
  ints(xs: number[]): Value {
    return this.const(Tensor.fromValues('i64', [xs.length], xs.map(BigInt)));
  }
}
const int = (x: number) => ({ type: 'int', value: BigInt(x) });

function inputs(g: Graph): Value[] {
  return ['q', 'k', 'v'].map((name) => g.addInput(new Value(name, tensorType('f32', [1, 'seq', H * D]))));
}

function finish(b: B, y: Value, opsets: [string, number][]): Uint8Array {
  y.name = 'y';
  b.g.outputs.push(y);
  const model = newOnnxModel(b.g, { opset: opsets[0]![1] });
  for (const [domain, version] of opsets.slice(1)) (model.proto.opsetImport as { domain: string; version: bigint }[]).push({ domain, version: BigInt(version) });
  return exportOnnx(model);
}

/** The banded lowering of SPEC (what optimize emits today), or with extra lowering options. */
function loweredModel(extra: Record<string, unknown> = {}): Uint8Array {
  const params: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bsd', spec: SPEC };
  const g = new Graph('attention');
  const [q, k, v] = inputs(g);
  const y = new Value('y', tensorType('f32'));
  g.addNode(attentionNode(params, { q: q!, k: k!, v: v! }, { y }, 'attn'));
  g.outputs.push(y);
  runPipeline(g, [lowerAttentionPass({ opset: 23, ...extra } as never)]);
  const model = newOnnxModel(g, { opset: 23 });
  (model.proto.opsetImport as { domain: string; version: bigint }[]).push({ domain: 'com.microsoft', version: 1n });
  return exportOnnx(model);
}

/**
 * The window table of n at query block size bs: for block r, W key indices into [zero row; sinks; zeros; F zeros; K; zeros]
 * in granules of G rows (the first granule: the empty-row key, the sinks, zero rows; then the band), and the keep
 * pattern [nBlocks, bs, W] as the banded lowering defines it (the empty-row key kept only on rows keeping nothing).
 */
function windows(n: number, bs = BLOCK): { nBlocks: number; granules: number[]; width: number; front: number; back: number; keep: boolean[] } {
  const nBlocks = Math.ceil(n / bs);
  const band = Math.ceil((bs - LO) / G) * G;
  const width = G + band;
  const front = (((-LO) % G) + G) % G; // (-shift) mod G: band starts land on a granule
  const back = (G - ((n + front) % G)) % G;
  const nG = 1 + (front + n + back) / G;
  const granules: number[] = [];
  const keep: boolean[] = [];
  const dims = { nq: n, nk: n, past: 0 };
  for (let r = 0; r < nBlocks; r++) {
    const start = r * bs + LO;
    const first = (start + front) / G + 1; // granule row of the band's first key
    granules.push(0, ...Array.from({ length: band / G }, (_, u) => Math.min(Math.max(first + u, 0), nG - 1)));
    const cols: number[] = [-1, ...Array.from({ length: SINKS }, (_, s) => s), ...Array(G - 1 - SINKS).fill(-1)];
    for (let t = 0; t < band; t++) cols.push(start + t >= 0 && start + t < n ? start + t : -1);
    for (let i = 0; i < bs; i++) {
      const q = r * bs + i;
      const kb = cols.map((c, j) => j >= G && c >= 0 && keeps(SPEC, q, c, dims));
      const ke = cols.map((c, j) => j >= 1 && j < G && c >= 0 && keeps(SPEC, q, c, dims) && !(c >= start && c < start + band));
      const any = kb.some(Boolean) || ke.some(Boolean);
      for (let j = 0; j < width; j++) keep.push(j === 0 ? !any || q >= n : kb[j]! || ke[j]!);
    }
  }
  return { nBlocks, granules, width, front, back, keep };
}

/** Q padded to whole blocks [nBlocks, bs, H·D]; K and V windows [nBlocks, W, H·D] gathered by granules in bsd (no Transpose). */
function blocked(b: B, n: number, q: Value, k: Value, v: Value, bs = BLOCK) {
  const { nBlocks, granules, width, front, back, keep } = windows(n, bs);
  const pad = nBlocks * bs - n;
  const qb = b.one('Reshape', [b.one('Pad', [q, b.ints([0, 0, 0, 0, pad, 0])]), b.ints([nBlocks, bs, H * D])]);
  const idx = b.const(Tensor.fromValues('i64', [nBlocks, width / G], granules.map(BigInt)));
  const extra = b.const(Tensor.fromValues('i64', [SINKS], Array.from({ length: SINKS }, (_, s) => BigInt(s))));
  const win = (t: Value) => {
    const head = b.one('Pad', [b.one('Gather', [t, extra], { axis: int(1) }), b.ints([0, 1, 0, 0, G - 1 - SINKS + front, 0])]);
    const tail = back > 0 ? [b.const(Tensor.fromValues('f32', [1, back, H * D], Array(back * H * D).fill(0)))] : [];
    const zeroBack = b.one('Concat', [head, t, ...tail], { axis: int(1) });
    const gr = b.one('Reshape', [zeroBack, b.ints([1, -1, G * H * D])]);
    return b.one('Reshape', [b.one('Gather', [gr, idx], { axis: int(1) }), b.ints([nBlocks, width, H * D])]);
  };
  const out = (y: Value) => b.one('Slice', [b.one('Reshape', [y, b.ints([1, nBlocks * bs, H * D])]), b.ints([0]), b.ints([n]), b.ints([1])]);
  return { nBlocks, width, qb, kw: win(k), vw: win(v), keep, out };
}

function biasTensor(dtype: DType, nBlocks: number, bs: number, width: number, keep: boolean[]): Tensor {
  const shape = [nBlocks, 1, bs, width];
  return dtype === 'bool' ? Tensor.fromValues('bool', shape, keep.map((x) => (x ? 1 : 0))) : Tensor.fromValues(dtype, shape, keep.map((x) => (x ? 0 : -Infinity)));
}

function mhaModel(n: number): Uint8Array {
  const b = new B();
  const [q, k, v] = inputs(b.g);
  const x = blocked(b, n, q!, k!, v!);
  const bias = b.const(biasTensor('f32', x.nBlocks, BLOCK, x.width, x.keep));
  const y = b.op('MultiHeadAttention', [x.qb, x.kw, x.vw, undefined, undefined, bias], { num_heads: int(H), scale: { type: 'float', value: 1 / Math.sqrt(D) } }, 1, 'com.microsoft')[0]!;
  return finish(b, b.one('Identity', [x.out(y)]), [['', 21], ['com.microsoft', 1]]);
}

function attn23Model(n: number, maskType: 'f32' | 'bool', bs = BLOCK, shared = false, computed = false): Uint8Array {
  const b = new B();
  const [q, k, v] = inputs(b.g);
  const x = blocked(b, n, q!, k!, v!, bs);
  // shared: one [1, 1, b, W] mask for every block (a middle block's; wrong at the sequence ends: timing only)
  const mid = Math.floor(x.nBlocks / 2) * bs * x.width;
  const mask = b.const(shared ? biasTensor(maskType, 1, bs, x.width, x.keep.slice(mid, mid + bs * x.width)) : biasTensor(maskType, x.nBlocks, bs, x.width, x.keep));
  // computed: the same mask through a run-time Where (not a constant)
  const never = b.one('Less', [b.one('Shape', [q!]), b.ints([0, 0, 0])]);
  const m = computed ? b.one('Where', [b.one('Reshape', [b.one('Slice', [never, b.ints([0]), b.ints([1])]), b.ints([1, 1, 1, 1])]), b.const(Tensor.fromValues('f32', [1, 1, 1, 1], [0])), mask]) : mask;
  const y = b.one('Attention', [x.qb, x.kw, x.vw, m], { q_num_heads: int(H), kv_num_heads: int(H), scale: { type: 'float', value: 1 / Math.sqrt(D) } });
  return finish(b, b.one('Identity', [x.out(y)]), [['', 23]]);
}

/** GroupQueryAttention per block: past = the 256 keys before the block (BNSH), new = the block's 64. */
function gqaModel(n: number): Uint8Array {
  const b = new B();
  const [q, k, v] = inputs(b.g);
  const nBlocks = Math.ceil(n / BLOCK);
  const pad = nBlocks * BLOCK - n;
  const P = WINDOW;
  const blocks = (t: Value) => b.one('Reshape', [b.one('Pad', [t, b.ints([0, 0, 0, 0, pad, 0])]), b.ints([nBlocks, BLOCK, H * D])]);
  const pastIndex: number[] = [];
  const seqlens: number[] = [];
  for (let r = 0; r < nBlocks; r++) {
    const first = Math.max(0, r * BLOCK - P);
    for (let j = 0; j < P; j++) pastIndex.push(Math.min(first + j, n - 1));
    seqlens.push(r * BLOCK - first + BLOCK - 1);
  }
  const idx = b.const(Tensor.fromValues('i64', [nBlocks, P], pastIndex.map(BigInt)));
  const past = (t: Value) => b.one('Transpose', [b.one('Reshape', [b.one('Gather', [t, idx], { axis: int(1) }), b.ints([nBlocks, P, H, D])])], { perm: { type: 'ints', value: [0n, 2n, 1n, 3n] } });
  const sl = b.const(Tensor.fromValues('i32', [nBlocks], seqlens));
  const total = b.const(Tensor.fromValues('i32', [], [P + BLOCK]));
  const [y] = b.op('GroupQueryAttention', [blocks(q!), blocks(k!), blocks(v!), past(k!), past(v!), sl, total], { num_heads: int(H), kv_num_heads: int(H), local_window_size: int(WINDOW), scale: { type: 'float', value: 1 / Math.sqrt(D) } }, 3, 'com.microsoft');
  const out = b.one('Slice', [b.one('Reshape', [y!, b.ints([1, nBlocks * BLOCK, H * D])]), b.ints([0]), b.ints([n]), b.ints([1])]);
  return finish(b, b.one('Identity', [out]), [['', 21], ['com.microsoft', 1]]);
}

/** Kernel time by op type (--by-node: by node), medians over 6 profiled runs after a warm-up, the candidates' runs interleaved. */
async function profile(models: Record<string, Uint8Array>, feeds: Record<string, ort.Tensor>): Promise<void> {
  const prefix = (what: string) => `banded-native-${what}-${process.pid}`;
  const names = Object.keys(models);
  const sessions = await Promise.all(names.map((c) => ort.InferenceSession.create(models[c]!, { ...SESSION, enableProfiling: true, profileFilePrefix: join('/tmp', prefix(c)) })));
  for (let r = 0; r < 7; r++) for (const s of r % 2 === 0 ? sessions : [...sessions].reverse()) await s.run(feeds);
  for (const [k, c] of names.entries()) {
    sessions[k]!.endProfiling();
    await sessions[k]!.release();
    const file = join('/tmp', readdirSync('/tmp').filter((f) => f.startsWith(`${prefix(c)}_`)).sort().at(-1)!);
    const events = JSON.parse(readFileSync(file, 'utf8')) as { cat: string; name: string; ts: number; dur: number; args?: { op_name?: string } }[];
    rmSync(file, { force: true });
    const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(1);
    const perRun = runs.map((run) => {
      const m = new Map<string, number>();
      for (const e of events) {
        if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < run.ts || e.ts > run.ts + run.dur) continue;
        const key = args.includes('--by-node') ? `${e.args?.op_name}:${e.name.replace(/_kernel_time$/, '').split('/').at(-1)}` : (e.args?.op_name ?? '?');
        m.set(key, (m.get(key) ?? 0) + e.dur / 1e3);
      }
      return m;
    });
    const ops = [...new Set(perRun.flatMap((m) => [...m.keys()]))];
    const byOp = ops.map((op) => [op, median(perRun.map((m) => m.get(op) ?? 0))] as const).sort((p, q) => q[1] - p[1]);
    const kernels = median(perRun.map((m) => [...m.values()].reduce((a, x) => a + x, 0)));
    const nodes = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.ts >= runs[0]!.ts && e.ts <= runs[0]!.ts + runs[0]!.dur).length;
    console.log(`  profile ${c}: run ${median(runs.map((r) => r.dur / 1e3)).toFixed(1)} ms, ${nodes} nodes, kernels ${kernels.toFixed(1)} ms; ${byOp.filter(([, ms]) => ms >= (args.includes('--by-node') ? 0.1 : 0.3)).map(([op, ms]) => `${op} ${ms.toFixed(1)}`).join(', ')}`);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const load = () => readFileSync('/proc/loadavg', 'utf8').trim();

async function main(): Promise<void> {
  const all = ['banded', 'old', 'mha', 'attn23', 'attn23b', 'attn23s', 'attn23c', 'attn23_32', 'attn23_128', 'gqa', 'lowered'];
  const only = opt('--only', 'banded,lowered,mha,attn23').split(',').filter((c) => all.includes(c));
  console.log(`load before: ${load()}`);
  const t0 = performance.now();
  for (const n of SIZES) {
    const build: Record<string, () => Uint8Array> = {
      banded: () => loweredModel(),
      mha: () => mhaModel(n),
      attn23: () => attn23Model(n, 'f32'),
      attn23b: () => attn23Model(n, 'bool'),
      attn23s: () => attn23Model(n, 'f32', BLOCK, true),
      attn23c: () => attn23Model(n, 'f32', BLOCK, false, true),
      attn23_32: () => attn23Model(n, 'f32', 32),
      attn23_128: () => attn23Model(n, 'f32', 128),
      gqa: () => gqaModel(n),
      lowered: () => loweredModel({ native: 'onnxruntime' }),
      old: () => readFileSync(opt('--old-model', '')),
    };
    const sessions: Record<string, ort.InferenceSession> = {};
    for (const c of only) {
      try {
        sessions[c] = await ort.InferenceSession.create(build[c]!(), SESSION);
      } catch (e) {
        console.log(`n=${n} ${c}: cannot create: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    const data = (seed: number) => new Float32Array(n * H * D).map((_, i) => Math.sin(i * 0.37 + seed) * 0.5);
    const feeds = { q: new ort.Tensor('float32', data(1), [1, n, H * D]), k: new ort.Tensor('float32', data(2), [1, n, H * D]), v: new ort.Tensor('float32', data(3), [1, n, H * D]) };
    const names = Object.keys(sessions);
    const outs: Record<string, Float32Array> = {};
    for (const c of [...names]) {
      try {
        outs[c] = (await sessions[c]!.run(feeds)).y!.data as Float32Array;
        await sessions[c]!.run(feeds); // a second warm-up: the first run allocates
      } catch (e) {
        console.log(`n=${n} ${c}: cannot run: ${(e as Error).message.split('\n')[0]}`);
        names.splice(names.indexOf(c), 1);
      }
    }
    const ref = outs.banded;
    const times: Record<string, number[]> = Object.fromEntries(names.map((c) => [c, []]));
    const cpu: Record<string, number[]> = Object.fromEntries(names.map((c) => [c, []]));
    for (let r = 0; r < REPEATS; r++) {
      for (const c of r % 2 === 0 ? names : [...names].reverse()) {
        const u = process.cpuUsage();
        const t = performance.now();
        await sessions[c]!.run(feeds);
        times[c]!.push(performance.now() - t);
        const du = process.cpuUsage(u);
        cpu[c]!.push((du.user + du.system) / 1e3);
      }
    }
    const base = times.banded ? median(times.banded) : undefined;
    for (const c of names) {
      let diff = 0;
      if (ref) for (let i = 0; i < ref.length; i++) diff = Math.max(diff, Math.abs(ref[i]! - outs[c]![i]!));
      const m = median(times[c]!);
      const mc = median(cpu[c]!);
      console.log(
        `n=${n} ${c.padEnd(8)} median ${m.toFixed(1).padStart(7)} ms (min ${Math.min(...times[c]!).toFixed(1)}, cpu ${mc.toFixed(0)} ms)${base ? `  banded/this: medians ${(base / m).toFixed(2)}x, paired ${median(times[c]!.map((t, r) => times.banded![r]! / t)).toFixed(2)}x, min ${(Math.min(...times.banded!) / Math.min(...times[c]!)).toFixed(2)}x, cpu ${(median(cpu.banded!) / mc).toFixed(2)}x` : ''}  max|y - y_banded| ${ref ? diff.toExponential(1) : '-'}`,
      );
    }
    for (const s of Object.values(sessions)) await s.release();
    if (args.includes('--profile')) await profile(Object.fromEntries(names.map((c) => [c, build[c]!()])), feeds);
    console.log(`load after n=${n}: ${load()}`);
  }
  console.log(`whole run ${((performance.now() - t0) / 1e3).toFixed(0)} s`);
}

steadyMalloc();
await main();
