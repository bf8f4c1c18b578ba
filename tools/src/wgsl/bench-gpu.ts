/// <reference types="@webgpu/types" />
// GPU benchmark of the generated WGSL attention kernel: achieved TFLOP/s and bandwidth against the device's
// peak. Peaks are not queryable through WebGPU: pass them (--peak-tflops, --peak-gbps) for a real GPU.
// On lavapipe (a CPU rasterizer) the numbers say nothing about GPU speed; the script says so.
//   npx tsx --conditions=@attnopt/source tools/src/wgsl/bench-gpu.ts [--n 1024] [--d 64] [--heads 8] [--kv-heads 8]
//     [--spec dense|causal|window] [--dtype f32|f16] [--kernel tiled|subgroup] [--reps 10] [--peak-tflops X] [--peak-gbps Y]

import { prepareAttention, WgslRuntime } from '@attnopt/backend-wgsl';
import { type AttentionParams, causal, dense, slidingWindow, keptPairs, SplitMix64 } from '@attnopt/ir';

const arg = (name: string, dflt: string): string => {
  const k = process.argv.indexOf(`--${name}`);
  return k >= 0 && process.argv[k + 1] !== undefined ? process.argv[k + 1]! : dflt;
};

const rt = await WgslRuntime.create({ powerPreference: 'high-performance' });
const software = /llvmpipe|lavapipe|swiftshader|software/i.test(rt.adapterDescription);
const n = Number(arg('n', software ? '256' : '2048'));
const d = Number(arg('d', '64'));
const H = Number(arg('heads', '8'));
const G = Number(arg('kv-heads', String(H)));
const dtype = arg('dtype', 'f32') as 'f32' | 'f16';
const reps = Number(arg('reps', software ? '3' : '20'));
const specName = arg('spec', 'causal');
const spec = specName === 'dense' ? dense : specName === 'window' ? slidingWindow(256, 0) : causal();
const params: AttentionParams = { numHeads: H, kvNumHeads: G, headDim: d, vHeadDim: d, scale: 1 / Math.sqrt(d), softcap: 0, layout: 'bhsd', spec };
const rng = new SplitMix64(1);
const t = (len: number) => Float32Array.from({ length: len }, () => 2 * rng.nextFloat() - 1);
const inputs = { q: { shape: [1, H, n, d], data: t(H * n * d) }, k: { shape: [1, G, n, d], data: t(G * n * d) }, v: { shape: [1, G, n, d], data: t(G * n * d) } };

const kernel = arg('kernel', rt.features.subgroups ? 'subgroup' : 'tiled');
const prepared = await prepareAttention(rt, params, inputs, { dtype, subgroups: kernel === 'subgroup' });
await prepared.run(); // warm-up (and pipeline compile)
const t0 = performance.now();
for (let r = 0; r < reps; r++) await prepared.run();
const seconds = (performance.now() - t0) / 1e3 / reps;
const pairs = keptPairs(spec, { nq: n, nk: n }) * H;
const flops = 4 * d * pairs; // Q Kᵀ and P V, 2 FLOPs per multiply-add
const bytesPerElem = dtype === 'f16' ? 2 : 4;
const bytes = bytesPerElem * (2 * H * n * d + 2 * G * n * d); // compulsory traffic: Q, Y, K, V once
const tflops = flops / seconds / 1e12;
const gbps = bytes / seconds / 1e9;
const peakT = Number(arg('peak-tflops', '0'));
const peakB = Number(arg('peak-gbps', '0'));
console.log(`device: ${rt.adapterDescription} (f16 ${rt.features.f16}, subgroups ${rt.features.subgroups})`);
console.log(`attention ${spec.kind} (${kernel} kernel), n ${n}, heads ${H}/${G}, head dim ${d}, ${dtype}: ${(seconds * 1e3).toFixed(3)} ms per call`);
console.log(`blocks: ${prepared.blocks.full} mask-free, ${prepared.blocks.partial} masked, ${prepared.blocks.skipped} skipped`);
console.log(`achieved ${tflops.toFixed(4)} TFLOP/s${peakT ? ` = ${((100 * tflops) / peakT).toFixed(1)}% of ${peakT} TFLOP/s peak` : ' (pass --peak-tflops for % of peak)'}`);
console.log(`compulsory bandwidth ${gbps.toFixed(2)} GB/s${peakB ? ` = ${((100 * gbps) / peakB).toFixed(1)}% of ${peakB} GB/s peak` : ' (pass --peak-gbps for % of peak)'}`);
if (software) console.log('NOTE: this adapter is a software rasterizer (lavapipe/llvmpipe) on the CPU: these numbers are meaningless for GPU speed.');
prepared.release();
