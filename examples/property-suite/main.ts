// Checking your own attention kernel with attnopt's property suite: checkAttentionKernel generates problems
// (shapes, heads, GQA groups, masks, values), runs your kernel and the float64 reference, and on a mismatch
// reports a shrunk counterexample. Here the "user's kernel" is a naive JavaScript attention for causal and dense
// self-attention in the bhsd layout (with GQA and softcap, which the suite generates); a copy that forgets the scale shows what a failure looks like.
// Run from the repository root:  npx tsx --conditions=@attnopt/source examples/property-suite/main.ts

import fc from 'fast-check';
import { type AttentionSpec, causal, dense } from '@attnopt/ir';
import { checkAttentionKernel, type KernelProblem } from '@attnopt/properties';

/** A naive attention kernel: Q, K, V [batch, heads, n, dim] (bhsd), dense or causal, softcap; float64 math. */
function naiveAttention({ params, inputs }: KernelProblem, applyScale = true): Float64Array {
  const [B, H, N, D] = inputs.q.shape as [number, number, number, number];
  const KV = params.kvNumHeads;
  const Nk = inputs.k!.shape[2]!;
  const DV = params.vHeadDim;
  const isCausal = params.spec.kind === 'causal';
  const y = new Float64Array(B * H * N * DV);
  const scores = new Float64Array(Nk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / KV)); // the key/value head of this query head (GQA)
      for (let i = 0; i < N; i++) {
        let max = -Infinity;
        for (let j = 0; j < Nk; j++) {
          if (isCausal && j > i) {
            scores[j] = -Infinity;
            continue;
          }
          let s = 0;
          for (let c = 0; c < D; c++) s += inputs.q.data[((b * H + h) * N + i) * D + c]! * inputs.k!.data[((b * KV + g) * Nk + j) * D + c]!;
          const scaled = applyScale ? s * params.scale : s;
          scores[j] = params.softcap > 0 ? params.softcap * Math.tanh(scaled / params.softcap) : scaled;
          max = Math.max(max, scores[j]!);
        }
        if (max === -Infinity) continue; // no key kept: the row is 0
        let sum = 0;
        for (let j = 0; j < Nk; j++) sum += scores[j] = Math.exp(scores[j]! - max);
        for (let j = 0; j < Nk; j++) {
          const p = scores[j]! / sum;
          if (p === 0) continue;
          for (let c = 0; c < DV; c++) y[((b * H + h) * N + i) * DV + c]! += p * inputs.v!.data[((b * KV + g) * Nk + j) * DV + c]!;
        }
      }
    }
  }
  return y;
}

// The problems this kernel supports: self-attention in bhsd, no bias or past, dense or causal.
const supported = {
  layouts: ['bhsd'] as const,
  selfAttention: true,
  bias: false,
  past: false,
  spec: fc.constantFrom<AttentionSpec>(dense, causal()),
  numRuns: 100,
  seed: 42,
};

const good = checkAttentionKernel((p) => naiveAttention(p), supported);
console.log(`naive kernel: ${good.ok ? 'ok' : 'FAILED'} on ${good.details.numRuns} generated problems`);
if (!good.ok) console.log(good.report);

const bad = checkAttentionKernel((p) => naiveAttention(p, false), supported);
console.log(`kernel without the scale: ${bad.ok ? 'passed (unexpected)' : 'fails, as it should'}`);
if (!bad.ok) {
  const ce = bad.counterexample!;
  console.log(`  shrunk counterexample: ${ce.params.numHeads} heads, head size ${ce.params.headDim}, q [${ce.inputs.q.shape.join(', ')}], spec ${ce.params.spec.kind}`);
  console.log(`  ${bad.report!.split('\n').filter((l) => l.startsWith('kernel differs')).join('')}`);
}
process.exitCode = good.ok && !bad.ok ? 0 : 1;
