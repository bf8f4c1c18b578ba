// Every fused attention node of the corpus (fused-ops-table.tsv) is lifted by FUSED_RULES, or not lifted for
// one of the documented reasons in NOT_LIFTED (checked exactly: the list cannot silently grow or go stale).
// Then the round trip against the ORIGINAL model: every ort-generated model, and every other corpus model
// with a lifted node, goes import -> FUSED_RULES -> lowerAttentionPass -> export; original and result run in
// onnxruntime (optimizations off) on the same seeded inputs.
// fp32 outputs: |lowered - original| <= 1e-5 (atol only). fp16 outputs: both sides round every op to fp16
// (ulp 2^-11 near 1) in a different order, so they get 4e-3 abs + 4e-3 rel (about 8 fp16 ulps).

import fs from 'node:fs';
import path from 'node:path';
import { type Graph, isAttention } from '@attnopt/ir';
import { exportOnnx, importOnnx } from '@attnopt/onnx';
import { rewritePass } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { lowerAttentionPass } from '../src/lower/index.js';
import { FUSED_RULES } from '../src/recognize/fused/index.js';
import { FIXTURES } from './helpers/node-tests.js';
import { compareLowered, DEFAULT_SIZES, randomInputs, runModel } from './helpers/ort.js';

const ORT_MODELS = 'ort-models/onnxruntime/test';
const EMBED = `${ORT_MODELS}/testdata/transform/fusion`;

/** `model node` -> why it stays fused (a substring of the rule's message). Outside one exact attnopt::Attention. */
const NOT_LIFTED: Record<string, string> = {
  // the op is in the default domain, where ONNX defines no MultiHeadAttention: not a valid ONNX model
  ...Object.fromEntries(
    ['70b_distributed_merged', 'llama2_msft', 'merged', 'no_past', 'past'].map((m) => [
      `ort-generated/models/rotary_mha_${m}_fused.onnx node "MultiHeadAttention_0" (MultiHeadAttention)`,
      'is not an ONNX op',
    ]),
  ),
  // weights [3, 9] with num_heads 12: a hidden size of 3 split into 12 heads, which onnxruntime rejects
  // ("hidden_size should be divisible by num_heads"; the Attention input is also 1 wide, not 3): invalid models
  [`${EMBED}/embed_layer_norm_format1.onnx node "Attention" (com.microsoft::Attention)`]: 'not multiples of num_heads 12: onnxruntime rejects the node',
  [`${EMBED}/embed_layer_norm_format2.onnx node "Attention" (com.microsoft::Attention)`]: 'not multiples of num_heads 12: onnxruntime rejects the node',
  [`${EMBED}/embed_layer_norm_format4.onnx node "Attention" (com.microsoft::Attention)`]: 'not multiples of num_heads 12: onnxruntime rejects the node',
  // the weights live in model.onnx.data, which the corpus does not hold
  'genai-models/test/test_models/hf-internal-testing/tiny-random-LlamaForCausalLM-fp32/f8a96379_model.onnx -': 'the file does not exist',
};

const GEN = 'ort-generated/models';
const TRANSFORMERS = `${ORT_MODELS}/testdata/transformers`;

/** Original models onnxruntime (CPU) cannot run: model -> a substring of its error. Checked exactly. */
const ORT_CANNOT_RUN: Record<string, string> = {
  // invalid models: Unsqueeze without axes at opset 13, float axes, a value defined twice
  [`${GEN}/attention_distilbert.onnx`]: 'schema(::Unsqueeze:13)',
  [`${GEN}/attention_mask_no_cast.onnx`]: 'schema(::Unsqueeze:13)',
  ...Object.fromEntries(
    ['70b_distributed_merged_fused', 'llama2_msft_fused', 'llama2_msft_unfused', 'merged_fused', 'merged_unfused', 'no_past_fused', 'no_past_unfused', 'past_fused', 'past_unfused'].map(
      (m) => [`${GEN}/rotary_mha_${m}.onnx`, "Type 'tensor(float)' of input parameter"],
    ),
  ),
  [`${GEN}/rotary_mha_70b_distributed_merged_unfused.onnx`]: 'Duplicate definition of name',
  // a Reshape whose 0 refers past the input's rank (the model's own bug, fused and unfused)
  [`${GEN}/conformer_self_mha.onnx`]: 'The dimension with value zero exceeds',
  [`${GEN}/conformer_self_mha_fused.onnx`]: 'The dimension with value zero exceeds',
  // position tables of 2 rows for static 3-token inputs
  ...Object.fromEntries(
    ['7', '7_opset13', '8', '8_opset13', '9', '9_opset13'].map((m) => [`${EMBED}/embed_layer_norm_format${m}.onnx`, 'indices element out of data bounds']),
  ),
  // the exporter's attention-mask subgraph rejects B=2, S=7, P=3 (an Expand); not investigated further
  'genai-models/test/test_models/hf-internal-testing/tiny-random-LlamaForCausalLM-fp16/model.onnx': 'invalid expand shape',
  // random inputs form no beam-search step (BB = batch * num_beams rows):
  // fused-beam-search.test.ts runs these four against onnxruntime on valid steps
  [`${ORT_MODELS}/testdata/dmmha_cross_attn.onnx`]: "Input 'cache_indirection' dimension 0",
  [`${ORT_MODELS}/testdata/dmmha_inside_mha_cross_attn.onnx`]: "Input 'cache_indirection' dimension 0",
  [`${ORT_MODELS}/testdata/dmmha_inside_mha_self_attn.onnx`]: "Input 'cache_indirection' dimension 0",
  [`${ORT_MODELS}/testdata/dmmha_self_attn.onnx`]: "Input 'cache_indirection' dimension 0",
  // CPU kernels that do not exist
  [`${ORT_MODELS}/python/transformers/test_data/models/gpt2_megatron_opt_no_skiplayernorm.onnx`]: '4D mask in attention cpu kernel is not supported',
  [`${ORT_MODELS}/python/transformers/test_data/models/gpt2_megatron_opt_skiplayernorm.onnx`]: '4D mask in attention cpu kernel is not supported',
  [`${TRANSFORMERS}/tiny_gpt2_beamsearch_fp16.onnx`]: 'does not support float16 model on CPU',
  [`${TRANSFORMERS}/tiny_gpt2_beamsearch_fp16_padded_vocab.onnx`]: 'does not support float16 model on CPU',
  [`${TRANSFORMERS}/tiny_gpt2_beamsearch_with_init_decoder_fp16.onnx`]: 'does not support float16 model on CPU',
  [`${TRANSFORMERS}/tiny_gpt2_greedysearch_fp16_padded_vocab.onnx`]: 'bad_function_call', // fp16 GreedySearch on CPU
  // packed (token-major) inputs: RestorePadding / RemovePadding have CUDA kernels only; the lifted Attention
  // (head size known at run time) is checked against float64 semantics in fused-runtime-head.test.ts
  ...Object.fromEntries(
    ['packed_attention_fp16', 'packed_attention_fp16.rbp', 'packed_attention_fp32'].map((m) => [
      `${ORT_MODELS}/testdata/${m}.onnx`,
      'RestorePadding',
    ]),
  ),
};

/**
 * Sizes for symbols the default sizes cannot fill: the microbench weights are [hidden_size, len] with
 * len = 3 * hidden_size and 12 heads (hidden 48: head size 4, known only at run time).
 */
const SYMBOL_SIZES: Record<string, Record<string, number>> = {
  'ort-models/onnxruntime/python/tools/microbench/models/attention_fp16.onnx': { hidden_size: 48, len: 144 },
  'ort-models/onnxruntime/python/tools/microbench/models/attention_fp32.onnx': { hidden_size: 48, len: 144 },
};

/** `graph` with its input shapes' symbols replaced by `sizes` (for randomInputs). */
function pinSymbols(graph: Graph, sizes: Record<string, number> | undefined): Graph {
  for (const v of graph.inputs) {
    const t = v.type;
    if (sizes && t?.kind === 'tensor' && t.shape) v.type = { ...t, shape: t.shape.map((d) => (typeof d === 'string' ? (sizes[d] ?? d) : d)) };
  }
  return graph;
}

const FUSED_OPS = new Set(['Attention', 'MultiHeadAttention', 'GroupQueryAttention', 'DecoderMaskedMultiHeadAttention']);
const table = [...new Set(fs.readFileSync(path.join(FIXTURES, 'fused-ops-table.tsv'), 'utf8').split('\n').filter(Boolean).map((l) => l.split('\t')[0]!))];
const generated = fs
  .readdirSync(path.join(FIXTURES, 'ort-generated/models'))
  .filter((f) => f.endsWith('.onnx'))
  .map((f) => `ort-generated/models/${f}`);
const files = [...new Set([...table, ...generated])].sort();

describe('fused attention nodes of the corpus', () => {
  const lifted: string[] = [];
  const notLifted = new Map<string, string>();
  const roundTrips: { file: string; err: number; fp16: boolean }[] = [];
  const cannotRun = new Map<string, string>();

  it.each(files)('%s', async (file) => {
    const full = path.join(FIXTURES, file);
    let model;
    try {
      model = importOnnx(full);
    } catch (e) {
      notLifted.set(`${file} -`, (e as Error).message);
      return;
    }
    const g = model.graph;
    const fusedBefore = [...g.allNodes()].filter((n) => FUSED_OPS.has(n.op) && !isAttention(n)).length;
    const result = rewritePass('recognize-fused', FUSED_RULES).run(g);
    const remaining = [...g.allNodes()].filter((n) => FUSED_OPS.has(n.op) && !isAttention(n));
    const liftedHere = [...g.allNodes()].filter(isAttention);
    lifted.push(...liftedHere.map((n) => `${file}:${n.name}`));
    for (const n of remaining) {
      const note = result.notes.find((x) => x.node === n.describe());
      notLifted.set(`${file} ${n.describe()}`, note?.message ?? `no rule for ${n.qualifiedOp}`);
    }
    if (table.includes(file)) expect(fusedBefore).toBeGreaterThan(0);
    if (!file.startsWith('ort-generated') && liftedHere.length === 0) return;
    // onnxruntime's GroupQueryAttention takes a prompt with past context only for batch 1
    const hasGqa = [...importOnnx(full).graph.allNodes()].some((n) => n.op === 'GroupQueryAttention');
    const feeds = randomInputs(pinSymbols(importOnnx(full).graph, SYMBOL_SIZES[file]), 3, hasGqa ? { ...DEFAULT_SIZES, batch: 1 } : DEFAULT_SIZES);
    let want;
    try {
      want = await runModel(full, feeds); // from the path: external data next to the model resolves
    } catch (e) {
      cannotRun.set(file, (e as Error).message.split('\n')[0]!);
      return;
    }
    lowerAttentionPass({ opset: 21 }).run(g);
    const got = await runModel(exportOnnx(model), feeds);
    const cmp = compareLowered(got, want);
    const fp16 = cmp.fp16;
    roundTrips.push({ file, err: cmp.maxAbsError, fp16 });
    expect(cmp.mismatches, `${file} (max abs error ${cmp.maxAbsError.toExponential(2)})`).toEqual([]);
  });

  it('lifts every fused node but the documented ones, and runs every original but the documented ones', () => {
    const got = Object.fromEntries([...notLifted].map(([k, why]) => [k, why]));
    expect(Object.keys(got).sort()).toEqual(Object.keys(NOT_LIFTED).sort());
    for (const [k, why] of Object.entries(NOT_LIFTED)) expect(got[k], k).toContain(why);
    expect([...cannotRun.keys()].sort()).toEqual(Object.keys(ORT_CANNOT_RUN).sort());
    for (const [k, why] of Object.entries(ORT_CANNOT_RUN)) expect(cannotRun.get(k), k).toContain(why);
    const max = (xs: typeof roundTrips) => Math.max(0, ...xs.map((r) => r.err)).toExponential(2);
    console.log(
      [
        `fused nodes: ${lifted.length} lifted of ${lifted.length + notLifted.size - 1} (+1 model that does not import); in fused-ops-table models: ${lifted.filter((n) => table.some((f) => n.startsWith(`${f}:`))).length} lifted, ${[...notLifted.keys()].filter((k) => table.some((f) => k.startsWith(`${f} `)) && !k.endsWith(' -')).length} not`,
        `round trips vs original: ${roundTrips.length} match; max abs error fp32 ${max(roundTrips.filter((r) => !r.fp16))}, fp16 ${max(roundTrips.filter((r) => r.fp16))}`,
        ...[...cannotRun].map(([f, why]) => `  original does not run: ${f}: ${why.slice(0, 100)}`),
      ].join('\n'),
    );
  });
});
