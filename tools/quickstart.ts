// The quickstart's closing demo (after `attnopt inspect/optimize/verify/codegen` ran on the bundled model): build one
// attention site in the IR, show it in the text form, ask its spec what a kernel may skip, and measure on
// random inputs what the sparse form changes against dense causal attention, with the float64 reference.

import {
  attentionNode,
  type AttentionParams,
  assertValid,
  BlockClass,
  causal,
  classifyBlocks,
  gaussian,
  Graph,
  keptPairs,
  printGraph,
  printSpec,
  sinks,
  slidingWindow,
  tensorType,
  union,
  Value,
} from '@attnopt/ir';
import { referenceAttention, tensor64 } from '@attnopt/reference';

const heads = 8;
const headDim = 64;
const streaming = union(sinks(4), slidingWindow(252, 0));
const params: AttentionParams = {
  numHeads: heads,
  kvNumHeads: heads,
  headDim,
  vHeadDim: headDim,
  scale: 1 / Math.sqrt(headDim),
  softcap: 0,
  layout: 'bhsd',
  spec: streaming,
};

// 1. One attention site in the IR, verified and printed.
const graph = new Graph('streaming_attention');
const qkv = ['q', 'k', 'v'].map((n) => graph.addInput(new Value(n, tensorType('f32', [1, heads, 'S', headDim]))));
const y = new Value('y', tensorType('f32', [1, heads, 'S', headDim]));
graph.addNode(attentionNode(params, { q: qkv[0]!, k: qkv[1]!, v: qkv[2]! }, { y }, 'attn0'));
graph.outputs.push(y);
assertValid(graph);
console.log('attnopt: one attention site in the IR text form\n');
console.log(printGraph(graph));

// 2. What the spec lets a kernel skip, without materializing any n x n mask.
console.log(`\nspec ${printSpec(streaming)} against ${printSpec(causal())}, 64 x 64 blocks:`);
console.log('      n   kept pairs   of causal   empty blocks   partial   full (no mask work)');
for (const n of [1024, 4096, 16384]) {
  const dims = { nq: n, nk: n };
  const kept = keptPairs(streaming, dims);
  const causalPairs = keptPairs(causal(), dims);
  const count = [0, 0, 0];
  for (const row of classifyBlocks(streaming, 64, 64, dims)) for (const c of row) count[c]!++;
  const total = count[0]! + count[1]! + count[2]!;
  const pct = (x: number) => `${((100 * x) / total).toFixed(1)}%`;
  console.log(
    `${String(n).padStart(7)} ${String(kept).padStart(12)} ${((100 * kept) / causalPairs).toFixed(1).padStart(10)}% ` +
      `${pct(count[BlockClass.Empty]!).padStart(14)} ${pct(count[BlockClass.Partial]!).padStart(9)} ${pct(count[BlockClass.Full]!).padStart(9)}`,
  );
}

// 3. What it changes, measured with the float64 reference on random inputs (n = 512, fixed seed).
const n = 512;
const shape = [1, heads, n, headDim];
const [q, k, v] = [1, 2, 3].map((seed) => tensor64(shape, gaussian(seed, heads * n * headDim)));
const exact = referenceAttention({ ...params, spec: causal() }, { q: q!, k: k!, v: v! }).y.data;
const sparse = referenceAttention(params, { q: q!, k: k!, v: v! }).y.data;
let maxErr = 0;
for (let x = 0; x < exact.length; x++) maxErr = Math.max(maxErr, Math.abs(exact[x]! - sparse[x]!));
console.log(`\nn = ${n}, Gaussian Q/K/V (seeds 1-3): max |causal - streaming| over all outputs = ${maxErr.toExponential(3)}`);
console.log('(random inputs spread attention evenly, the worst case for a window; real models concentrate it)');
console.log(
  '\nTry it on your model: npx attnopt explain MODEL.onnx, npx attnopt optimize MODEL.onnx -o OUT.onnx, then npx attnopt verify MODEL.onnx OUT.onnx; ' +
    'npx attnopt codegen MODEL.onnx --target wgsl -o KERNELS/ for kernels (see README).',
);
