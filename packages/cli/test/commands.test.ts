// inspect (facts and decisions), explain and codegen on real models, with values known independently of the code:
// the GPT-2 export masks with a causal tril buffer (Where), tiny-bert with a padding mask read from its input.

import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { causal, gaussian } from '@attnopt/ir';
import { referenceAttention, tensor64 } from '@attnopt/reference';
import { attnoptInProcess as attnopt } from './run-captured.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const fixtures = resolve(here, '../../../../shared/fixtures/onnx');
const gpt2 = join(fixtures, 'torch-exports/gpt2_causal_attn_where_op17_dyn.onnx');
const tinyBert = resolve(here, '../../../examples/tiny-bert/model.onnx');
const scratch = mkdtempSync(join(tmpdir(), 'attnopt-commands-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('attnopt inspect', () => {
  test('proves the causal mask of GPT-2 and reports the pairs it keeps', async () => {
    const r = await attnopt('inspect', gpt2, '--json');
    expect(r.code).toBe(0);
    const site = JSON.parse(r.stdout).sites[0];
    // recognized from MatMul/Div/Where/Softmax/MatMul as dense with a boolean mask; the mask is a tril buffer
    expect(site).toMatchObject({ id: 'site0', heads: 4, headDim: 16, mask: 'dense', spec: 'causal', proven: true, residualBias: null, layout: 'bhsd' });
    expect(site.bias).not.toBeNull();
    // causal keeps n (n + 1) / 2 of n^2 pairs; n = 128 by default
    expect(site.keptFraction).toBe((128 * 129) / 2 / 128 ** 2);
    expect(site.analysis.join('\n')).toContain('exact rewrite (error 0)');
    const text = await attnopt('inspect', gpt2);
    expect(text.stdout).toContain('keys: causal (proven from');
    expect(text.stdout).toContain('keeps 50.4% of pairs at n=128');
    expect(text.stderr).toBe('');
  });

  test('a window proven beside a padding key bias: says what a row whose kept keys are all padding computes', async () => {
    const mistral = resolve(here, '../../../tools/fixtures/whole-models/mistral.onnx');
    const r = await attnopt('inspect', mistral, '--json');
    expect(r.code).toBe(0);
    for (const s of JSON.parse(r.stdout).sites) {
      expect(s).toMatchObject({ spec: 'window(left=3, right=0)', proven: true, keyBias: true });
      expect(s.unkeptRows).toContain('computed again densely, with the whole bias');
    }
    // tiny-bert proves nothing: no such rows to speak of
    for (const s of JSON.parse((await attnopt('inspect', tinyBert, '--json')).stdout).sites) expect(s.unkeptRows).toBeNull();
    expect((await attnopt('inspect', mistral)).stdout).toContain('rows whose kept keys are all masked (a left-padded query) are computed again');
  });

  test('a T5 export: the self-attention biases are relative-position biases (functions of j - i), cross-attention is not', async () => {
    const t5 = resolve(here, '../../../tools/fixtures/whole-models/t5.onnx');
    const r = await attnopt('inspect', t5, '--json');
    expect(r.code).toBe(0);
    const sites = JSON.parse(r.stdout).sites as { relativeBias: boolean; keyBias: boolean; spec: string; analysis: string[] }[];
    // 2 encoder layers, then the decoder's self- and cross-attention in each of its 2 layers (tools/src/gen/whole_models.py)
    expect(sites.map((s) => s.relativeBias)).toEqual([true, true, true, false, true, false]);
    expect(sites.filter((s) => s.relativeBias).every((s) => s.analysis.join(' ').includes('relative-position bias'))).toBe(true);
    // the decoder's self-attention: causal proven, the relative part kept beside it
    expect(sites[2]!.spec).toBe('causal');
    const text = await attnopt('inspect', t5);
    expect(text.stdout).toContain('kept as relative-position bias (a function of j - i)');
  });

  test('a padding mask read from a model input is data-dependent: kept as bias, with the reason', async () => {
    const r = await attnopt('inspect', tinyBert, '--json');
    const sites = JSON.parse(r.stdout).sites;
    expect(sites).toHaveLength(2);
    for (const s of sites) {
      expect(s).toMatchObject({ mask: 'dense', spec: 'dense', proven: false, keptFraction: 1 });
      expect(s.residualBias).toBe(s.bias);
      expect(s.analysis.join(' ')).toContain('attention_mask');
    }
  });

  test('--decisions shows every form sparsify tried, and chooses what optimize chooses', async () => {
    const args = ['--seq-len', '64', '--max-error', '0.05', '--target', 'attnopt-cpu'];
    const r = await attnopt('inspect', gpt2, ...args, '--json');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.decisions).toMatchObject({ budget: 0.05, seqLen: 64 });
    expect(report.decisions.target).toContain('attnopt-cpu');
    const d = report.sites[0].decision;
    expect(d.tried.length).toBeGreaterThan(3);
    for (const t of d.tried) {
      expect(typeof t.spec).toBe('string');
      expect(typeof t.accepted).toBe('boolean');
      expect(t.reason.length).toBeGreaterThan(0);
    }
    // a form within the budget and cheaper would have been chosen: accepted forms are never more expensive
    const accepted = d.tried.filter((t: { accepted: boolean }) => t.accepted);
    if (d.chosen !== 'causal') expect(accepted.map((t: { spec: string }) => t.spec)).toContain(d.chosen);
    const o = await attnopt('optimize', gpt2, '-o', join(scratch, 'g.onnx'), ...args, '--json');
    expect(o.code).toBe(0);
    expect(JSON.parse(o.stdout).sites[0].chosen).toBe(d.chosen);
    const text = await attnopt('inspect', gpt2, ...args);
    expect(text.stdout).toContain('(decisions for max error 0.05 on attnopt-cpu');
    expect(text.stdout).toMatch(/tried: +form +verdict +bound +measured +flops +ms +why/);
  });

  test('--decisions with a budget of 0: exact only, nothing tried, and says so', async () => {
    const r = await attnopt('inspect', gpt2, '--max-error', '0', '--json');
    const d = JSON.parse(r.stdout).sites[0].decision;
    expect(d).toMatchObject({ chosen: 'causal', exact: true, bound: 0, tried: [] });
    expect(d.reason).toContain('only exact rewrites');
  });
});

describe('attnopt explain', () => {
  test('GPT-2: rewritten dense -> causal exactly, because the mask analysis proved it', async () => {
    const r = await attnopt('explain', gpt2, '--seq-len', '32', '--json');
    expect(r.code).toBe(0);
    const e = JSON.parse(r.stdout);
    expect(e.model).toBe(gpt2);
    expect(e.sites[0]).toMatchObject({ id: 'site0', rewritten: true, exact: true, recognized: 'dense', proven: 'causal' });
    expect(e.sites[0].why[0]).toContain('decomposed-attention rule from 6 ONNX nodes');
    expect(e.sites[0].why[1]).toContain('keeps exactly causal');
    const text = await attnopt('explain', gpt2, '--seq-len', '32');
    expect(text.stdout.split('\n')[1]).toBe('site0: rewritten dense -> causal (exact)');
  });

  test('tiny-bert: not rewritten, and why (a data-dependent mask; nothing cheaper on onnxruntime)', async () => {
    const r = await attnopt('explain', tinyBert, '--seq-len', '16', '--json');
    const e = JSON.parse(r.stdout);
    expect(e.target).toContain('onnxruntime');
    for (const s of e.sites) {
      expect(s.rewritten).toBe(false);
      expect(s.why.join(' ')).toContain('attention_mask');
      expect(s.why[s.why.length - 1]).toMatch(/^kept dense: /);
    }
  });
});

/** One query block of the generated CPU kernel, called as the manifest says, against the float64 reference. */
async function checkCpuKernel(dir: string, manifest: { kernels: { tiling: Record<string, number>; scale: number }[] }) {
  const k = manifest.kernels[0]!;
  const { blockQ: BQ, blockK: BK, dPad: DP, dvPad: DVP } = k.tiling as { blockQ: number; blockK: number; dPad: number; dvPad: number };
  const d = 16;
  const n = BQ; // one query block against one key block
  const [q, kk, v] = [11, 12, 13].map((seed) => gaussian(seed, n * d));
  const keep = (await import(pathToFileURL(join(dir, 'site0.keep.js')).href)) as { keep: (i: number, j: number, oTL: number, oBR: number, oPast: number, L: unknown[]) => boolean };
  // byte addresses, 16-byte aligned: Q, Y, the block list, K, V, the mask tile, scratch (as the manifest sizes it)
  const at = { q: 16, out: 16 + BQ * DP * 4 };
  const blocks = at.out + BQ * DVP * 4;
  const kAt = blocks + 16;
  const vAt = kAt + BK * DP * 4;
  const tile = vAt + BK * DVP * 4;
  const scratchAt = tile + BQ * BK * 4;
  const scratchBinding = (k as unknown as { bindings: { name: string; description: string }[] }).bindings.find((b) => b.name === 'scratch')!;
  const bytes = scratchAt + Number(/^(\d+) bytes/.exec(scratchBinding.description)![1]) + 64;
  const run = (attend: (q: number, out: number, blocks: number, nBlocks: number, scratch: number, rows: number) => void, F: Float32Array, I: Int32Array) => {
    for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) F[at.q / 4 + i * DP + c] = q![i * d + c]!;
    for (let j = 0; j < n; j++) for (let c = 0; c < d; c++) F[kAt / 4 + j * DP + c] = kk![j * d + c]!;
    for (let j = 0; j < n; j++) for (let c = 0; c < d; c++) F[vAt / 4 + j * DVP + c] = v![j * d + c]!;
    for (let i = 0; i < BQ; i++) for (let j = 0; j < BK; j++) F[tile / 4 + i * BK + j] = keep.keep(i, j, 0, 0, 0, []) ? 0 : -1e30;
    I.set([kAt, vAt, tile], blocks / 4);
    attend(at.q, at.out, blocks, 1, scratchAt, n);
    return Array.from({ length: n * d }, (_, x) => F[at.out / 4 + Math.floor(x / d) * DVP + (x % d)]!);
  };
  const params = { numHeads: 1, kvNumHeads: 1, headDim: d, vHeadDim: d, scale: k.scale, softcap: 0, layout: 'bhsd' as const, spec: causal() };
  const want = referenceAttention(params, { q: tensor64([1, 1, n, d], q), k: tensor64([1, 1, n, d], kk), v: tensor64([1, 1, n, d], v) }).y.data;

  const buffer = new ArrayBuffer(bytes);
  const F = new Float32Array(buffer);
  const I = new Int32Array(buffer);
  const attendJs = new Function(readFileSync(join(dir, 'site0.attend.js'), 'utf8'))() as (F: Float32Array, I: Int32Array, ...a: number[]) => void;
  const js = run((...a) => attendJs(F, I, ...a), F, I);

  const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536), maximum: 65536, shared: true });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(join(dir, 'site0.wasm'))), { env: { memory } });
  const attendWasm = instance.exports['attend'] as (q: number, out: number, blocks: number, nBlocks: number, scratch: number, rows: number) => void;
  const wasm = run(attendWasm, new Float32Array(memory.buffer), new Int32Array(memory.buffer));

  // f32 storage and accumulation, polynomial exp (relative error about 1e-7): atol 1e-4 + rtol 1e-4 on O(1) outputs
  for (const got of [js, wasm]) {
    for (let x = 0; x < want.length; x++) expect(Math.abs(got[x]! - want[x]!)).toBeLessThanOrEqual(1e-4 + 1e-4 * Math.abs(want[x]!));
  }
}

describe('attnopt codegen', () => {
  test('--target cpu: a WebAssembly kernel, its JavaScript twin and the keep predicate compute causal attention', async () => {
    const dir = join(scratch, 'cpu-kernels');
    const r = await attnopt('codegen', gpt2, '--target', 'cpu', '-o', dir, '--max-error', '0', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.stdout);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    expect(printed).toEqual(manifest);
    expect(readdirSync(dir).sort()).toEqual(['manifest.json', 'site0.attend.js', 'site0.keep.js', 'site0.wasm']);
    expect(manifest).toMatchObject({ model: gpt2, target: 'cpu', maxError: 0, skipped: [] });
    expect(manifest.costModel).toContain('attnopt-cpu');
    expect(manifest.kernels[0]).toMatchObject({ site: 'site0', spec: 'causal', exact: true, bound: 0, heads: 4, headDim: 16, scale: 0.25, layout: 'bhsd', entryPoint: 'attend' });
    expect(manifest.kernels[0].computes).toContain('over the keys j that causal keeps');
    expect(manifest.kernels[0].bindings.map((b: { name: string }) => b.name)).toEqual(['env.memory', 'q', 'out', 'blocks', 'nBlocks', 'scratch', 'rows']);
    await checkCpuKernel(dir, manifest);
  });

  test('--target wgsl: a WGSL compute shader with its bindings; a second run replaces the earlier output', async () => {
    const dir = join(scratch, 'wgsl-kernels');
    for (let run = 0; run < 2; run++) {
      const r = await attnopt('codegen', gpt2, '--target', 'wgsl', '-o', dir, '--seq-len', '16');
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`${gpt2}: 1 WGSL kernel -> ${dir}\n  site0  causal  [exact]  site0.wgsl\n  manifest: ${dir}/manifest.json\n`);
    }
    expect(readdirSync(dir).sort()).toEqual(['manifest.json', 'site0.wgsl']);
    expect(readdirSync(scratch).filter((f) => f.startsWith('.'))).toEqual([]); // no temporary folders left
    const wgsl = readFileSync(join(dir, 'site0.wgsl'), 'utf8');
    expect(wgsl).toContain('@compute @workgroup_size(');
    expect(wgsl).toContain('fn main(');
    const k = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')).kernels[0];
    expect(k).toMatchObject({ target: 'wgsl', entryPoint: 'main', spec: 'causal', dtype: 'f32' });
    const storage = k.bindings.filter((b: { kind: string }) => b.kind === 'storage').map((b: { name: string }) => b.name);
    expect(storage.slice(0, 4)).toEqual(['Q', 'K', 'V', 'Y']);
    for (const b of k.bindings) expect(wgsl).toMatch(new RegExp(`@binding\\(${b.binding}\\)[^;]*\\b${b.name}\\b`));
  });

  test('tiny-bert (a bias input): every site gets a kernel that reads the bias', async () => {
    const dir = join(scratch, 'bert-kernels');
    const r = await attnopt('codegen', tinyBert, '--target', 'wgsl', '-o', dir, '--seq-len', '16', '--json');
    expect(r.code).toBe(0);
    const m = JSON.parse(r.stdout);
    expect(m.kernels.map((k: { site: string }) => k.site)).toEqual(['site0', 'site1']);
    for (const k of m.kernels) expect(k.bindings.map((b: { name: string }) => b.name)).toContain('bias');
    expect(existsSync(join(dir, 'site1.wgsl'))).toBe(true);
  });
});
