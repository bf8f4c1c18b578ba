// The shape engine against onnxruntime on the corpus's ONNX backend node tests (onnx-node-tests: one op, or its
// expanded function body, per folder): every value of the graph is exposed as an output and the model runs on
// its own stored inputs (test_data_set_0/input_k.pb); every dim the engine infers must equal onnxruntime's, and
// every inferred element of a small integer value too. Folders onnxruntime cannot run are listed with the class
// of its refusal, exactly, so what "zero wrong dims on the node tests" covers is stated.

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { NODE_TESTS, readDataSet } from './helpers/node-tests.js';
import { ortTensor } from './helpers/ort.js';
import { checkShapesOn } from './helpers/shape-check.js';
import { NO_KERNEL, OPSET_TOO_NEW, refusalClass, runFails } from './helpers/refusal.js';

const dirs = fs
  .readdirSync(NODE_TESTS, { withFileTypes: true })
  .filter((e) => e.isDirectory() && fs.existsSync(path.join(NODE_TESTS, e.name, 'model.onnx')))
  .map((e) => e.name)
  .sort();

const withExpanded = (names: readonly string[]) => names.flatMap((n) => [n, `${n}_expanded`]);
const LINEAR_ATTENTION = ['decode_step', 'delta', 'explicit_scale', 'fp16', 'gated', 'gated_delta', 'gated_delta_beta_scalar', 'gated_delta_gqa', 'gated_delta_mqa', 'gated_per_head_decay', 'linear', 'linear_t1_no_past', 'no_past_explicit_zeros', 'prefill_with_past'];
const FLEX_ATTENTION = ['', '_causal_mask', '_diff_head_sizes', '_double', '_fp16', '_gqa', '_prob_mod', '_relative_positional', '_scaled', '_score_mod', '_soft_cap'];

/** Node tests onnxruntime 1.30 refuses, by the class of its refusal (see helpers/refusal.ts). */
const NOT_RUN: Record<string, string> = {
  // LinearAttention is stamped opset 27, under development
  ...Object.fromEntries(withExpanded(LINEAR_ATTENTION.map((n) => `test_linear_attention_${n}`)).map((n) => [n, OPSET_TOO_NEW])),
  // ai.onnx.preview FlexAttention (its expanded bodies run and are checked)
  ...Object.fromEntries(FLEX_ATTENTION.map((n) => [`test_flexattention${n}`, NO_KERNEL])),
  // onnxruntime's Attention kernel rejects this test's 4D mask shape (ComputeOutputShapeForAttention)
  test_attention_4d_diff_heads_mask4d_padded_kv: runFails('Attention'),
};

describe('the shape engine against onnxruntime on the ONNX node tests', () => {
  const checked: { dir: string; compared: number; values: number; full: number }[] = [];
  const notRun: Record<string, string> = {};

  it.each(dirs)('%s', async (dir) => {
    const folder = path.join(NODE_TESTS, dir);
    let result;
    try {
      const { inputs } = readDataSet(folder);
      result = await checkShapesOn(path.join(folder, 'model.onnx'), (g) => {
        const fed = g.inputs.filter((v) => !v.initializer);
        if (fed.length !== inputs.length) throw new Error(`${dir}: ${fed.length} graph inputs, ${inputs.length} stored inputs`);
        return [Object.fromEntries(fed.map((v, k) => [v.name, ortTensor(inputs[k]!.dtype, inputs[k]!.shape, inputs[k]!.toFloat64())]))];
      });
    } catch (e) {
      notRun[dir] = refusalClass((e as Error).message);
      return;
    }
    checked.push({ dir, compared: result.compared, values: result.values, full: result.fullyInferred });
    expect(result.mismatches, dir).toEqual([]);
  });

  it('checks every node test onnxruntime runs; the ones it refuses are listed by reason', () => {
    const compared = checked.reduce((a, c) => a + c.compared, 0);
    const values = checked.reduce((a, c) => a + c.values, 0);
    const full = checked.reduce((a, c) => a + c.full, 0);
    const classes = new Map<string, number>();
    for (const c of Object.values(notRun)) classes.set(c, (classes.get(c) ?? 0) + 1);
    console.log(
      [
        `shape engine vs onnxruntime on ${dirs.length} node tests: ${checked.length} run, ${compared} dims and elements compared, 0 mismatches; ${full} of ${values} values fully inferred`,
        `not run (${Object.keys(notRun).length}): ${[...classes].map(([c, n]) => `${n} ${c}`).join('; ')}`,
      ].join('\n'),
    );
    expect(notRun).toEqual(NOT_RUN);
    expect(checked.length + Object.keys(notRun).length).toBe(dirs.length);
  });
});
