// A key bias (the same for every query row: ALiBi as slope_h · j [1, H, 1, nk], a key-padding mask [B, 1, 1, nk])
// shares one mask tile per (batch, head, key block) across the query blocks that keep the key block whole, and
// reads its max per summary segment once per head in the guard. The kernels then see the same scores as with the
// bias written out per row ([B, H, nq, nk]), so Y, the certificates and the fallback count are identical, bit
// for bit, for both backends, guarded and not, with padded keys (kvLength) and causal / window specs.

import { type AttentionParams, causal, intersect, sinks, slidingWindow, union } from '@attnopt/ir';
import { seededValues } from '@attnopt/properties';
import { describe, expect, it } from 'vitest';
import { compileAttention, type CpuBoolTensor, type CpuTensor } from './index.js';

const B = 2;
const H = 2;
const D = 16;
const N = 150;

const params = (spec: AttentionParams['spec']): AttentionParams => ({ numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 0.25, softcap: 0, layout: 'bhsd', spec });
const f32 = (shape: number[], data: Float64Array): CpuTensor => ({ shape, data: Float32Array.from(data) });

/** The key bias written out per query row: [B, H, N, N] (or [B, 1, N, N] for a bool mask). */
function perRow(bias: CpuTensor | CpuBoolTensor): CpuTensor | CpuBoolTensor {
  const [b, h] = bias.shape as [number, number];
  const out = bias.data instanceof Uint8Array ? new Uint8Array(b * h * N * N) : new Float32Array(b * h * N * N);
  for (let x = 0; x < b * h; x++) for (let i = 0; i < N; i++) out.set(bias.data.subarray(x * N, (x + 1) * N) as never, (x * N + i) * N);
  return { shape: [b, h, N, N], data: out } as CpuTensor | CpuBoolTensor;
}

describe('a key bias', () => {
  const q = f32([B, H, N, D], seededValues(1, B * H * N * D, 1.5));
  const k = f32([B, H, N, D], seededValues(2, B * H * N * D, 1.5));
  const v = f32([B, H, N, D], seededValues(3, B * H * N * D, 1));
  const alibi: CpuTensor = { shape: [B, H, 1, N], data: Float32Array.from({ length: B * H * N }, (_, x) => ((x % N) * (1 + Math.floor(x / N) % H)) / 32) };
  const padding: CpuBoolTensor = { shape: [B, 1, 1, N], data: Uint8Array.from({ length: B * N }, (_, x) => (x % N < N - 17 * Math.floor(x / N) ? 1 : 0)) };
  const specs = [causal(), intersect(causal(), union(slidingWindow(40, 0), sinks(3)))];
  for (const backend of ['wasm', 'js'] as const) {
    for (const [name, bias] of [['ALiBi', alibi], ['key-padding mask', padding]] as const) {
      for (const spec of specs) {
        it(`${backend}, ${name}, ${spec.kind}: the same Y as the bias written per row`, () => {
          const kernel = compileAttention(params(spec), { backend, blockQ: 16, blockK: 16 });
          const kvLength = [N, N - 30];
          expect(kernel.run({ q, k, v, bias, kvLength })).toEqual(kernel.run({ q, k, v, bias: perRow(bias), kvLength }));
        });
      }
      it(`${backend}, ${name}, guarded window inside causal: the same Y, certificates and fallback`, () => {
        const kernel = compileAttention(params(specs[1]!), { backend, blockQ: 16, blockK: 16, guard: { epsilon: 1e-3, block: 16, modelMask: causal() } });
        const a = kernel.runGuarded({ q, k, v, bias });
        const b = kernel.runGuarded({ q, k, v, bias: perRow(bias) });
        expect(a.y).toEqual(b.y);
        expect(a.certificates).toEqual(b.certificates);
        expect([a.fallbackRows, a.recomputedRows]).toEqual([b.fallbackRows, b.recomputedRows]);
      });
    }
  }
});
