// Whole transformer models exported by PyTorch with dynamic batch and sequence axes (the corpus's
// whole-models/ folder and the repository's tools/fixtures/whole-models/, each with an expected.json written
// from the model sources): every attention site must be lifted with the heads, key/value heads and head size
// the model was built with, and the mask each site's source states must be proven (causal, sliding window) or
// kept as a bias (padding, position biases). Then the recognized and mask-analyzed graph, lowered back to
// standard ONNX ops, must compute what the model as written computes: both run in onnxruntime (optimizations
// off) on the same seeded inputs; fp32 outputs |lowered - original| <= 1e-5 + 1e-5 |original| (the models
// chain several layers of float32 sums in a different order; masked keys are exactly 0 on both sides).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AttentionInput, attentionParams, BANDED_OPSET, type Graph, isAttention, type MaskSpec, type Node, printSpec, slidingWindow, specAttr } from '@attnopt/ir';
import { exportOnnx, importOnnx } from '@attnopt/onnx';
import { rewritePass } from '@attnopt/rewrite';
import type * as ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import { analyzeMaskPass } from '../src/mask-analysis/index.js';
import { lowerAttentionPass } from '../src/lower/index.js';
import { RECOGNITION_RULES } from '../src/recognize/index.js';
import { inferShape } from '../src/shape-inference/shapes.js';
import { FIXTURES } from './helpers/node-tests.js';
import { compareOutputs, ortTensor, randomInputs, runModel } from './helpers/ort.js';
import { quantizeWeights } from './helpers/quantize-weights.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const FOLDERS = [path.join(FIXTURES, 'whole-models'), path.resolve(here, '../../../tools/fixtures/whole-models')];

interface Expected {
  readonly file: string;
  readonly opset: number;
  readonly sites: number;
  readonly heads: number;
  readonly kv_heads?: number;
  readonly head_dim: number;
  readonly mask: string;
  readonly window?: number;
  /** The scores' scale where it is not 1 / sqrt(head_dim) (Gemma 2: query_pre_attn_scalar^-0.5), and a softcap. */
  readonly scale?: number;
  readonly softcap?: number;
}

/**
 * What each site's mask must come out as, in graph order, transcribed from expected.json's `mask` text:
 * `dense` (no mask at all), `bias` (a data-dependent or position bias kept, nothing structural), `causal`,
 * `window` (causal sliding window of expected.window keys), `band` (expected.window keys on either side: |i - j| <=
 * window), each optionally `+bias` (padding kept beside it).
 */
type Kind = 'dense' | 'bias' | 'causal' | 'causal+bias' | 'window' | 'window+bias' | 'band' | 'band+bias';
const MASKS: Record<string, readonly Kind[]> = {
  bert4: Array(4).fill('bias'),
  gpt4: Array(4).fill('causal'),
  swa2: Array(2).fill('window'),
  vit4: Array(4).fill('dense'),
  t5enc3: Array(3).fill('bias'),
  einsum2: Array(2).fill('bias'),
  crossdec2: ['causal', 'dense', 'causal', 'dense'],
  // tools/fixtures/whole-models
  bert: ['bias', 'bias'],
  roberta: ['bias', 'bias'],
  electra: ['bias', 'bias'],
  distilbert: ['bias', 'bias'],
  gpt2: ['causal+bias', 'causal+bias'],
  'gpt2-past': ['causal+bias', 'causal+bias'],
  mistral: ['window+bias', 'window+bias'],
  bart: ['bias', 'bias', 'causal', 'bias', 'causal', 'bias'],
  'whisper-encoder': ['dense', 'dense'],
  'whisper-decoder': ['causal', 'dense', 'causal', 'dense'],
  vit: ['dense', 'dense'],
  'clip-text': ['causal+bias', 'causal+bias'],
  falcon: ['causal+bias', 'causal+bias'],
  'gpt-neox-past': ['causal+bias', 'causal+bias'],
  // multi-query with the heads folded into the query axis: causal (tril buffer And padding) proven over the unfolded
  // [B, H, S, T] mask, the whole mask kept beside it (its padding part is moved to the heads axis)
  'gpt-bigcode-past': ['causal+bias', 'causal+bias'],
  // nn.MultiheadAttention's merged mask (causal Or key padding, folded over [B·H, 1, T]): causal proven through the
  // unfolded bias, the padding read back to one query row
  'torch-mha': ['causal+bias', 'causal+bias'],
  'llama-past': ['causal+bias', 'causal+bias'],
  // SDPA as torch >= 2.1's TorchScript exporter writes it: the bool mask (causal and padding) as Where(mask, 0, -inf)
  // added, causal proven and the padding read back to one query row; is_causal's Trilu over ones(L, S) proven whole
  'llama-sdpa': ['causal+bias', 'causal+bias'],
  'llama-sdpa-causal': ['causal', 'causal'],
  'qwen2-past': ['causal+bias', 'causal+bias'],
  // transformers' eager attention slices its 4d mask to the key length in every layer (Slice from 0: the same
  // function of (i, j)); causal over past + new keys proven through it, the padding read back to one key row
  'llama-eager-past': ['causal+bias', 'causal+bias'],
  // Gemma 2: the sliding layer's tril(ones_like(mask), -window) over the cache_position mask, then sliced to the
  // keys; the global layer causal; softcapped scores
  gemma2: ['window+bias', 'causal+bias'],
  'marian-decoder-past': ['causal', 'bias', 'causal', 'bias'],
  // ModernBERT: the global layer's padding; the local layers' |i - j| <= 4 from abs(rows - rows.T) (an index row
  // transposed into the query axis) over the padding mask
  modernbert: ['bias', 'band+bias', 'band+bias'],
  // local band OR global tokens (a data-dependent union): no structural conjunct to prove, kept as bias
  'longformer-local-global': ['bias', 'bias'],
  // the window over past + new keys from cache_position comparisons, the padding Where kept whole beside it
  'mistral-past': ['window+bias', 'window+bias'],
  // causal with ALiBi and padding in one Where: causal proven, the whole Where kept as the bias
  bloom: ['causal+bias', 'causal+bias'],
  // encoder: position bias + padding; decoder self: causal proven, the relative-position bias (log buckets
  // through min(j - i, 0)) kept; cross: padding
  t5: ['bias', 'bias', 'causal+bias', 'bias', 'causal+bias', 'bias'],
};

/**
 * Sites whose source states a causal structure the mask analysis does not prove yet: the whole mask stays the
 * bias (exact, but nothing sparse is known). Checked exactly, so a proof that starts to work updates the list.
 */
const NOT_YET_PROVEN: Record<string, readonly Kind[]> = {};

/**
 * Sites whose bias still varies along the query axis after the mask analysis (an n x n bias: the banded and guarded
 * forms cannot take it); every other biased site's bias must be one query row (a key bias [.., 1, T]), the model's
 * padding (and ALiBi) read on the proven keys. T5's self-attention adds a relative-position bias of (i, j); the
 * Longformer mask is a local band OR global tokens, one data-dependent mask of (i, j).
 */
const QUERY_VARYING_BIAS: Record<string, readonly boolean[]> = {
  t5enc3: [true, true, true],
  t5: [true, true, true, false, true, false],
  'longformer-local-global': [true, true],
};

/**
 * Models whose left-padded outputs differ from the lowered graph's on the rows that keep no key (checked exactly, so
 * that a fix updates the list): the model fills masked scores with -inf (nn.MultiheadAttention, SDPA's boolean
 * mask: NaN in the model, 0 by the IR's definition). (GPT-NeoX's masked_bias -1e9, a fill the scores still move,
 * was here: such a site now computes itself as the model wrote it when an input has those rows, unkept-rows.ts.)
 */
const LEFT_PADDED_ROWS_DIFFER: ReadonlySet<string> = new Set(['torch-mha', 'llama-sdpa']);

/** Models whose sites are not lifted yet: model -> a substring of the recognizer's reason. Checked exactly. */
const NOT_LIFTED: Record<string, string> = {};

/** Scale 1 where the text says so (T5: unscaled scores). */
const unscaled = (e: Expected) => /scale 1\b/.test(e.mask);

function sitesOf(g: Graph): Node[] {
  return [...g.nodes].filter(isAttention);
}

/** The mask kind a lifted and analyzed site shows. */
function kindOf(site: Node, window: number | undefined): Kind | string {
  const spec = attentionParams(site).spec as MaskSpec;
  const bias = site.inputs[AttentionInput.bias] !== undefined ? '+bias' : '';
  if (spec.kind === 'dense') return bias ? 'bias' : 'dense';
  if (spec.kind === 'causal') return `causal${bias}`;
  if (spec.kind === 'window' && spec.right === 0 && window !== undefined && spec.left === window - 1) return `window${bias}`;
  if (spec.kind === 'window' && window !== undefined && spec.left === window && spec.right === window) return `band${bias}`;
  return `${printSpec(spec)}${bias}`;
}

/**
 * Inputs for a whole model: seeded floats and ids; padding masks keep every key but the last two of the last batch,
 * or (`left`) but its first six: a left-padded batch, where a decoder's first queries of that batch keep no key
 * their causal mask leaves (with 3 past keys, the first three queries).
 */
function feedsFor(g: Graph, seq: number, left = false): Record<string, ort.Tensor> {
  // (batch 1 where an input's batch axis is fixed at 1, as the encoder states of an exported decoder)
  const batch = g.inputs.some((v) => v.type?.kind === 'tensor' && v.type.shape?.[0] === 1) ? 1 : 2;
  const feeds = randomInputs(g, 5, { batch, seq, past: 3 });
  for (const v of g.inputs) {
    const t = v.type;
    if (t?.kind !== 'tensor' || !v.name.includes('mask') || t.shape?.length !== 2) continue;
    const dims = feeds[v.name]!.dims as number[];
    const [b, n] = [dims[0]!, dims[1]!];
    const padded = (k: number) => Math.floor(k / n) === b - 1 && (left ? k % n < 6 : k % n >= n - 2);
    // a key-padding mask says true where a key is padding; an attention mask says 1 where a key is kept
    const keyPadding = t.dtype === 'bool' && v.name.includes('padding');
    feeds[v.name] = ortTensor(t.dtype, dims, Array.from({ length: b * n }, (_, k) => Number(padded(k) === keyPadding)));
  }
  return feeds;
}

for (const folder of FOLDERS) {
  const listing = path.join(folder, 'expected.json');
  if (!fs.existsSync(listing)) continue;
  const expected = JSON.parse(fs.readFileSync(listing, 'utf8')) as Record<string, Expected>;
  describe(`whole models of ${path.relative(path.resolve(here, '../../..'), folder)}`, () => {
    test.each(Object.entries(expected))('%s', async (name, e) => {
      const file = path.join(folder, e.file);
      const model = importOnnx(file);
      const g = model.graph;
      const r = rewritePass('recognize', RECOGNITION_RULES, { explain: true }).run(g);
      analyzeMaskPass().run(g);
      const sites = sitesOf(g);
      const why = r.notes.filter((n) => !n.message.startsWith('applied')).map((n) => n.message);
      if (NOT_LIFTED[name] !== undefined) {
        expect(sites).toHaveLength(0);
        expect(why.join('; ')).toContain(NOT_LIFTED[name]);
        return;
      }
      expect(sites.length, `${name}: ${why.join('; ')}`).toBe(e.sites);
      for (const s of sites) {
        const p = attentionParams(s);
        expect({ heads: p.numHeads, kvHeads: p.kvNumHeads, headDim: p.headDim }, `${name} ${s.describe()}`).toEqual({
          heads: e.heads,
          kvHeads: e.kv_heads ?? e.heads,
          headDim: e.head_dim,
        });
        if (unscaled(e)) expect(p.scale).toBe(1);
        else expect(p.scale).toBeCloseTo(e.scale ?? 1 / Math.sqrt(e.head_dim), 6);
        expect(p.softcap).toBe(e.softcap ?? 0);
      }
      const kinds = MASKS[name] ?? NOT_YET_PROVEN[name];
      expect(kinds, `${name}: no mask expectation transcribed`).toBeDefined();
      expect(sites.map((s) => kindOf(s, e.window)), `${name}: ${e.mask}`).toEqual(kinds);
      const varies = sites.map((s) => {
        const shape = s.inputs[AttentionInput.bias] && inferShape(s.inputs[AttentionInput.bias]);
        return shape !== undefined && !(shape.length < 2 || shape[shape.length - 2] === 1);
      });
      expect(varies, `${name}: sites whose bias varies along the query axis`).toEqual(QUERY_VARYING_BIAS[name] ?? sites.map(() => false));

      // the recognized model, lowered, against the model as written (past the sliding window where there is one)
      // on right- and left-padded inputs: the rows a left-padded decoder leaves with no key are the model's own
      // (mask-analysis/unkept-rows.ts), so every output element agrees
      const seq = e.window !== undefined ? e.window + 9 : 12;
      const inputs = [feedsFor(importOnnx(file).graph, seq), feedsFor(importOnnx(file).graph, seq, true)];
      const wants = await Promise.all(inputs.map((feeds) => runModel(file, feeds)));
      lowerAttentionPass({ opset: e.opset }).run(g);
      const lowered = exportOnnx(model);
      for (const [k, feeds] of inputs.entries()) {
        const cmp = compareOutputs(await runModel(lowered, feeds), wants[k]!, 1e-5, 1e-5);
        if (k === 1 && LEFT_PADDED_ROWS_DIFFER.has(name)) expect(cmp.mismatches.length, `${name} (left-padded): listed as differing`).toBeGreaterThan(0);
        else expect(cmp.mismatches, `${name} (${k ? 'left' : 'right'}-padded): max abs error ${cmp.maxAbsError}`).toEqual([]);
      }

      // causal and windowed sites, banded: the key bias gathered per key (not read n x n), against the model as written
      // (a causal site as the window of 1024 keys its alignment gives: the same keys at this length)
      if (kinds.every((k) => k.startsWith('causal') || k.startsWith('window')) && e.opset >= BANDED_OPSET) {
        const again = importOnnx(file);
        rewritePass('recognize', RECOGNITION_RULES).run(again.graph);
        analyzeMaskPass().run(again.graph);
        for (const s of sitesOf(again.graph)) {
          const spec = attentionParams(s).spec;
          if (spec.kind === 'causal') s.attrs.set('spec', specAttr(slidingWindow(1023, 0, spec.align)));
        }
        lowerAttentionPass({ opset: e.opset, strategy: 'banded' }).run(again.graph);
        const bandedModel = exportOnnx(again);
        for (const [k, feeds] of inputs.entries()) {
          const banded = compareOutputs(await runModel(bandedModel, feeds), wants[k]!, 1e-5, 1e-5);
          if (k === 1 && LEFT_PADDED_ROWS_DIFFER.has(name)) continue;
          expect(banded.mismatches, `${name} banded (${k ? 'left' : 'right'}-padded): max abs error ${banded.maxAbsError}`).toEqual([]);
        }
      }
    });
  });
}

/**
 * The same models with their weights quantized, as deployed models carry them: onnxruntime's dynamic int8
 * quantization and its 4-bit MatMulNBits (quantize-weights.ts). The attention sites stay float functions of
 * their (now quantized) projections: every site must lift with the same heads, head size and mask as the float
 * model, and the lowered graph compute what the quantized model as written computes, as above.
 */
const LOCAL = path.resolve(here, '../../../tools/fixtures/whole-models');
const local = JSON.parse(fs.readFileSync(path.join(LOCAL, 'expected.json'), 'utf8')) as Record<string, Expected>;
for (const how of ['dynamic-int8', 'nbits-4'] as const) {
  describe(`whole models of tools/fixtures/whole-models, weights quantized (${how})`, () => {
    test.each(Object.entries(local))('%s', async (name, e) => {
      const { model, rewritten } = quantizeWeights(importOnnx(path.join(LOCAL, e.file)), how);
      expect(rewritten, `${name}: weight MatMuls quantized`).toBeGreaterThan(0);
      const quantized = exportOnnx(model);
      const g = model.graph;
      const r = rewritePass('recognize', RECOGNITION_RULES, { explain: true }).run(g);
      analyzeMaskPass().run(g);
      const sites = sitesOf(g);
      expect(sites.length, `${name}: ${r.notes.filter((n) => !n.message.startsWith('applied')).map((n) => n.message).join('; ')}`).toBe(e.sites);
      expect(sites.map((s) => [attentionParams(s).numHeads, attentionParams(s).headDim])).toEqual(sites.map(() => [e.heads, e.head_dim]));
      expect(sites.map((s) => kindOf(s, e.window)), `${name}: ${e.mask}`).toEqual(MASKS[name]);
      const feeds = feedsFor(importOnnx(path.join(LOCAL, e.file)).graph, e.window !== undefined ? e.window + 9 : 12);
      const want = await runModel(quantized, feeds);
      lowerAttentionPass({ opset: e.opset }).run(g);
      const cmp = compareOutputs(await runModel(exportOnnx(model), feeds), want, 1e-5, 1e-5);
      expect(cmp.mismatches, `${name}: max abs error ${cmp.maxAbsError}`).toEqual([]);
    });
  });
}
