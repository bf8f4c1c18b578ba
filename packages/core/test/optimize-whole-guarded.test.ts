// A whole transformers export whose padding mask is built n x n beside the causal one (BLOOM: Where(causal ∧
// padding, alibi, -inf) over [B, H, S, T]): the mask analysis reads the residual on the proven keys as a key bias,
// so default optimize (generated calibration, exact and guarded forms only) can give its ALiBi heads guarded
// windows. Checked in onnxruntime on a realistic batch the calibration never saw (random ids, one row left-padded
// by 100 tokens): the first layer's attention output (same Q, K, V in both models) stays within the guarded budget
// of the original's on every query row that is not padding (float32 rounding aside: 1e-5 + 1e-4 |y|), and the
// logits agree on the next token. (A padding query row keeps no key: there the model's finite fill averages all
// of V and attnopt's fully masked row is 0, the mask analysis's stated convention, on exact sites as well.)

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { importOnnx, exportOnnx } from '@attnopt/onnx';
import { analyze, inspectModel, loadModel, optimize, saveModel } from '../src/index.js';

process.env.ORT_DISABLE_TELEMETRY = '1';

const here = path.dirname(fileURLToPath(import.meta.url));
const BLOOM = path.resolve(here, '../../../tools/fixtures/whole-models/bloom.onnx');
const N = 1024; // at 512 no guarded form pays on the measured profile (the certificate and the split copies cost more than the windows save)
const PADDED = 100;

/** The model with `name` as an extra graph output. */
function exposing(bytes: Uint8Array, name: string): Uint8Array {
  const model = importOnnx(bytes);
  const v = [...model.graph.allNodes()].flatMap((n) => n.outputs).find((x) => x.name === name);
  if (!v) throw new Error(`no value ${name}`);
  model.graph.outputs.push(v);
  return exportOnnx(model);
}

async function run(bytes: Uint8Array, ids: BigInt64Array, mask: BigInt64Array, names: string[]): Promise<Record<string, ort.Tensor>> {
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled' });
  const out = await s.run({ input_ids: new ort.Tensor('int64', ids, [2, N]), attention_mask: new ort.Tensor('int64', mask, [2, N]) });
  return Object.fromEntries(names.map((n) => [n, out[n]!]));
}

describe('a whole BLOOM export (its padding mask n x n): guarded windows on the ALiBi heads, the promise kept', () => {
  it('default optimize takes guarded forms, and site 0 stays within its budget on a left-padded batch', async () => {
    const original = new Uint8Array(fs.readFileSync(BLOOM));
    const inspected = inspectModel(loadModel(original));
    expect(inspected.sites).toHaveLength(2);
    // each site's residual bias is the key bias read on the causal keys, not the n x n mask
    const facts = analyze(loadModel(original).graph).sites;
    expect(facts.map((f) => [f.spec, f.keyBias])).toEqual([
      ['causal', true],
      ['causal', true],
    ]);
    const result = await optimize(loadModel(original), { seqLen: N });
    expect(result.calibration).toMatchObject({ source: 'generated' });
    for (const s of result.sites) expect(['exact', 'guarded']).toContain(s.guarantee);
    // (an n x n bias rules the guarded forms out: only the key bias the analysis read lets them in)
    const site0 = result.sites[0]!;
    expect(site0.guarantee, site0.reason).toBe('guarded');

    // site 0's output: the value its last lifted node wrote (the lowered site keeps the name)
    const onnxNodes = inspected.sites[0]!.onnxNodes;
    const lastNode = onnxNodes[onnxNodes.length - 1]!;
    const proto = importOnnx(original);
    const output = [...proto.graph.allNodes()].find((n) => n.name === lastNode)!.outputs[0]!.name;
    const ids = BigInt64Array.from({ length: 2 * N }, (_, k) => BigInt((k * 7919 + 13) % 97));
    const mask = BigInt64Array.from({ length: 2 * N }, (_, k) => (k >= N && k - N < PADDED ? 0n : 1n));
    const want = await run(exposing(original, output), ids, mask, [output, 'logits']);
    const got = await run(exposing(saveModel(result.model), output), ids, mask, [output, 'logits']);

    // [B·H, S, D] (BLOOM's bmm) or [B, S, H·D]: either way batch-major, so batch 1's rows follow batch 0's
    const y0 = want[output]!.data as Float32Array;
    const y1 = got[output]!.data as Float32Array;
    expect(y1.length).toBe(y0.length);
    const dims = want[output]!.dims;
    const perQuery = dims.length === 3 && dims[0] === 2 * 4 ? { heads: 4, d: dims[2]! } : undefined;
    expect(perQuery, `site output dims [${dims.join(', ')}]`).toBeDefined();
    let worst = 0;
    let compared = 0;
    for (let bh = 0; bh < 2 * 4; bh++) {
      const b = Math.floor(bh / 4);
      for (let i = b === 1 ? PADDED : 0; i < N; i++) {
        for (let c = 0; c < perQuery!.d; c++) {
          const t = (bh * N + i) * perQuery!.d + c;
          const excess = Math.abs(y1[t]! - y0[t]!) - (site0.bound + 1e-5 + 1e-4 * Math.abs(y0[t]!));
          worst = Math.max(worst, excess);
          compared++;
        }
      }
    }
    expect(compared).toBeGreaterThan(N * 4);
    expect(worst, 'largest excess over the guarded budget').toBeLessThanOrEqual(0);

    // the next token agrees on the rows that are not padding
    const V = want.logits!.dims[2]!;
    const l0 = want.logits!.data as Float32Array;
    const l1 = got.logits!.data as Float32Array;
    const argmax = (l: Float32Array, at: number) => {
      let best = 0;
      for (let v = 1; v < V; v++) if (l[at + v]! > l[at + best]!) best = v;
      return best;
    };
    let agree = 0;
    let rows = 0;
    for (let b = 0; b < 2; b++) {
      for (let i = b === 1 ? PADDED : 0; i < N; i++, rows++) agree += Number(argmax(l0, (b * N + i) * V) === argmax(l1, (b * N + i) * V));
    }
    expect(agree / rows).toBeGreaterThanOrEqual(0.99);
  }, 240_000);
});
