// The shape engine against onnxruntime: for every corpus model onnxruntime runs on generated inputs (whole-models,
// torch-exports, ort-models, ort-generated, genai-models, and the repository's tools/fixtures/whole-models), every
// value of the main graph is exposed as an output
// and the model runs at two bindings of its symbolic dims (batch 1 / seq 7 / past 3, batch 2 / seq 5 / past 2);
// every inferred dim and every inferred element of a small integer value must equal what onnxruntime computes.
// Also the share of values whose shape is fully inferred (no size left to run time) on both whole-model folders: >= 99%.
// Left out: onnx-node-tests (single-op models, checked by their own tests) and one model too slow for CI
// (TFBertForQuestionAnswering: 3837 values, about 12 s; it had no mismatch when run by hand).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FIXTURES } from './helpers/node-tests.js';
import type { InputSizes } from './helpers/ort.js';
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
      notRun.set(file, (e as Error).message.split('\n')[0]!.slice(0, 120));
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
    for (const share of shares) expect(share).toBeGreaterThanOrEqual(0.99);
    expect(checked.length).toBeGreaterThanOrEqual(110);
  });
});
