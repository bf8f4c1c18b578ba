// Top-k key blocks on a causal site, ranked over every key block (future ones included, then cut) against ranked
// among the blocks the query block can see (topkBlocks(.., causal=align), what sparsify writes now), on the trained
// code model's own attention (examples/trained/code-lm.onnx, held-out text windows of n bytes). Per site and k, in
// float64 on the tensors onnxruntime computes for each site (evaluateHead, the chooser's own evaluation):
//   visible  the mean number of causally visible keys a row keeps (what it can attend);
//   dropped  the largest softmax mass a row drops;
//   guard    the rows whose run-time certificate exceeds the budget and fall back (union over the heads, as the
//            guarded lowering recomputes them).
//
//   npx tsx --conditions=@attnopt/source tools/bench/topk-causal.ts [--n 1024] [--windows 2] [--budget 1e-2] [--score quest|mean]

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { analyze, type CalibrationSample, collectSiteTensors, loadModel } from '@attnopt/core';
import { type Align, intersect, type MaskSpec, printSpec, rowKeys, topkBlocks } from '@attnopt/ir';
import { type CandidateStats, emptyStats, evaluateHead, headData, headResolver } from '@attnopt/passes';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const N = Number(opt('--n', '1024'));
const WINDOWS = Number(opt('--windows', '2'));
const BUDGET = Number(opt('--budget', '1e-2'));
const BLOCK = 64;
const SCORE = opt('--score', 'quest') as 'quest' | 'mean';
if (SCORE !== 'quest' && SCORE !== 'mean') throw new Error(`topk-causal: --score ${SCORE}: quest or mean`);
const KS = [2, 4, 8, 16].filter((k) => k * BLOCK < N);
const DIR = 'examples/trained';

const heldout = readFileSync(join(DIR, 'heldout', 'stdlib-heldout.txt'));
const samples: CalibrationSample[] = Array.from({ length: WINDOWS }, (_, w) => ({
  input_ids: { dtype: 'i64', shape: [1, N], data: BigInt64Array.from(heldout.subarray(w * N, (w + 1) * N), BigInt) },
}));
const model = loadModel(join(DIR, 'code-lm.onnx'));
analyze(model.graph, { seqLen: N });
const sites = await collectSiteTensors(model, samples, { outputs: false });
console.log(`code-lm, n = ${N}, ${WINDOWS} held-out window(s), budget ${BUDGET}, key blocks of ${BLOCK}, ${SCORE} scores; ${sites.length} sites\n`);
console.log('site | k | ranked | visible keys per row | max dropped mass | rows falling back (union over heads)');
console.log('---|---:|---|---:|---:|---:');

const totals = new Map<string, { fallback: number; rows: number }>();
for (const site of sites) {
  const params = site.params;
  const baseline = params.spec as MaskSpec;
  if (baseline.kind !== 'causal') {
    console.log(`${site.id}: baseline ${printSpec(baseline)} is not causal, skipped`);
    continue;
  }
  const align: Align = baseline.align;
  const leaves = KS.flatMap((k) => [topkBlocks(BLOCK, k, SCORE), topkBlocks(BLOCK, k, SCORE, align)]);
  const candidates = leaves.map((leaf) => intersect(baseline, leaf));
  const stats: CandidateStats[] = candidates.map(() => emptyStats());
  const visible = candidates.map(() => 0);
  let rows = 0;
  site.samples.forEach((s, si) => {
    const sample = { q: s.q, ...(s.k ? { k: s.k } : {}), ...(s.v ? { v: s.v } : {}) } as Parameters<typeof headData>[1];
    for (let h = 0; h < params.numHeads; h++) {
      const head = headData(params, sample, 0, h);
      const resolve = headResolver(head);
      evaluateHead(head, baseline, candidates, stats, resolve, { fullMeasureUpTo: Infinity, stride: 64, guardBudget: BUDGET, rowBase: si * head.nq });
      // the keys each row keeps after the causal cut, through the same resolver
      candidates.forEach((c, ci) => {
        for (let i = 0; i < head.nq; i++) {
          const kept = rowKeys(c, i, { nq: head.nq, nk: head.nk, past: head.past ?? 0 }, resolve);
          for (let t = 0; t < kept.length; t += 2) visible[ci]! += kept[t + 1]! - kept[t]!;
        }
      });
      rows += head.nq;
    }
  });
  leaves.forEach((leaf, ci) => {
    const st = stats[ci]!;
    const ranked = leaf.causal === undefined ? 'every block' : 'visible blocks';
    const key = `${leaf.k}:${ranked}`;
    const t = totals.get(key) ?? { fallback: 0, rows: 0 };
    totals.set(key, { fallback: t.fallback + st.fallbackIds.size, rows: t.rows + st.rowIds.size });
    console.log(
      `${site.id} | ${leaf.k} | ${ranked} | ${(visible[ci]! / rows).toFixed(1)} | ${st.maxDroppedMass.toFixed(3)} | ` +
        `${st.fallbackIds.size} / ${st.rowIds.size} (${((100 * st.fallbackIds.size) / Math.max(1, st.rowIds.size)).toFixed(1)}%)`,
    );
  });
}
console.log('\nall sites: k | ranked | rows falling back');
for (const [key, t] of totals) {
  const [k, ranked] = key.split(':');
  console.log(`${k} | ${ranked} | ${t.fallback} / ${t.rows} (${((100 * t.fallback) / Math.max(1, t.rows)).toFixed(1)}%)`);
}
