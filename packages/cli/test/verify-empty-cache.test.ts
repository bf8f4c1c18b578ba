// verify on generated inputs of a model that takes cached tokens only with one new token (onnxruntime-genai's
// attention-mask subgraph expands a [seq, seq] causal mask to [seq, past + seq]): the default two cached tokens
// make onnxruntime fail, so verify runs both models again on an empty cache (the first call of every generation)
// and says so; so does optimize's report for its held-out input. A cache the user sized is kept, and its failure
// reported as before.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, test } from 'vitest';
import { attnoptInProcess as attnopt } from './run-captured.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const LLAMA = resolve(here, '../../../../shared/fixtures/onnx/genai-models/test/test_models/hf-internal-testing/tiny-random-LlamaForCausalLM-fp16/model.onnx');

test('generated inputs with the default cache fail in onnxruntime: verified on an empty cache, with a note naming the option', async () => {
  const r = await attnopt('verify', LLAMA, LLAMA, '--seq-len', '16');
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toMatch(/note: the models failed on generated inputs with cached tokens \(.*invalid expand shape\); verified on an empty cache instead \(--dim past_sequence_length=0\)/);
  expect(r.stdout).toMatch(/present\.0\.key \[1, 1, 16, 16\]: max abs error 0/);
});

test('a cache the user sized is kept: the failure is reported (exit 2), no retry', async () => {
  const r = await attnopt('verify', LLAMA, LLAMA, '--seq-len', '16', '--dim', 'past_sequence_length=2');
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/invalid expand shape/);
  expect(r.stderr).not.toMatch(/verified on an empty cache/);
});

const scratch = mkdtempSync(join(tmpdir(), 'attnopt-empty-cache-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

test("optimize --report: the report's held-out input runs on an empty cache, and the report is written", async () => {
  const [out, report] = [join(scratch, 'opt.onnx'), join(scratch, 'report.html')];
  const r = await attnopt('optimize', LLAMA, '-o', out, '--seq-len', '16', '--report', report);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toMatch(/note: the report's held-out input with cached tokens failed \(.*invalid expand shape\); it was run on an empty cache instead/);
  expect(existsSync(report) && existsSync(out)).toBe(true);
});
