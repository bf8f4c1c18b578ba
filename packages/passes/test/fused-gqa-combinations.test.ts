// com.microsoft GroupQueryAttention in seeded random combinations, each run in onnxruntime as written and
// lifted, lowered to standard ops, on the same inputs: separate or packed QKV, a prompt (no cache) or a step
// over a cache of 4, one query or three, seqlens_k full or padded (batch row 1 shorter: fewer cached keys, or a
// shorter prompt), local_window_size, softcap, attention_bias, f32 or f16. Y and both present outputs must match
// (fp32, |lowered - original| <= 1e-5 + 1e-6 |original|; f16 4e-3 + 4e-3 |original|), the present buffers zero past each row's keys as
// onnxruntime writes them. One exception, stated: in a padded prompt with a window, the padding queries' rows
// (i > seqlens_k[b], whose outputs no model reads) follow another window in onnxruntime and are not compared.
// A combination onnxruntime refuses ("batch_size must be 1 when sequence_length > 1 and past context is
// given") is no model and is skipped.

import { isAttention, parseGraph, SplitMix64 } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { rewritePass } from '@attnopt/rewrite';
import * as ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import { lowerAttentionPass } from '../src/lower/index.js';
import { FUSED_RULES } from '../src/recognize/fused/index.js';
import { compareOutputs, randomInputs, runModel } from './helpers/ort.js';

const [B, N, KV, H] = [2, 4, 2, 8];
const CASES = 100;

interface Case {
  readonly seed: number;
  readonly S: number;
  readonly P: number;
  readonly seqlens: readonly number[];
  readonly window: number;
  readonly softcap: number;
  readonly packed: boolean;
  readonly attentionBias: boolean;
  readonly f16: boolean;
}

function drawCase(seed: number): Case {
  const rng = new SplitMix64(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng.nextFloat() * xs.length)]!;
  const S = pick([1, 1, 3]);
  const P = pick([0, 4]);
  const total = P + S;
  const short = Math.max(0, total - 1 - (P > 0 ? 2 : 1));
  return { seed, S, P, seqlens: [total - 1, pick([total - 1, short])], window: pick([-1, -1, 2]), softcap: pick([0, 0, 5]), packed: pick([false, true]), attentionBias: pick([false, true]), f16: pick([false, false, true]) };
}

function caseGraph(c: Case): string {
  const inputs = [`  input %q: f32[${B}, ${c.S}, ${(c.packed ? N + 2 * KV : N) * H}]`];
  const args = ['%q'];
  if (c.packed) args.push('_', '_');
  else [inputs.push(`  input %k: f32[${B}, ${c.S}, ${KV * H}]`, `  input %v: f32[${B}, ${c.S}, ${KV * H}]`), args.push('%k', '%v')];
  if (c.P > 0) [inputs.push(`  input %past_k: f32[${B}, ${KV}, ${c.P}, ${H}]`, `  input %past_v: f32[${B}, ${KV}, ${c.P}, ${H}]`), args.push('%past_k', '%past_v')];
  else args.push('_', '_');
  inputs.push(`  input %seqlens_k: i32[${B}]`, '  input %total_sequence_length: i32[]');
  args.push('%seqlens_k', '%total_sequence_length');
  if (c.attentionBias) [inputs.push(`  input %attention_bias: f32[${B}, 1, ${c.S}, ${c.P + c.S}]`), args.push('_', '_', '_', '%attention_bias')];
  const attrs = [`num_heads = ${N}`, `kv_num_heads = ${KV}`, `local_window_size = ${c.window}`, ...(c.softcap ? [`softcap = ${c.softcap}.0`] : [])];
  const text = `graph g {
${inputs.join('\n')}
  %y, %present_k, %present_v = com.microsoft::GroupQueryAttention(${args.join(', ')}) {${attrs.join(', ')}}
  output %y, %present_k, %present_v
}`;
  return c.f16 ? text.replaceAll('f32[', 'f16[') : text;
}

/** `t` [B, S, E] with the rows i > seqlens_k[b] set to 0 (the padding queries of a padded prompt). */
function validRows(t: ort.Tensor, c: Case): ort.Tensor {
  // 0 is +0.0 in f32 and f16 bits alike
  const d = (t.data as Float32Array | Uint16Array).slice();
  const e = d.length / (B * c.S);
  for (let b = 0; b < B; b++) for (let i = c.seqlens[b]! + 1; i < c.S; i++) d.fill(0, (b * c.S + i) * e, (b * c.S + i + 1) * e);
  return new ort.Tensor(t.type as 'float32', d as Float32Array, t.dims);
}

describe('GroupQueryAttention in random combinations against onnxruntime', () => {
  const cases = Array.from({ length: CASES }, (_, k) => drawCase(900 + k));
  let lifted = 0;

  test.each(cases.map((c) => [JSON.stringify(c), c] as const))('%s', async (_, c) => {
    const text = caseGraph(c);
    const feeds = randomInputs(parseGraph(text), c.seed, { batch: B, seq: c.S, past: c.P });
    feeds.seqlens_k = new ort.Tensor('int32', Int32Array.from(c.seqlens), [B]);
    feeds.total_sequence_length = new ort.Tensor('int32', Int32Array.from([c.P + c.S]), []);
    let want: Record<string, ort.Tensor>;
    try {
      want = await runModel(exportOnnx(newOnnxModel(parseGraph(text), { opset: 21 })), feeds);
    } catch (e) {
      expect(String(e)).toMatch(/batch_size must be 1 when sequence_length > 1 and past context is given/);
      return;
    }
    const g = parseGraph(text);
    const notes = rewritePass('recognize-fused', FUSED_RULES).run(g).notes.map((n) => n.message);
    expect(g.nodes.filter(isAttention), notes.join('\n')).toHaveLength(1);
    lowerAttentionPass({ opset: 21 }).run(g);
    const got = await runModel(exportOnnx(newOnnxModel(g, { opset: 21 })), feeds);
    const paddedPromptWindow = c.P === 0 && c.window > 0;
    const rows = (o: Record<string, ort.Tensor>) => (paddedPromptWindow ? { ...o, y: validRows(o.y!, c) } : o);
    // f16: both sides round every op to f16, in another order (about 8 ulps)
    const cmp = c.f16 ? compareOutputs(rows(got), rows(want), 4e-3, 4e-3) : compareOutputs(rows(got), rows(want), 1e-5, 1e-6);
    expect(cmp.mismatches, `max abs error ${cmp.maxAbsError}`).toEqual([]);
    lifted++;
  });

  test('most draws run and match', () => {
    expect(lifted).toBeGreaterThan(CASES / 2);
  });
});
