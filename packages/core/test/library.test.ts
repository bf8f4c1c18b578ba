// The library API as another compiler uses it: bytes in, sites out, bytes back.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { isAttention } from '@attnopt/ir';
import { saveModel, loadModel, inspectModel, recognize } from '../src/index.js';

const fixtures = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../../shared/fixtures/onnx');

describe('library API', () => {
  test('import from bytes and export without changes gives the same bytes back', () => {
    const bytes = new Uint8Array(readFileSync(resolve(fixtures, 'torch-exports/gpt2_causal_attn_where_op17.onnx')));
    const model = loadModel(bytes);
    expect(Buffer.from(saveModel(model)).equals(Buffer.from(bytes))).toBe(true);
  });

  test('recognize lifts sites into Attention nodes and explains the rules that did not fire', () => {
    const model = loadModel(resolve(fixtures, 'onnx-node-tests/test_attention_4d_gqa_softcap/model.onnx'));
    const result = recognize(model.graph);
    expect(result.changed).toBe(true);
    expect(model.graph.nodes.filter(isAttention)).toHaveLength(1);
    expect(result.notes.filter((n) => n.message.startsWith('applied'))).toHaveLength(1);
  });

  test('inspect reports each site from the model itself', () => {
    // test_attention_4d_gqa_softcap: Q [2, 9, 4, 8], K/V [2, 3, 6, 8], softcap 2, default scale 1/sqrt(8)
    const report = inspectModel(loadModel(resolve(fixtures, 'onnx-node-tests/test_attention_4d_gqa_softcap/model.onnx')));
    expect(report.sites).toHaveLength(1);
    expect(report.sites[0]).toMatchObject({ heads: 9, kvHeads: 3, headDim: 8, mask: 'dense', bias: null });
    expect(report.sites[0]!.scale).toBeCloseTo(1 / Math.sqrt(8), 12);
  });

  test('a model with no attention has no sites', () => {
    const report = inspectModel(loadModel(resolve(fixtures, 'onnx-node-tests/test_softmax_large_number/model.onnx')));
    expect(report.sites).toEqual([]);
  });
});
