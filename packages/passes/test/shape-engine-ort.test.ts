// The shape engine against onnxruntime: for every corpus model onnxruntime runs on generated inputs (whole-models,
// torch-exports, ort-models, ort-generated, genai-models, and the repository's tools/fixtures/whole-models), every
// value of the main graph is exposed as an output
// and the model runs at two bindings of its symbolic dims (batch 1 / seq 7 / past 3, batch 2 / seq 5 / past 2);
// every inferred dim and every inferred element of a small integer value must equal what onnxruntime computes.
// Also the share of values whose shape is fully inferred (no size left to run time) on both whole-model folders: >= 99%.
// The models onnxruntime does not run are listed with the class of the refusal, exactly (NOT_RUN).
// Left out: onnx-node-tests (shape-engine-node-tests.test.ts runs them on their stored inputs), values inside
// subgraphs (only main-graph values can be exposed as outputs: of the models run here only tiny_gpt2_beamsearch,
// tiny_gpt2_greedysearch_with_init_decoder and tiny_gpt2_sampling have any, 266 values in their contrib ops'
// decoder graphs; no model run here has an If / Loop / Scan), and one model too slow for CI
// (TFBertForQuestionAnswering: 3837 values, about 12 s; it had no mismatch when run by hand).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FIXTURES } from './helpers/node-tests.js';
import type { InputSizes } from './helpers/ort.js';
import { DUPLICATE_NAMES, EXTERNAL_DATA_FROM_BYTES, EXTERNAL_DATA_MISSING, INVALID_MODEL, NO_KERNEL, refusalClass, runFails, WEIGHTS_AS_INPUTS } from './helpers/refusal.js';
import { checkShapes } from './helpers/shape-check.js';

const FOLDERS = ['whole-models', 'torch-exports', 'ort-models', 'ort-generated', 'genai-models'];
/** The repository's own whole-model corpus (tools/fixtures/whole-models), checked the same way. */
const OWN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../tools/fixtures/whole-models');
const SLOW = new Set(['ort-models/onnxruntime/test/python/transformers/test_data/models/TFBertForQuestionAnswering.onnx']);
const BINDINGS: readonly InputSizes[] = [
  { batch: 1, seq: 7, past: 3 },
  { batch: 2, seq: 5, past: 2 },
];

/** Models that need other sizes: encoder states of batch 1, position tables of 8 rows. */
const FUSION = 'ort-models/onnxruntime/test/testdata/transform/fusion';
const SIZES: Record<string, readonly InputSizes[]> = {
  'whole-models/crossdec2.onnx': BINDINGS.map((b) => ({ ...b, batch: 1 })),
  // a memory input of fixed batch 2 beside a dynamic-batch target
  ...Object.fromEntries(
    ['mha_cross_op14_dyn', 'mha_cross_op17_dyn'].map((m) => [
      `torch-exports/${m}.onnx`,
      BINDINGS.map((b) => ({ ...b, batch: 2 })),
    ]),
  ),
  ...Object.fromEntries(
    ['attention_past_no_unidir', 'attention_past_unidir', 'gpt2_past_mask_one_layer', 'gpt2_past_one_layer'].map((m) => [
      `${FUSION}/${m}.onnx`,
      [
        { batch: 1, seq: 3, past: 2 },
        { batch: 2, seq: 2, past: 4 },
      ],
    ]),
  ),
};

const listed = (why: string, files: readonly string[]) => Object.fromEntries(files.map((f) => [f, why]));

/**
 * Models not compared, by the class of the refusal (helpers/refusal.ts), checked exactly: onnxruntime cannot run
 * them on generated inputs (sizes their contrib kernels, beam searches or fixed-size tables reject),
 * rejects them, or the corpus lacks their data. Zero wrong dims is claimed for every other main-graph value.
 */
const NOT_RUN: Record<string, string> = {
  ...listed(runFails('GroupQueryAttention'), [
    'genai-models/test/models/hf-internal-testing/tiny-qwen35-cuda/1d392aee_decoder.onnx',
    'genai-models/test/models/hf-internal-testing/tiny-qwen35-cuda/eb62e089_decoder.onnx',
    'genai-models/test/test_models/hf-internal-testing/tiny-qwen35-cuda/e6f5d561_text.onnx',
    'genai-models/test/test_models/webgpu/tiny-graph-capture-gqa/94117501_model.onnx',
  ]),
  ...listed(EXTERNAL_DATA_FROM_BYTES, [
    'genai-models/test/test_models/hf-internal-testing/tiny-random-LlamaForCausalLM-fp16/model.onnx',
  ]),
  ...listed(EXTERNAL_DATA_MISSING, [
    'genai-models/test/test_models/hf-internal-testing/tiny-random-LlamaForCausalLM-fp32/f8a96379_model.onnx',
  ]),
  ...listed(INVALID_MODEL, [
    'ort-generated/models/attention_distilbert.onnx',
    'ort-generated/models/attention_mask_no_cast.onnx',
    'ort-generated/models/rotary_mha_70b_distributed_merged_fused.onnx',
    'ort-generated/models/rotary_mha_llama2_msft_fused.onnx',
    'ort-generated/models/rotary_mha_llama2_msft_unfused.onnx',
    'ort-generated/models/rotary_mha_merged_fused.onnx',
    'ort-generated/models/rotary_mha_merged_unfused.onnx',
    'ort-generated/models/rotary_mha_no_past_fused.onnx',
    'ort-generated/models/rotary_mha_no_past_unfused.onnx',
    'ort-generated/models/rotary_mha_past_fused.onnx',
    'ort-generated/models/rotary_mha_past_unfused.onnx',
  ]),
  ...listed(WEIGHTS_AS_INPUTS, [
    'ort-generated/models/conformer_self_mha.onnx',
    'ort-generated/models/conformer_self_mha_fused.onnx',
    'ort-models/onnxruntime/test/testdata/transform/computation_reduction/gather/gather_roberta_e2e.onnx',
    'ort-models/onnxruntime/test/testdata/transform/computation_reduction/reshape/mlm_bert_e2e.onnx',
    'ort-models/onnxruntime/test/testdata/transform/recompute/3layer_bloom_optimized_training.onnx',
  ]),
  ...listed(DUPLICATE_NAMES, [
    'ort-generated/models/rotary_mha_70b_distributed_merged_unfused.onnx',
    'ort-models/onnxruntime/test/python/transformers/test_data/models/gpt2_past.onnx',
  ]),
  ...listed(runFails('Attention'), [
    'ort-models/onnxruntime/python/tools/microbench/models/attention_fp16.onnx',
    'ort-models/onnxruntime/python/tools/microbench/models/attention_fp32.onnx',
    'ort-models/onnxruntime/test/python/transformers/test_data/models/gpt2_megatron_opt_no_skiplayernorm.onnx',
    'ort-models/onnxruntime/test/python/transformers/test_data/models/gpt2_megatron_opt_skiplayernorm.onnx',
  ]),
  ...listed(runFails('MatMulInteger'), [
    'ort-models/onnxruntime/test/testdata/attention_past_state.u8s8.onnx',
    'ort-models/onnxruntime/test/testdata/attention_past_state.u8u8.onnx',
  ]),
  ...listed(runFails('DecoderMaskedMultiHeadAttention'), [
    'ort-models/onnxruntime/test/testdata/dmmha_cross_attn.onnx',
    'ort-models/onnxruntime/test/testdata/dmmha_self_attn.onnx',
  ]),
  ...listed(runFails('MultiHeadAttention'), [
    'ort-models/onnxruntime/test/testdata/dmmha_inside_mha_cross_attn.onnx',
    'ort-models/onnxruntime/test/testdata/dmmha_inside_mha_self_attn.onnx',
  ]),
  ...listed(NO_KERNEL, [
    'ort-models/onnxruntime/test/testdata/packed_attention_fp16.onnx',
    'ort-models/onnxruntime/test/testdata/packed_attention_fp16.rbp.onnx',
    'ort-models/onnxruntime/test/testdata/packed_attention_fp32.onnx',
  ]),
  ...listed(runFails('Reshape'), [
    'ort-models/onnxruntime/test/testdata/transform/fusion/attention_distilbert.onnx',
  ]),
  ...listed(runFails('Gather'), [
    'ort-models/onnxruntime/test/testdata/transform/fusion/embed_layer_norm_format1.onnx',
    'ort-models/onnxruntime/test/testdata/transform/fusion/embed_layer_norm_format7.onnx',
    'ort-models/onnxruntime/test/testdata/transform/fusion/embed_layer_norm_format7_opset13.onnx',
    'ort-models/onnxruntime/test/testdata/transform/fusion/embed_layer_norm_format8.onnx',
    'ort-models/onnxruntime/test/testdata/transform/fusion/embed_layer_norm_format8_opset13.onnx',
    'ort-models/onnxruntime/test/testdata/transform/fusion/embed_layer_norm_format9.onnx',
    'ort-models/onnxruntime/test/testdata/transform/fusion/embed_layer_norm_format9_opset13.onnx',
  ]),
  ...listed(runFails('Expand'), [
    'ort-models/onnxruntime/test/testdata/transform/fusion/embed_layer_norm_format2.onnx',
    'ort-models/onnxruntime/test/testdata/transform/fusion/embed_layer_norm_format4.onnx',
  ]),
  ...listed(runFails('BeamSearch'), [
    'ort-models/onnxruntime/test/testdata/transformers/tiny_gpt2_beamsearch_fp16.onnx',
    'ort-models/onnxruntime/test/testdata/transformers/tiny_gpt2_beamsearch_fp16_padded_vocab.onnx',
    'ort-models/onnxruntime/test/testdata/transformers/tiny_gpt2_beamsearch_with_init_decoder_fp16.onnx',
  ]),
  ...listed(runFails('GreedySearch'), [
    'ort-models/onnxruntime/test/testdata/transformers/tiny_gpt2_greedysearch_fp16_padded_vocab.onnx',
  ]),
  ...listed(runFails('Add'), [
    'torch-exports/transformer_decoder_layer_causal_op14_dyn.onnx',
    'torch-exports/transformer_decoder_layer_causal_op17_dyn.onnx',
  ]),
};

function modelsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(FIXTURES, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...modelsUnder(rel));
    else if (e.name.endsWith('.onnx') && !SLOW.has(rel)) out.push(rel);
  }
  return out;
}

const own = fs.readdirSync(OWN).filter((f) => f.endsWith('.onnx')).sort().map((f) => `tools/fixtures/whole-models/${f}`);
const files = [...FOLDERS.flatMap(modelsUnder).sort(), ...own];
const fullPath = (file: string) => (file.startsWith('tools/') ? path.join(OWN, path.basename(file)) : path.join(FIXTURES, file));

describe('the shape engine against onnxruntime', () => {
  const checked: { file: string; values: number; full: number; compared: number }[] = [];
  const notRun = new Map<string, string>();

  it.each(files)('%s', async (file) => {
    let result;
    try {
      result = await checkShapes(fullPath(file), SIZES[file] ?? BINDINGS);
    } catch (e) {
      // the model does not import or onnxruntime refuses it on generated inputs: nothing to compare
      notRun.set(file, refusalClass((e as Error).message));
      return;
    }
    checked.push({ file, values: result.values, full: result.fullyInferred, compared: result.compared });
    expect(result.mismatches, file).toEqual([]);
  });

  it('compares every whole model and most of the corpus; >= 99% of whole-model values fully inferred', () => {
    const compared = checked.reduce((a, c) => a + c.compared, 0);
    const lines = [`shape engine vs onnxruntime: ${checked.length} models checked, ${compared} dims and elements compared, 0 mismatches`];
    const shares = ['whole-models/', 'tools/fixtures/whole-models/'].map((prefix) => {
      const whole = checked.filter((c) => c.file.startsWith(prefix));
      expect(whole.map((c) => c.file)).toEqual(files.filter((f) => f.startsWith(prefix)));
      const values = whole.reduce((a, c) => a + c.values, 0);
      const full = whole.reduce((a, c) => a + c.full, 0);
      lines.push(`${prefix}: ${full} of ${values} values fully inferred (${((100 * full) / values).toFixed(2)}%)`, ...whole.map((c) => `  ${c.file}: ${c.full}/${c.values}`));
      return full / values;
    });
    console.log([...lines, `not run (${notRun.size}):`, ...[...notRun].map(([f, why]) => `  ${f}: ${why}`)].join('\n'));
    expect(Object.fromEntries([...notRun].sort())).toEqual(NOT_RUN);
    for (const share of shares) expect(share).toBeGreaterThanOrEqual(0.99);
    expect(checked.length).toBeGreaterThanOrEqual(110);
  });
});
