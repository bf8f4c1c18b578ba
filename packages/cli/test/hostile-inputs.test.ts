// Hostile paths and inputs: each case a user (or an attacker handing over a model) can make, run through the
// command, exiting as the README says with every file the user did not name as an output intact (hashed
// before and after). Device files are stand-ins made in a private temp folder (mknod where permitted, else a
// FIFO); the real /dev is never touched.

import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { saveModel, loadModel, parseGraph, runMemory } from '@attnopt/core';
import { Node, Value } from '@attnopt/ir';
import { escapeControls, MAX_LINE, printable } from '../src/print.js';
import { snapshot } from './folder-snapshot.js';
import { attnoptInProcess as attnopt } from './run-captured.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const fixtures = resolve(here, '../../../../shared/fixtures/onnx');
const tinyBert = resolve(here, '../../../examples/tiny-bert');
const torch = (name: string) => join(fixtures, 'torch-exports', name);
const scratch = mkdtempSync(join(tmpdir(), 'attnopt-hostile-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A protobuf varint. */
function varint(n: number): number[] {
  const out: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n % 128) | 0x80);
  return [...out, n];
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A fresh folder holding a copy of tiny-bert (model.onnx and its side file model.onnx.data). */
function workspace(name: string): { dir: string; model: string } {
  const dir = join(scratch, name);
  mkdirSync(dir);
  for (const f of ['model.onnx', 'model.onnx.data']) copyFileSync(join(tinyBert, f), join(dir, f));
  return { dir, model: join(dir, 'model.onnx') };
}

/** A character device node at `path` (a stand-in for /dev/null), or a FIFO where mknod is not permitted. */
function deviceStandIn(path: string): 'device' | 'FIFO' {
  try {
    execFileSync('mknod', [path, 'c', '1', '3'], { stdio: 'ignore' });
    return 'device';
  } catch {
    execFileSync('mkfifo', [path]);
    return 'FIFO';
  }
}

describe('output paths', () => {
  test('codegen into a folder holding a manifest.json attnopt did not write: exit 2, every file kept', async () => {
    const app = join(scratch, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'manifest.json'), '{}');
    writeFileSync(join(app, 'thesis.tex'), 'x\n');
    const before = snapshot(scratch);
    const r = await attnopt('codegen', join(tinyBert, 'model.onnx'), '--target', 'wgsl', '-o', app, '--seq-len', '16', '--max-error', '0');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('holds files attnopt did not write');
    expect(snapshot(scratch)).toEqual(before);
  });

  test('codegen replaces its own earlier output, deleting only the files its manifest lists', async () => {
    const out = join(scratch, 'kernels');
    const gpt2 = torch('gpt2_causal_attn_where_op17_dyn.onnx');
    expect((await attnopt('codegen', gpt2, '--target', 'wgsl', '-o', out, '--max-error', '0')).code).toBe(0);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    expect(manifest.generator).toBe('attnopt');
    expect(manifest.files).toEqual(['site0.wgsl']);
    expect((await attnopt('codegen', gpt2, '--target', 'wgsl', '-o', out, '--max-error', '0')).code).toBe(0);
    // a file the manifest does not list: the folder is no longer attnopt's alone, so it is refused
    writeFileSync(join(out, 'notes.txt'), 'mine\n');
    const before = snapshot(scratch);
    const r = await attnopt('codegen', gpt2, '--target', 'wgsl', '-o', out, '--max-error', '0');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('"notes.txt"');
    expect(snapshot(scratch)).toEqual(before);
  });

  test('optimize -o a device node (a stand-in for /dev/null, /dev/full): exit 2, the node is left as it was', async () => {
    const dev = join(scratch, 'null');
    const kind = deviceStandIn(dev);
    const before = snapshot(scratch);
    const r = await attnopt('optimize', join(tinyBert, 'model.onnx'), '-o', dev, '--max-error', '0');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`exists and is a ${kind}`);
    expect(lstatSync(dev).isFile()).toBe(false);
    expect(snapshot(scratch)).toEqual(before);
  });

  test('optimize -o the model\'s own side file: exit 1, the model and its weights intact', async () => {
    const { dir, model } = workspace('own-side');
    const before = snapshot(dir);
    const r = await attnopt('optimize', model, '-o', join(dir, 'model.onnx.data'), '--max-error', '0');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("is the same file as the model's external data");
    expect(snapshot(dir)).toEqual(before);
  });

  test('optimize -o the model itself, through another spelling of its path: exit 1', async () => {
    const { dir, model } = workspace('self');
    const before = snapshot(dir);
    const r = await attnopt('optimize', model, '-o', join(dir, '..', 'self', '.', 'model.onnx'), '--max-error', '0');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('is the same file as the model');
    expect(snapshot(dir)).toEqual(before);
  });

  test('--report naming the optimized model\'s side file: exit 1, nothing written', async () => {
    const { dir, model } = workspace('report-side');
    const before = snapshot(dir);
    const r = await attnopt('optimize', model, '-o', join(dir, 'x.onnx'), '--report', join(dir, 'x.onnx.data'), '--max-error', '0');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--report is the same file as the side file of -o');
    expect(snapshot(dir)).toEqual(before);
  });

  test('optimize -o a folder with a file beside it named like its side file: exit 2, that file untouched', async () => {
    const { dir, model } = workspace('folder-out');
    mkdirSync(join(dir, 'd'));
    writeFileSync(join(dir, 'd.data'), 'keep\n');
    const before = snapshot(dir);
    const r = await attnopt('optimize', model, '-o', join(dir, 'd'), '--max-error', '0');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('exists and is a folder');
    expect(snapshot(dir)).toEqual(before);
  });

  test('optimize -o a symbolic link: exit 2, the link and what it points to are kept', async () => {
    const { dir, model } = workspace('link-out');
    writeFileSync(join(dir, 'precious.txt'), 'precious\n');
    execFileSync('ln', ['-s', join(dir, 'precious.txt'), join(dir, 'out.onnx')]);
    const before = snapshot(dir);
    const r = await attnopt('optimize', model, '-o', join(dir, 'out.onnx'), '--max-error', '0');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('exists and is a symbolic link');
    expect(snapshot(dir)).toEqual(before);
  });

  test('a regular output file is replaced, and its side file written beside it', async () => {
    const { dir, model } = workspace('replace');
    writeFileSync(join(dir, 'out.onnx'), 'old\n');
    const r = await attnopt('optimize', model, '-o', join(dir, 'out.onnx'), '--max-error', '0');
    expect(r.code).toBe(0);
    expect(loadModel(join(dir, 'out.onnx')).graph.nodes.length).toBeGreaterThan(0);
    expect(existsSync(join(dir, 'out.onnx.data'))).toBe(true);
  });
});

describe('verify always judges', () => {
  const self = torch('mha_self_op17.onnx');
  const causal = torch('mha_self_causal_op17.onnx');

  test('two different models and no certificate: exit 3 against the default tolerance', async () => {
    const r = await attnopt('verify', self, causal);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('no certificate in the model: judged against tolerance 0.0001');
    expect(r.stderr).toMatch(/y: max abs error .* is over the tolerance 0\.0001 x the output's scale/);
  });

  test('a model against itself: exit 0 (the tolerance is met, so exit 3 above is the difference)', async () => {
    const r = await attnopt('verify', self, self, '--json');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ certified: null, passed: true, failures: [], thresholds: { tolerance: 1e-4 } });
  });

  test('--min-cosine judges embeddings: a wide tolerance passes, the cosine threshold fails (exit 3), --json shows both', async () => {
    const loose = await attnopt('verify', self, causal, '--tolerance', '100', '--json');
    expect(loose.code).toBe(0);
    const cosine = JSON.parse(loose.stdout).outputs[0].meanCosine;
    expect(cosine).toBeLessThan(0.5);
    const r = await attnopt('verify', self, causal, '--tolerance', '100', '--min-cosine', '0.5', '--json');
    expect(r.code).toBe(3);
    const report = JSON.parse(r.stdout);
    expect(report.thresholds).toEqual({ tolerance: 100, minCosine: 0.5 });
    expect(report.failures).toEqual([`y: mean cosine ${cosine.toFixed(6)} is under --min-cosine 0.5`]);
  });

  test('--min-top1 and --max-kl judge logits: a model that flips the argmax fails both (exit 3), --json names them', async () => {
    const file = (name: string, op: string) => {
      const path = join(scratch, `${name}.onnx`);
      const graph = parseGraph(`graph ${name} {\n  input %x: f32[16, 10]\n  %logits = ${op}(%x)\n  output %logits\n}`);
      writeFileSync(path, saveModel({ graph, proto: { irVersion: 10n, opsetImport: [{ domain: '', version: 17n }] } }));
      return path;
    };
    const r = await attnopt('verify', file('same', 'Identity'), file('flipped', 'Neg'), '--tolerance', '1e9', '--min-top1', '0.5', '--max-kl', '0.1', '--json');
    expect(r.code).toBe(3);
    const report = JSON.parse(r.stdout);
    expect(report.thresholds).toEqual({ tolerance: 1e9, minTop1: 0.5, maxKL: 0.1 });
    const o = report.outputs[0];
    expect(o.top1Agreement).toBeLessThan(0.5);
    expect(o.meanKL).toBeGreaterThan(0.1);
    expect(report.failures).toEqual([
      `logits: top-1 agreement ${(100 * o.top1Agreement).toFixed(2)}% is under --min-top1 0.5`,
      `logits: mean KL ${o.meanKL.toPrecision(3)} is over --max-kl 0.1`,
    ]);
  });

  test('an output whose last axis is 131,072 (a real vocabulary): judged, no stack overflow', async () => {
    const vocab = 131_072;
    const file = join(scratch, 'vocab.onnx');
    const graph = parseGraph(`graph vocab {\n  input %x: f32[2, ${vocab}]\n  %logits = Identity(%x)\n  output %logits\n}`);
    writeFileSync(file, saveModel({ graph, proto: { irVersion: 10n, opsetImport: [{ domain: '', version: 17n }] } }));
    const r = await attnopt('verify', file, file, '--json', '--min-top1', '1', '--max-kl', '0');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout).outputs[0];
    expect(out).toMatchObject({ name: 'logits', shape: [2, vocab], top1Agreement: 1, meanKL: 0, maxAbsError: 0 });
  });
});

describe('invalid models found after loading', () => {
  test('a local function that calls itself: exit 2 naming it, no output written', async () => {
    const model = loadModel(readFileSync(torch('gpt2_causal_attn_where_op17_dyn.onnx')));
    const x = model.graph.inputs[0]!;
    model.graph.addNode(new Node({ domain: 'local', op: 'Self', inputs: [x], outputs: [new Value('self_out')] }));
    model.proto.opsetImport = [...(model.proto.opsetImport ?? []), { domain: 'local', version: 1n }];
    model.proto.functions = [
      {
        name: 'Self',
        domain: 'local',
        input: ['a'],
        output: ['b'],
        opsetImport: [{ domain: '', version: 17n }, { domain: 'local', version: 1n }],
        node: [{ opType: 'Softmax', input: ['a'], output: ['s'] }, { opType: 'Self', domain: 'local', input: ['s'], output: ['b'] }],
      },
    ];
    const file = join(scratch, 'self-calling.onnx');
    writeFileSync(file, saveModel(model));
    const out = join(scratch, 'self-calling.opt.onnx');
    const r = await attnopt('optimize', file, '-o', out);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/function "?local::Self"?: it is called 64 calls deep at node local::Self -> %self_out \(does a function call itself\?\)/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('limits stated up front', () => {
  test('inspect --seq-len 1e9: refused at once with the estimate and the largest length that fits (exit 1)', async () => {
    const model = join(tinyBert, 'model.onnx');
    const t0 = performance.now();
    const r = await attnopt('inspect', model, '--seq-len', '1e9');
    expect(performance.now() - t0).toBeLessThan(20_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/a run at --seq-len 1000000000 needs about [\d.]+ GiB/);
    expect(r.stderr).toMatch(/the largest --seq-len that fits is \d+/);
  });

  test('--seq-len 1e9 with nothing to calibrate (--max-error 0): refused as over the longest length analyzed (exit 1)', async () => {
    const r = await attnopt('inspect', join(tinyBert, 'model.onnx'), '--seq-len', '1e9', '--max-error', '0');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`attnopt: --seq-len 1000000000 is over the longest attnopt analyzes, ${2 ** 24}\n`);
  });

  test('optimize --seq-len 16384 on a dynamic model over --allow-memory: refused before calibration; the length it offers fits', async () => {
    const model = torch('mha_self_causal_op17_dyn.onnx');
    const out = join(scratch, 'big.onnx');
    const r = await attnopt('optimize', model, '-o', out, '--seq-len', '16384', '--allow-memory', '1G');
    expect(r.code).toBe(1);
    expect(existsSync(out)).toBe(false);
    const fits = Number(/the largest --seq-len that fits is (\d+)/.exec(r.stderr)?.[1]);
    // the offer is the largest length whose estimate is within the limit
    const memory = runMemory(loadModel(model));
    expect(memory.sites.length).toBe(1);
    expect(memory.at(fits)).toBeLessThanOrEqual(2 ** 30);
    expect(memory.at(fits + 1)).toBeGreaterThan(2 ** 30);
    // and the estimate grows with the dense scores: 4 heads x n^2 pairs
    expect(memory.at(2 * fits) - memory.at(fits)).toBeGreaterThan(4 * 3 * fits * fits * 4);
  });

  test('inspect /dev/zero (a device stand-in) and a FIFO: refused at once, nothing read (exit 2)', async () => {
    const dev = join(scratch, 'zero');
    const kind = deviceStandIn(dev);
    const fifo = join(scratch, 'model.fifo');
    execFileSync('mkfifo', [fifo]);
    for (const [path, what] of [[dev, kind], [fifo, 'FIFO']] as const) {
      const r = await attnopt('inspect', path);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`a ${what}, not a model file (attnopt reads models only from regular files)`);
    }
  });

  /** The fixture's bytes with a second `graph` field appended (protobuf merges it: its nodes are added). */
  const withExtraGraphBytes = (extra: Uint8Array): Uint8Array =>
    concat(readFileSync(torch('mha_self_op17.onnx')), Uint8Array.from([0x3a, ...varint(extra.length)]), extra); // field 7 (graph)

  test('a model of 2,000,000 empty nodes (4 MB): refused quickly, no output (exit 2)', async () => {
    const file = join(scratch, 'empty-nodes.onnx');
    const nodes = new Uint8Array(2 * 2_000_000);
    for (let k = 0; k < nodes.length; k += 2) nodes[k] = 0x0a; // field 1 (node), length 0
    writeFileSync(file, withExtraGraphBytes(nodes));
    const out = join(scratch, 'empty-nodes.opt.onnx');
    const t0 = performance.now();
    const r = await attnopt('optimize', file, '-o', out);
    expect(performance.now() - t0).toBeLessThan(30_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/the graph has 200\d{4} nodes, more than the 1000000 attnopt reads/);
    expect(existsSync(out)).toBe(false);
  });

  test('one node without an op type: refused, naming the node by index (exit 2)', async () => {
    const file = join(scratch, 'no-op.onnx');
    writeFileSync(file, withExtraGraphBytes(Uint8Array.from([0x0a, 0x00])));
    const r = await attnopt('inspect', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/node #\d+: the node has no op_type/);
  });

  test('a tensor with 10 million dims: exit 2 with a message of one short line', async () => {
    const file = join(scratch, 'dims.onnx');
    const dims = 10_000_000;
    // TensorProto { dims: packed [1, 1, ...] (field 1), data_type: FLOAT (field 2), name: "big" (field 8) }
    const body = concat(Uint8Array.from([0x0a, ...varint(dims)]), new Uint8Array(dims).fill(1), Uint8Array.from([0x10, 0x01, 0x42, 3]), new TextEncoder().encode('big'));
    const initializer = Uint8Array.from([0x2a, ...varint(body.length)]); // GraphProto field 5 (initializer)
    writeFileSync(file, withExtraGraphBytes(concat(initializer, body)));
    const r = await attnopt('inspect', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('initializer "big": the tensor has 10000000 dims, more than the 64 attnopt reads');
    expect(r.stderr.length).toBeLessThan(1000);
  });
});

describe('control characters are escaped in every message', () => {
  test('a model path holding ESC and BEL: printed escaped in errors and results', async () => {
    const hostile = join(scratch, 'm\u001b[2J\u0007.onnx');
    const missing = await attnopt('inspect', hostile);
    expect(missing.code).toBe(2);
    expect(missing.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
    expect(missing.stderr).toContain('m\\x1b[2J\\x07.onnx: no such file');
    copyFileSync(torch('gpt2_causal_attn_where_op17_dyn.onnx'), hostile);
    const found = await attnopt('inspect', hostile);
    expect(found.code).toBe(0);
    expect(found.stdout).toContain('m\\x1b[2J\\x07.onnx: 1 attention site');
    expect(found.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    const json = await attnopt('inspect', hostile, '--json');
    expect(JSON.parse(json.stdout).model).toBe(hostile); // JSON keeps the name, escaped the JSON way
    expect(json.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  });

  test('the escaping function: NUL, ESC, BEL, DEL and C1 controls escaped; newlines kept; long lines cut', () => {
    expect(escapeControls('a\u0000b\u001bc\u0007d\u007fe\u009bf\tg\nh')).toBe('a\\x00b\\x1bc\\x07d\\x7fe\\x9bf\\tg\nh');
    const long = 'x'.repeat(3 * MAX_LINE);
    expect(printable(long)).toBe(`${'x'.repeat(MAX_LINE)}... (${2 * MAX_LINE} more characters)`);
  });
});
