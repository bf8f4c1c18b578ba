// What timing each rewrite against its site as written (DecideOptions.measure) changes on whole models: each model
// optimized twice with the default options at --seq-len tokens (generated calibration), once with the cost model
// alone deciding (measure: false) and once measured (the default), then the original and both optimized files
// timed side by side by guarded-whole.ts (same generated input, seed 1; alternating rounds; median of per-round
// ratios to the original). Prints one markdown row per model.
//
//   npx tsx --conditions=@attnopt/source tools/bench/measured-gate.ts [--seq-len 1024] [--repeats 15] [--models bloom,falcon,...]

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel, optimize, type OptimizedSite, writeModel } from '@attnopt/core';
import { steadyMalloc } from '../src/steady-malloc.js';

process.env.ORT_DISABLE_TELEMETRY = '1';
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const SEQ = Number(opt('--seq-len', '1024'));
const REPEATS = opt('--repeats', '15');
const MODELS = opt('--models', 'bloom,falcon,mistral,llama-past,qwen2-past,t5,longformer-local-global').split(',');
const here = fileURLToPath(new URL('.', import.meta.url));
const fixture = (m: string) => join(here, '..', 'fixtures', 'whole-models', `${m}.onnx`);

/** The distinct forms of a model's sites, a site kept as written marked so. */
const forms = (sites: readonly OptimizedSite[]) => [...new Set(sites.map((s) => `${s.chosen.replaceAll(' | ', ', ')}${s.restored ? ' (as written)' : ''}`))].join('; ');

/** guarded-whole.ts's wall-time ratios to the first file, in file order. */
function timed(files: readonly string[]): { ms: number; ratio: number }[] {
  const run = spawnSync('npx', ['tsx', '--conditions=@attnopt/source', join(here, 'guarded-whole.ts'), '--seq-len', String(SEQ), '--repeats', REPEATS, ...files], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`guarded-whole.ts failed: ${run.stderr}`);
  return files.map((f) => {
    const line = run.stdout.split('\n').find((l) => l.trimStart().startsWith(f));
    const m = line ? /wall ([\d.]+) ms \(([\d.]+)x\)/.exec(line) : null;
    if (!m) throw new Error(`guarded-whole.ts printed no time for ${f}:\n${run.stdout}`);
    return { ms: Number(m[1]), ratio: Number(m[2]) };
  });
}

async function main(): Promise<void> {
  console.log(`# ${cpus()[0]?.model ?? 'cpu'} x${cpus().length}, n = ${SEQ}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log('| model | cost model alone: forms | measured: forms | onnxruntime ms: original / cost model alone / measured | optimize s: alone / measured |');
  console.log('|---|---|---|---:|---:|');
  const dir = mkdtempSync(join(tmpdir(), 'measured-gate-'));
  try {
    for (const m of MODELS) {
      const out = (k: string) => join(dir, `${m}.${k}.onnx`);
      const variants: { sites: readonly OptimizedSite[]; seconds: number }[] = [];
      for (const [k, measure] of [
        ['alone', false],
        ['measured', undefined],
      ] as const) {
        const t0 = performance.now();
        try {
          const result = await optimize(loadModel(fixture(m)), { seqLen: SEQ, ...(measure === false ? { measure } : {}) });
          variants.push({ sites: result.sites, seconds: (performance.now() - t0) / 1e3 });
          writeModel(out(k), result.model);
        } catch (e) {
          console.log(`| ${m} | not optimized at n = ${SEQ}: ${(e as Error).message.slice(0, 200)} | | | |`);
          break;
        }
      }
      if (variants.length < 2) continue;
      let times: string;
      try {
        const [orig, alone, measured] = timed([fixture(m), out('alone'), out('measured')]);
        const cell = (t: { ms: number; ratio: number }) => `${t.ms.toFixed(1)} (${t.ratio.toFixed(2)}x)`;
        times = `${orig!.ms.toFixed(1)} / ${cell(alone!)} / ${cell(measured!)}`;
      } catch (e) {
        times = `not timed: ${(e as Error).message.split('\n').find((l) => /Status Message|Error/.test(l))?.slice(0, 160) ?? 'guarded-whole.ts failed'}`;
      }
      console.log(`| ${m} | ${forms(variants[0]!.sites)} | ${forms(variants[1]!.sites)} | ${times} | ${variants[0]!.seconds.toFixed(0)} / ${variants[1]!.seconds.toFixed(0)} |`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`# load average after ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

steadyMalloc();
await main();
