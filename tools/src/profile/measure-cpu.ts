// Measures this machine's CPU through onnxruntime-node (2 intra-op threads) and writes the target profile
// packages/cost/src/profiles/this-machine-cpu.ts: attention-shaped MatMul FLOP/s at a few sizes, Softmax
// elements/s, elementwise bytes/s per op type the lowered attention graph runs (Mul, Where, IsNaN, the mask's
// comparisons and And; IsNaN uses Mul's), the per-node overhead and the per-run overhead. About a minute.
//
//   npx tsx --conditions=@attnopt/source tools/src/profile/measure-cpu.ts [--out FILE] [--dry-run]

import { execSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Attr, type DType, Graph, intAttr, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import * as ort from 'onnxruntime-node';
import { steadyMalloc } from '../steady-malloc.js';

process.env.ORT_DISABLE_TELEMETRY = '1';
const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const outFile = args.includes('--out') ? args[args.indexOf('--out') + 1]! : path.join(here, '..', '..', '..', 'packages', 'cost', 'src', 'profiles', 'this-machine-cpu.ts');
const HEADS = 8;
const D = 64;

interface RatePoint { size: number; perSecond: number }

/** A one-graph model: `build` adds nodes over inputs; every input is fed (nothing constant-folds). */
function model(inputs: [string, DType, number[]][], build: (g: Graph, v: Record<string, Value>) => Value): Uint8Array {
  const g = new Graph('probe');
  const v: Record<string, Value> = {};
  for (const [name, dt, shape] of inputs) v[name] = g.addInput(new Value(name, tensorType(dt, shape)));
  g.outputs.push(build(g, v));
  return exportOnnx(newOnnxModel(g, { opset: 21 }));
}

function node(g: Graph, op: string, inputs: Value[], attrs: Record<string, Attr> = {}, dtype: DType = 'f32'): Value {
  const out = new Value(`${op.toLowerCase()}_${g.nodes.length}`, tensorType(dtype));
  g.add({ op, inputs, outputs: [out], attrs });
  return out;
}

function feed(name: string, dt: DType, shape: number[]): ort.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  switch (dt) {
    case 'f32': {
      const a = new Float32Array(n);
      for (let k = 0; k < n; k++) a[k] = Math.sin(k) * 0.5;
      return new ort.Tensor('float32', a, shape);
    }
    case 'bool': {
      const a = new Uint8Array(n);
      for (let k = 0; k < n; k++) a[k] = k % 3 === 0 ? 0 : 1;
      return new ort.Tensor('bool', a, shape);
    }
    case 'i64': {
      const a = new BigInt64Array(n);
      // [2]-shaped feeds are Slice's starts / ends / axes: [0, 0], [1, 1], [-2, -1]
      for (let k = 0; k < n; k++) a[k] = n === 2 && name === 'ends' ? 1n : n === 2 && name === 'axes' ? BigInt(k - 2) : n === 2 ? 0n : BigInt(k);
      return new ort.Tensor('int64', a, shape);
    }
    default:
      throw new Error(`no feed for ${dt}`);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Median seconds of one session.run, after a warm-up, minus nothing (callers subtract the run overhead). */
async function timeModel(bytes: Uint8Array, inputs: [string, DType, number[]][], repeats: number, level: 'all' | 'disabled' = 'all'): Promise<number> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: level, executionMode: 'sequential' });
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, dt, shape] of inputs) feeds[name] = feed(name, dt, shape);
  await session.run(feeds);
  const ts: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t = performance.now();
    await session.run(feeds);
    ts.push((performance.now() - t) / 1e3);
  }
  await session.release();
  return median(ts);
}

const repeatsFor = (bytes: number) => (bytes > 64e6 ? 5 : bytes > 8e6 ? 9 : 21);

async function main(): Promise<void> {
  const t0 = performance.now();
  const log = (s: string) => console.log(`[${((performance.now() - t0) / 1e3).toFixed(1)} s] ${s}`);

  // per-run overhead: one Add of two 1-element tensors
  const tiny: [string, DType, number[]][] = [['a', 'f32', [1]], ['b', 'f32', [1]]];
  const addChain = (len: number) => model(tiny, (g, v) => {
    let x = v.a!;
    for (let k = 0; k < len; k++) x = node(g, 'Add', [x, v.b!]);
    return x;
  });
  const run1 = await timeModel(addChain(1), tiny, 201);
  const run101 = await timeModel(addChain(101), tiny, 101, 'disabled');
  const opOverhead = Math.max(0, (run101 - run1) / 100);
  const runOverhead = Math.max(0, run1 - opOverhead);
  log(`run overhead ${(runOverhead * 1e6).toFixed(1)} µs, per-node overhead ${(opOverhead * 1e6).toFixed(2)} µs`);
  const net = (t: number) => Math.max(t - runOverhead - opOverhead, 1e-7);

  // Large tensors never cross into JS (onnxruntime-node copies inputs and outputs): outputs are sliced to
  // [.., 1, 1], and an op's time is the difference of a chain of 3 and a chain of 1 (input copy cancels).
  const sl: [string, DType, number[]][] = [['starts', 'i64', [2]], ['ends', 'i64', [2]], ['axes', 'i64', [2]]];
  const slice = (g: Graph, v: Record<string, Value>, x: Value, dt: DType = 'f32') => node(g, 'Slice', [x, v.starts!, v.ends!, v.axes!], {}, dt);
  const chainTime = async (ins: [string, DType, number[]][], step: (g: Graph, v: Record<string, Value>, x: Value) => Value, first: string, rep: number) => {
    const all = [...ins, ...sl];
    const build = (k: number) => model(all, (g, v) => {
      let x = v[first]!;
      for (let i = 0; i < k; i++) x = step(g, v, x);
      return slice(g, v, x, first === 'b' ? 'bool' : 'f32');
    });
    const t1 = await timeModel(build(1), all, rep);
    const t3 = await timeModel(build(3), all, rep);
    return Math.max((t3 - t1) / 2 - opOverhead, 1e-7);
  };

  // attention-shaped matmuls: [H, n, D] x [H, D, n] (QKᵀ), then [H, n, n] x [H, n, D] (PV)
  const matmul: RatePoint[] = [];
  for (const n of [128, 256, 512, 1024, 2048]) {
    const ins: [string, DType, number[]][] = [['q', 'f32', [1, HEADS, n, D]], ['kt', 'f32', [1, HEADS, D, n]], ['v', 'f32', [1, HEADS, n, D]], ...sl];
    const flops = 2 * HEADS * n * n * D;
    const rep = repeatsFor(4 * HEADS * n * n);
    const tq = net(await timeModel(model(ins, (g, v) => slice(g, v, node(g, 'MatMul', [v.q!, v.kt!]))), ins, rep));
    const tqp = net(await timeModel(model(ins, (g, v) => slice(g, v, node(g, 'MatMul', [node(g, 'MatMul', [v.q!, v.kt!]), v.v!]))), ins, rep));
    // noise on a shared machine can make the difference implausible: then take PV as fast as QKᵀ
    const tp = tqp - tq - opOverhead > 0.3 * tq ? tqp - tq - opOverhead : tq;
    matmul.push({ size: flops, perSecond: (2 * flops) / (tq + tp) });
    log(`MatMul n=${n}: QKᵀ ${(flops / tq / 1e9).toFixed(1)} GFLOP/s, PV ${(flops / tp / 1e9).toFixed(1)} GFLOP/s`);
  }

  // score-sized ops over [1, H, n, n] floats, mask ops over [n, n] booleans
  const softmax: RatePoint[] = [];
  const elementwise: Record<string, RatePoint[]> = { Mul: [], Where: [], Compare: [], And: [] };
  for (const n of [256, 1024]) {
    const S = HEADS * n * n;
    const rep = repeatsFor(4 * S);
    const x: [string, DType, number[]] = ['x', 'f32', [1, HEADS, n, n]];
    const s: [string, DType, number[]] = ['s', 'f32', []];
    const m: [string, DType, number[]] = ['m', 'bool', [n, n]];
    const tSoft = await chainTime([x], (g, _v, y) => node(g, 'Softmax', [y], { axis: intAttr(-1) }), 'x', rep);
    softmax.push({ size: S, perSecond: S / tSoft });
    const tMul = await chainTime([x, s], (g, v, y) => node(g, 'Mul', [y, v.s!]), 'x', rep);
    elementwise.Mul!.push({ size: 8 * S, perSecond: (8 * S) / tMul });
    const tWhere = await chainTime([m, x, s], (g, v, y) => node(g, 'Where', [v.m!, y, v.s!]), 'x', rep);
    elementwise.Where!.push({ size: 8 * S + n * n, perSecond: (8 * S + n * n) / tWhere });
    log(`n=${n}: Softmax ${(S / tSoft / 1e9).toFixed(2)} Gelem/s, Mul ${((8 * S) / tMul / 1e9).toFixed(2)} GB/s, Where ${((8 * S) / tWhere / 1e9).toFixed(2)} GB/s`);
  }
  for (const n of [512, 2048, 4096]) {
    const sk = n * n;
    const rep = repeatsFor(sk * 4);
    const cols: [string, DType, number[]] = ['cols', 'i64', [n]];
    const rows: [string, DType, number[]] = ['rows', 'i64', [n, 1]];
    const b: [string, DType, number[]] = ['b', 'bool', [n, n]];
    const all = [cols, rows, ...sl];
    const tCmp = net(await timeModel(model(all, (g, v) => slice(g, v, node(g, 'LessOrEqual', [v.cols!, v.rows!], {}, 'bool'), 'bool')), all, rep));
    elementwise.Compare!.push({ size: sk, perSecond: sk / tCmp });
    const tAnd = await chainTime([b], (g, v, y) => node(g, 'And', [y, v.b!], {}, 'bool'), 'b', rep);
    elementwise.And!.push({ size: 3 * sk, perSecond: (3 * sk) / tAnd });
    log(`mask n=${n}: LessOrEqual ${(sk / tCmp / 1e9).toFixed(2)} GB/s, And ${((3 * sk) / tAnd / 1e9).toFixed(2)} GB/s`);
  }
  // large streams: the bandwidth of the largest Mul (read + write of 128 MiB)
  const bytesPerSecond = elementwise.Mul!.at(-1)!.perSecond;

  const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  let nproc = os.availableParallelism();
  try {
    nproc = Number(execSync('nproc').toString().trim());
  } catch {
    /* keep os.availableParallelism */
  }
  const ortVersion = (JSON.parse(fs.readFileSync(path.join(here, '..', '..', '..', 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')) as { version: string }).version;
  const round = (pts: RatePoint[]) => pts.map((p) => ({ size: p.size, perSecond: Number(p.perSecond.toPrecision(4)) }));
  const profile = {
    name: 'onnxruntime-cpu (this machine)',
    target: 'onnxruntime-cpu',
    execution: 'unfused',
    source: 'measured in onnxruntime-node, 2 intra-op threads, graphOptimizationLevel all, medians after a warm-up',
    peakFlopsPerSecond: 157e9,
    matmul: round(matmul),
    softmax: round(softmax),
    elementwise: { default: round(elementwise.Mul!), IsNaN: round(elementwise.Mul!), ...Object.fromEntries(Object.entries(elementwise).map(([k, v]) => [k, round(v)])) },
    bytesPerSecond: Number(bytesPerSecond.toPrecision(4)),
    opOverheadSeconds: Number(opOverhead.toPrecision(3)),
    runOverheadSeconds: Number(runOverhead.toPrecision(3)),
    measured: {
      date: new Date().toISOString(),
      machine: { cpu, cores: nproc, node: process.version, onnxruntime: ortVersion, os: `${os.type()} ${os.release()}` },
      command: 'npx tsx --conditions=@attnopt/source tools/src/profile/measure-cpu.ts',
    },
  };
  const text = `// Generated by tools/src/profile/measure-cpu.ts on ${profile.measured.date.slice(0, 10)}: rerun the script, do not edit.
// Sizes: matmul in FLOPs of one op, softmax in elements, elementwise in bytes read + written; rates per second.
import type { TargetProfile } from '../profile.js';

export const thisMachineCpu: TargetProfile = ${JSON.stringify(profile, null, 2)};
`;
  if (args.includes('--dry-run')) console.log(text);
  else {
    fs.writeFileSync(outFile, text);
    log(`wrote ${path.relative(process.cwd(), outFile)}`);
  }
}

steadyMalloc();
await main();
