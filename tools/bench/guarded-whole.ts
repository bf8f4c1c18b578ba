// Whole models side by side in onnxruntime (CPU): each file run on the same generated input (@attnopt/core's
// generateInputs at --seq-len tokens, seed 1), sessions at graphOptimizationLevel 'all', --threads intra-op threads
// (2), two warm-ups each, then --repeats rounds running every model back to back in alternating order; median wall
// and CPU time (user + system, every thread) per model, and the median of per-round ratios to the first file.
// Used to time a lowering change: the original, the model optimized before it and after it.
//
//   npx tsx --conditions=@attnopt/source tools/bench/guarded-whole.ts --seq-len 1024 [--repeats 15] [--threads 2] a.onnx b.onnx ...

import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { generateInputs, loadModel } from '@attnopt/core';
import * as ort from 'onnxruntime-node';
import { steadyMalloc } from '../src/steady-malloc.js';

process.env.ORT_DISABLE_TELEMETRY = '1';
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const SEQ = Number(opt('--seq-len', '1024'));
const REPEATS = Number(opt('--repeats', '15'));
const THREADS = Number(opt('--threads', '2'));
const FILES = args.filter((a, i) => a.endsWith('.onnx') && !['--seq-len', '--repeats', '--threads'].includes(args[i - 1] ?? ''));
const ORT_TYPES: Record<string, ort.Tensor.Type> = { f32: 'float32', f64: 'float64', i64: 'int64', i32: 'int32', bool: 'bool', u8: 'uint8', i8: 'int8' };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  if (FILES.length === 0) throw new Error('guarded-whole: no .onnx files given');
  console.log(`# ${cpus()[0]?.model ?? 'cpu'} x${cpus().length}, onnxruntime-node threads ${THREADS}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const [sample] = generateInputs(loadModel(FILES[0]!), { seqLen: SEQ, seed: 1 });
  const feeds = Object.fromEntries(
    Object.entries(sample!).map(([name, t]) => {
      const type = ORT_TYPES[t.dtype];
      if (!type) throw new Error(`guarded-whole: ${FILES[0]}: input ${name} has dtype ${t.dtype}, not handled here`);
      return [name, new ort.Tensor(type, t.data as ort.Tensor.DataType, [...t.shape])];
    }),
  );
  const session: ort.InferenceSession.SessionOptions = { intraOpNumThreads: THREADS, interOpNumThreads: 1, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } };
  const sessions = await Promise.all(FILES.map((f) => ort.InferenceSession.create(readFileSync(f), session)));
  for (const s of sessions) for (let w = 0; w < 2; w++) await s.run(feeds);
  const wall = FILES.map(() => [] as number[]);
  const cpu = FILES.map(() => [] as number[]);
  for (let r = 0; r < REPEATS; r++) {
    const order = r % 2 === 0 ? FILES.map((_, i) => i) : FILES.map((_, i) => FILES.length - 1 - i);
    for (const i of order) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await sessions[i]!.run(feeds);
      wall[i]!.push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      cpu[i]!.push((c.user + c.system) / 1000);
    }
  }
  const ratio = (xs: number[][], i: number) => median(xs[i]!.map((t, r) => t / xs[0]![r]!));
  console.log(`seq len ${SEQ}, ${REPEATS} rounds (ratios: median of per-round ratios to ${FILES[0]})`);
  FILES.forEach((f, i) =>
    console.log(`  ${f.padEnd(48)} wall ${median(wall[i]!).toFixed(1)} ms (${ratio(wall, i).toFixed(2)}x)   cpu ${median(cpu[i]!).toFixed(1)} ms (${ratio(cpu, i).toFixed(2)}x)`),
  );
  console.log(`# load average after ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

steadyMalloc();
await main();
