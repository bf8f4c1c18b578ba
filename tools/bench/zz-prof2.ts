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
const G = globalThis as any;
for (const [name, f] of [['unguarded', () => u.run(inp, { output })], ['guarded', () => g.runGuarded(inp, { output })]] as const) {
  f(); f();
  G.tBase = G.tSparse = G.tTiles = 0;
  const a = performance.now();
  for (let i = 0; i < 5; i++) f();
  console.log(name, ((performance.now() - a) / 5).toFixed(1), 'sparse plan', (G.tSparse / 5).toFixed(2), 'base plan', (G.tBase / 5).toFixed(2), 'tiles', (G.tTiles / 5).toFixed(2), G.nTiles);
}
