// Using attnopt as a library from another program: import a model, find its attention sites, prove what their
// masks keep, optimize within an error budget, export ONNX bytes, and generate a kernel for one site.
// Run from the repository root:  npx tsx --conditions=@attnopt/source examples/library-api/main.ts [MODEL]

import { fileURLToPath } from 'node:url';
import { analyze, attentionSites, compile, saveModel, loadModel, optimize, recognize } from '@attnopt/core';

const modelPath = process.argv[2] ?? fileURLToPath(new URL('../tiny-bert/model.onnx', import.meta.url));

// 1. Import (a path, so weights in a side file are found; bytes work for self-contained models) and recognize.
const model = loadModel(modelPath);
const recognized = recognize(model.graph);
console.log(`${attentionSites(model.graph).length} attention sites recognized (${recognized.notes.length} rule notes)`);

// 2. Analyze: what each site's own mask provably keeps (exact rewrites only).
const { sites } = analyze(model.graph, { seqLen: 128 });
for (const s of sites) {
  const kept = s.keptFraction === null ? '' : `, keeps ${(100 * s.keptFraction).toFixed(1)}% of pairs at n=128`;
  console.log(`${s.id}: ${s.heads} heads x ${s.headDim}, recognized ${s.recognized}, keys ${s.spec}${s.proven ? ' (proven)' : ''}${kept}`);
}

// 3. Compile one site for WebGPU and for the CPU: kernel text or bytes, and what it computes.
const site = attentionSites(model.graph)[0];
if (site) {
  const wgsl = compile(site, { target: 'wgsl' });
  const cpu = compile(site, { target: 'cpu' });
  console.log(`compiled ${site.id}: ${wgsl.files[0]!.name} (${String(wgsl.files[0]!.contents).length} chars of WGSL, ${wgsl.manifest.bindings.length} bindings), ` +
    `${cpu.files.map((f) => f.name).join(', ')} for the CPU`);
  console.log(`  computes: ${wgsl.manifest.computes}`);
}

// 4. Optimize a fresh copy within a budget of 0.01 (max absolute error per site, certified on generated
//    calibration inputs of length 32), then export the result as ONNX bytes.
const fresh = loadModel(modelPath);
const result = await optimize(fresh, { maxError: 0.01, seqLen: 32 });
for (const s of result.sites) console.log(`optimize ${s.id}: ${s.chosen} (${s.exact ? 'exact' : `bound ${s.bound}`})${s.reason ? `: ${s.reason}` : ''}`);
const bytes = saveModel(result.model);
console.log(`exported ${bytes.length} bytes of ONNX`);
