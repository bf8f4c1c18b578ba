// Generated position ids stay inside the positions a model holds: the rows of the position table they gather
// from, or of a rotary embedding's cos / sin cache. With a KV cache input, the default two cached tokens shrink
// so that cache and prompt fit (a 2048-position Llama asked for 2048 tokens failed in onnxruntime's
// RotaryEmbedding: "position_ids value 2048 ... out of range"); a prompt longer than the table is an error that
// says so. A past dim sized by name (--dim past_sequence_length=0: onnxruntime-genai's mask subgraph takes a
// non-empty cache only with one new token) is the cache length the positions and totals count from.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseGraph } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { generateInputs, loadModel } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const GPT2 = path.resolve(here, '../../../../shared/fixtures/onnx/genai-models/test/models/hf-internal-testing/tiny-random-gpt2-fp32-cuda/c47a9327_past.onnx');
const LLAMA = path.resolve(here, '../../../../shared/fixtures/onnx/genai-models/test/test_models/hf-internal-testing/tiny-random-LlamaForCausalLM-fp16/model.onnx');

const gathered = parseGraph(`graph g {
  input %position_ids: i64[1, seq]
  input %past_key: f32[1, 2, past, 4]
  init %table: f32[16, 4] = tensor<f32[16, 4]> [${Array(64).fill(0).join(', ')}]
  %e = Gather(%table, %position_ids) {axis = 0}
  output %e
}`);

const positions = (sample: Record<string, { data: ArrayLike<number | bigint> }>) => Array.from(sample['position_ids']!.data as ArrayLike<bigint>, Number);

describe('generated position ids', () => {
  it('a position table of 16 rows: the cache shrinks to fit, and 17 tokens are refused', () => {
    expect(positions(generateInputs(gathered, { seqLen: 8 })[0]!)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Math.max(...positions(generateInputs(gathered, { seqLen: 15 })[0]!))).toBe(15);
    expect(positions(generateInputs(gathered, { seqLen: 16 })[0]!)[0]).toBe(0);
    expect(() => generateInputs(gathered, { seqLen: 17 })).toThrow(/a sequence of 17 tokens is longer than the 16 positions the model holds/);
  });

  it('a past dim sized 0 by name (an empty cache) starts the positions at 0 and sizes the totals', () => {
    const [sample] = generateInputs(gathered, { seqLen: 8, dims: { past: 0 } });
    expect(positions(sample!)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(sample!['past_key']!.shape).toEqual([1, 2, 0, 4]);
  });

  it("onnxruntime's EmbedLayerNormalization: position ids within its position table, input ids within its word table", () => {
    const model = loadModel(GPT2);
    const embed = model.graph.nodes.find((n) => n.op === 'EmbedLayerNormalization')!;
    const [words, table] = [embed.inputs[2]!.initializer!.shape[0]!, embed.inputs[3]!.initializer!.shape[0]!];
    const [sample] = generateInputs(model, { seqLen: table });
    expect(Math.max(...positions(sample!))).toBe(table - 1);
    expect(Math.max(...Array.from(sample!['input_ids']!.data as ArrayLike<bigint>, Number))).toBeLessThan(words);
    expect(() => generateInputs(model, { seqLen: table + 1 })).toThrow(new RegExp(`longer than the ${table} positions`));
  });

  it("a rotary cache (onnxruntime's RotaryEmbedding) of 2048 positions, at 2048 tokens", () => {
    const [sample] = generateInputs(loadModel(LLAMA), { seqLen: 2048 });
    expect(Math.max(...positions(sample!))).toBe(2047);
    expect(() => generateInputs(loadModel(LLAMA), { seqLen: 4096 })).toThrow(/longer than the 2048 positions/);
  });
});
