/// <reference types="@webgpu/types" />
// The price of the guarded tier in the WGSL kernels, on whatever WebGPU adapter is found: the site of
// tools/bench/guarded.ts (8 heads, head dim 64, batch 1, causal baseline, window 256 + sinks 4, budget 1e-3, key
// segments of 64) run four ways, inputs and passes prepared once, every run timed to the queue's completion:
//   dense:      the tiled flash kernel, causal;
//   unguarded:  the tiled flash kernel, causal ∩ (window 256 ∪ sinks 4) (its block lists skip the empty blocks);
//   guarded:    the guarded kernel (summaries, V ranges, then one thread per row: the band and the sinks, the
//               certificate over the key segments, the row again densely when it fails);
//   forced:     the guarded kernel on diffuse inputs (every row that drops a key falls back), against dense on them.
// Inputs as the onnxruntime bench's (guarded-models.ts): local (rotary-like, peak logit 40) and diffuse. Rounds run
// every kernel back to back in alternating order; medians, and the median of per-round ratios.
// On lavapipe (a CPU Vulkan driver) the times say what each kernel's work costs on this CPU, not on a GPU: the
// script prints the adapter and says so.
//
//   npx tsx --conditions=@attnopt/source tools/bench/guarded-wgsl.ts [--n 2048] [--repeats 5]

import { prepareAttention, prepareGuardedAttention, WgslRuntime } from '@attnopt/backend-wgsl';
import { type AttentionParams, causal, intersect, type MaskSpec, sinks, slidingWindow, union } from '@attnopt/ir';
import { D, diffuseInputs, H, localInputs } from './guarded-models.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const REPEATS = Number(opt('--repeats', '5'));
const KEPT: MaskSpec = union(slidingWindow(255, 0), sinks(4));
const EPSILON = 1e-3;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** [1, n, H · D] (the onnxruntime bench's bsd inputs) -> bhsd tensors. */
function bhsd(x: Record<string, { data: unknown }>, n: number) {
  const to = (name: string) => {
    const src = x[name]!.data as Float32Array;
    const out = new Float32Array(H * n * D);
    for (let i = 0; i < n; i++) for (let h = 0; h < H; h++) out.set(src.subarray((i * H + h) * D, (i * H + h + 1) * D), (h * n + i) * D);
    return { shape: [1, H, n, D], data: out };
  };
  return { q: to('q'), k: to('k'), v: to('v') };
}

async function main(): Promise<void> {
  const rt = await WgslRuntime.create({ powerPreference: 'high-performance' });
  const software = /llvmpipe|lavapipe|swiftshader|software/i.test(rt.adapterDescription);
  const n = Number(opt('--n', software ? '2048' : '4096'));
  console.log(`# guarded WGSL bench: ${rt.adapterDescription}, n = ${n}, ${H} heads, d ${D}, ${REPEATS} rounds`);
  if (software) console.log('# a software adapter (lavapipe): these times are CPU work, not GPU speed');
  const params = (spec: MaskSpec): AttentionParams => ({ numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd', spec });
  const local = bhsd(localInputs(n) as never, n);
  const diffuse = bhsd(diffuseInputs(n) as never, n);
  const guard = { epsilon: EPSILON, modelMask: causal(), block: 64 };
  const runs = {
    dense: await prepareAttention(rt, params(causal()), local),
    unguarded: await prepareAttention(rt, params(intersect(causal(), KEPT)), local),
    guarded: await prepareGuardedAttention(rt, params(KEPT), local, guard),
    forced: await prepareGuardedAttention(rt, params(KEPT), diffuse, guard),
    denseDiffuse: await prepareAttention(rt, params(causal()), diffuse),
  };
  const names = Object.keys(runs) as (keyof typeof runs)[];
  for (const m of names) await runs[m].run(); // pipelines compiled, warm
  const times: Record<string, number[]> = Object.fromEntries(names.map((m) => [m, []]));
  for (let r = 0; r < REPEATS; r++) {
    for (const m of r % 2 === 0 ? names : [...names].reverse()) {
      const t0 = performance.now();
      await runs[m].run();
      times[m]!.push(performance.now() - t0);
    }
  }
  const ratio = (a: string, b: string) => median(times[a]!.map((t, r) => t / times[b]![r]!)).toFixed(2);
  const [g, f, yDense, yUnguarded] = [await runs.guarded.read(), await runs.forced.read(), await runs.dense.read(), await runs.unguarded.read()];
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((mx, x, t) => Math.max(mx, Math.abs(x - b[t]!)), 0);
  for (const m of names) console.log(`  ${m.padEnd(13)} median ${median(times[m]!).toFixed(1)} ms`);
  console.log(`  local inputs: ${g.fallbackRows} of ${g.rows} rows fell back; max |guarded - dense| ${maxDiff(g.y, yDense).toExponential(2)}, max |unguarded - dense| ${maxDiff(yUnguarded, yDense).toExponential(2)}`);
  console.log(`  diffuse inputs: ${f.fallbackRows} of ${f.rows} rows fell back`);
  console.log(`  dense / guarded      ${ratio('dense', 'guarded')}x   (target >= 5)`);
  console.log(`  guarded / unguarded  ${ratio('guarded', 'unguarded')}x   (target <= 1.25)`);
  console.log(`  dense / unguarded    ${ratio('dense', 'unguarded')}x`);
  console.log(`  forced / dense (diffuse inputs) ${ratio('forced', 'denseDiffuse')}x   (target <= 1.3)`);
  for (const m of names) runs[m].release();
}

await main();
process.exit(0);
