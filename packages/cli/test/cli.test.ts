// The attnopt command as a user runs it: every command and option, and bad input for each.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';

const bin = fileURLToPath(new URL('../bin/attnopt.js', import.meta.url));
const fixtures = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../../shared/fixtures/onnx');
const scratch = mkdtempSync(join(tmpdir(), 'attnopt-cli-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function attnopt(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 110_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const bert = join(fixtures, 'torch-exports/bert_self_attn_additive_mask_op17.onnx');
const gqa = join(fixtures, 'onnx-node-tests/test_attention_3d_gqa_causal/model.onnx');

describe('attnopt inspect', () => {
  test('prints one line per site', () => {
    const r = attnopt('inspect', bert);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe(`${bert}: 1 attention site`);
    expect(lines[1]).toMatch(/^ {2}site0 {2}heads=4 headDim=16 scale=0\.25 mask=dense bias=\S+ {2}\[6 ONNX nodes: /);
  });

  test('--json prints the documented object, with values read from the model', () => {
    const r = attnopt('inspect', gqa, '--json');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    // test_attention_3d_gqa_causal: q_num_heads 9, kv_num_heads 3, Q [2, 4, 72] -> head size 8, is_causal 1
    expect(report).toEqual({
      model: gqa,
      sites: [
        {
          id: 'site0',
          heads: 9,
          kvHeads: 3,
          headDim: 8,
          scale: 1 / Math.sqrt(8),
          mask: 'causal(align=past)',
          onnxNodes: [expect.any(String)],
          bias: null,
          vHeadDim: 8,
          softcap: 0,
          layout: 'bsd',
          dtype: 'f32',
          // Q [2, 4, 72], K and V [2, 6, 24]: 3 kv heads of 8
          shapes: { q: '[2, 4, 72]', k: '[2, 6, 24]', v: '[2, 6, 24]' },
          rule: 'onnx-attention',
          spec: 'causal(align=past)',
          proven: false,
          residualBias: null,
          keyBias: false,
          relativeBias: false,
          unkeptRows: null,
          keptFraction: expect.any(Number),
          analysis: [],
        },
      ],
      misses: [],
      noSites: null,
    });
  });

  test('--help explains the command with an example', () => {
    const r = attnopt('inspect', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: attnopt inspect [options] <model>');
    expect(r.stdout).toContain('$ attnopt inspect model.onnx --json');
  });

  describe('bad input exits 2 with the file and the problem on stderr, nothing on stdout', () => {
    test('a missing file', () => {
      const r = attnopt('inspect', join(scratch, 'nope.onnx'));
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(`attnopt: ${join(scratch, 'nope.onnx')}: no such file\n`);
    });

    test('garbage bytes', () => {
      const f = join(scratch, 'garbage.onnx');
      writeFileSync(f, Buffer.from('this is not a protobuf message at all \xff\xff\xff'));
      const r = attnopt('inspect', f);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(f);
    });

    test('a truncated model', () => {
      const f = join(scratch, 'truncated.onnx');
      const bytes = readFileSync(bert);
      writeFileSync(f, bytes.subarray(0, Math.floor(bytes.length / 2)));
      const r = attnopt('inspect', f);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^attnopt: .*truncated\\.onnx.*`));
    });

    test('a folder', () => {
      const r = attnopt('inspect', scratch);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('is a folder');
    });
  });

  test('usage errors exit 1', () => {
    expect(attnopt('inspect').code).toBe(1);
    expect(attnopt('inspect', bert, '--no-such-option').code).toBe(1);
    expect(attnopt('no-such-command').code).toBe(1);
  });

  test('top-level --help lists the commands and the exit codes', () => {
    const r = attnopt('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('inspect');
    expect(r.stdout).toContain('Exit codes: 0 ok, 1 usage error, 2 bad input');
  });
});
