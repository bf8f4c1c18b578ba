// Generated position ids stay inside the positions a model holds: the rows of the position table they gather
// from, or of a rotary embedding's cos / sin cache. With a KV cache input, the default two cached tokens shrink
// so that cache and prompt fit (a 2048-position Llama asked for 2048 tokens failed in onnxruntime's
// RotaryEmbedding: "position_ids value 2048 ... out of range"); a prompt longer than the table is an error that
// says so. A past dim sized by name (--dim past_sequence_length=0: onnxruntime-genai's mask subgraph takes a
// non-empty cache only with one new token) is the cache length the positions and totals count from.
// Positions the graph computes from the lengths (GPT-2's arange(past, past + seq) into its position table,
// Whisper's table sliced [past : past + seq]) are held to their tables the same way, read as the shape engine's
// expressions of the input dims: each of the whole-model fixtures gpt2-past, marian-decoder-past and whisper-decoder
// failed in onnxruntime at its largest length before (two cached tokens beyond the table).

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

/** GPT-2's positions: arange(past, past + seq), past read from the cache's shape, gathered from 16 rows. */
const ranged = parseGraph(`graph g {
  input %input_ids: i64[1, seq]
  input %past_key: f32[1, 2, past, 4]
  init %table: f32[16, 4] = tensor<f32[16, 4]> [${Array(64).fill(0).join(', ')}]
  init %i1: i64[] = tensor<i64[]> [1]
  init %i2: i64[] = tensor<i64[]> [2]
  init %ax0: i64[1] = tensor<i64[1]> [0]
  %ps = Shape(%past_key)
  %p = Gather(%ps, %i2) {axis = 0}
  %is = Shape(%input_ids)
  %s = Gather(%is, %i1) {axis = 0}
  %end = Add(%p, %s)
  %pos = Range(%p, %end, %i1)
  %pos2 = Unsqueeze(%pos, %ax0)
  %e = Gather(%table, %pos2) {axis = 0}
  output %e
}`);

/** Whisper's positions: the table sliced [past : past + seq]. */
const sliced = parseGraph(`graph g {
  input %input_ids: i64[1, seq]
  input %past_key: f32[1, 2, past, 4]
  init %table: f32[16, 4] = tensor<f32[16, 4]> [${Array(64).fill(0).join(', ')}]
  init %i2: i64[1] = tensor<i64[1]> [2]
  init %i3: i64[1] = tensor<i64[1]> [3]
  init %i1: i64[1] = tensor<i64[1]> [1]
  init %i0: i64[1] = tensor<i64[1]> [0]
  %ps = Shape(%past_key)
  %p = Slice(%ps, %i2, %i3)
  %is = Shape(%input_ids)
  %s = Slice(%is, %i1, %i2)
  %end = Add(%p, %s)
  %e = Slice(%table, %p, %end, %i0)
  output %e
}`);

/** ONNX's static cache: new keys written by TensorScatter into 16 positions, the valid lengths given beside. */
const scattered = parseGraph(`graph g {
  input %k_new: f32[1, seq, 4]
  input %key_cache: f32[1, 16, 4]
  input %write_indices: i64[1]
  input %nonpad_kv_seqlen: i64[1]
  %kc = TensorScatter(%key_cache, %k_new, %write_indices) {axis = -2}
  output %kc
}`);

const cached = (sample: Record<string, { shape: readonly number[] }>) => sample['past_key']!.shape[2];

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

  it.each([
    ['arange(past, past + seq) gathered from 16 rows', ranged, /node Range -> %pos\b.* gathers positions below past \+ seq from a table of 16 rows: give a shorter --seq-len$/],
    ['the table of 16 rows sliced [past : past + seq]', sliced, /node Slice -> %e\b.* slices a table of 16 rows up to past \+ seq: give a shorter --seq-len$/],
  ])('positions the graph computes, %s: the default cache shrinks to fit, and 17 tokens are refused', (_, graph, refused) => {
    expect(cached(generateInputs(graph, { seqLen: 8 })[0]!)).toBe(2);
    expect(cached(generateInputs(graph, { seqLen: 15 })[0]!)).toBe(1);
    expect(cached(generateInputs(graph, { seqLen: 16 })[0]!)).toBe(0);
    expect(() => generateInputs(graph, { seqLen: 17 })).toThrow(refused);
    // a cache the user sizes is kept, and too long for the table it is refused with the way out
    expect(() => generateInputs(graph, { seqLen: 15, dims: { past: 4 } })).toThrow(/15 tokens after 4 cached ones need 19 positions.*or fewer cached tokens/);
  });

  it('a static cache of 16 positions written by TensorScatter: written from the cached length (0), valid lengths the whole prompt, 17 tokens refused', () => {
    const [sample] = generateInputs(scattered, { seqLen: 16 });
    const ints = (name: string) => Array.from(sample![name]!.data as ArrayLike<bigint>, Number);
    expect(ints('write_indices')).toEqual([0]);
    expect(ints('nonpad_kv_seqlen')).toEqual([16]);
    expect(() => generateInputs(scattered, { seqLen: 17 })).toThrow(/17 tokens need 17 positions, and node TensorScatter -> %kc\b.* writes seq new tokens into a cache of 16 positions/);
  });
});
