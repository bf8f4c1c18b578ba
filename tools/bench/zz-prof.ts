import { compileAttention } from '@attnopt/backend-cpu';
import { causal, sinks, slidingWindow, union } from '@attnopt/ir';
import { localInputs } from './guarded-models.js';
const N = 4096, H = 8, D = 64;
const x = localInputs(N);
const data = (n: string) => x[n]!.data as Float32Array;
const shape = [1, N, H * D];
const inp = { q: { shape, data: data('q') }, k: { shape, data: data('k') }, v: { shape, data: data('v') } };
const params = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / 8, softcap: 0, layout: 'bsd' as const, spec: union(slidingWindow(255, 0), sinks(4)) };
const g = compileAttention(params, { guard: { epsilon: 1e-3, modelMask: causal() } });
const u = compileAttention(params);
const output = new Float32Array(N * H * D);
const mode = process.argv[2] ?? 'g';
for (let w = 0; w < 2; w++) { g.runGuarded(inp, { output }); u.run(inp, { output }); }
const t = (f: () => unknown) => { const a = performance.now(); for (let i = 0; i < 5; i++) f(); return (performance.now() - a) / 5; };
if (mode === "g") console.log((globalThis as any).tS / 7, (globalThis as any).tV / 7, 'guarded', t(() => g.runGuarded(inp, { output })).toFixed(1), 'unguarded', t(() => u.run(inp, { output })).toFixed(1));
