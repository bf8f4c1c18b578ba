// Lifting is undoable: for every model of the corpus, import -> recognize -> unlift every site -> export gives
// back the original model field for field (diffMessages: every known field, unknown fields by bytes). This is
// what lets optimize leave a site nothing improved exactly as the exporter wrote it.

import fs from 'node:fs';
import path from 'node:path';
import { isAttention } from '@attnopt/ir';
import { decodeModel, diffMessages, exportOnnx, importOnnx } from '@attnopt/onnx';
import { describe, expect, it } from 'vitest';
import { recognizePass } from '../src/recognize/index.js';
import { unliftBlocker, unliftSite } from '../src/recognize/unlift.js';
import { FIXTURES } from './helpers/node-tests.js';

function onnxFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? onnxFiles(p) : e.name.endsWith('.onnx') ? [p] : [];
  });
}

/** Models the importer refuses (checked: the reason is a substring of the error). */
const NOT_IMPORTABLE: Record<string, string> = {
  'genai-models/test/test_models/hf-internal-testing/tiny-random-LlamaForCausalLM-fp32/f8a96379_model.onnx': 'does not exist',
};

const files = onnxFiles(FIXTURES)
  .map((f) => path.relative(FIXTURES, f))
  .sort();

describe('recognize then unlift every site gives back the original model', () => {
  it('covers the corpus', () => {
    expect(files.length).toBeGreaterThan(400);
  });

  it.each(files)('%s', (file) => {
    const full = path.join(FIXTURES, file);
    let model;
    try {
      model = importOnnx(full);
    } catch (e) {
      expect(NOT_IMPORTABLE[file], `${file}: ${(e as Error).message}`).toBeDefined();
      expect((e as Error).message).toContain(NOT_IMPORTABLE[file]);
      return;
    }
    expect(NOT_IMPORTABLE[file]).toBeUndefined();
    recognizePass({ explain: false }).run(model.graph);
    const sites = [...model.graph.allNodes()].filter(isAttention);
    for (const site of sites) {
      expect(unliftBlocker(site), site.describe()).toBeUndefined();
      expect(unliftSite(site)).toBe(true);
    }
    expect([...model.graph.allNodes()].filter(isAttention)).toHaveLength(0);
    expect(diffMessages(decodeModel(fs.readFileSync(full)), decodeModel(exportOnnx(model)))).toBeUndefined();
  });
});
