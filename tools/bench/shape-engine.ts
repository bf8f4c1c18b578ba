// The symbolic shape engine on the 12-layer BERT-base of tools/src/gen/bert-base.ts (about 436 MB with external
// data): the import, one forward pass of the engine (cold, then warm repeats after dropping its cache), and
// import + recognize end to end, medians over repeats. Targets: one pass well under a second; import +
// recognize under 5 s.
//
//   npx tsx --conditions=@attnopt/source tools/bench/shape-engine.ts [MODEL.onnx] [--repeats N] [--keep]
//
// Without MODEL.onnx the model is generated (in a child process) into a temp folder, removed at the end unless
// --keep.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isAttention } from '@attnopt/ir';
import { importOnnx } from '@attnopt/onnx';
import { analyzeShapes, invalidateShapes, recognizePass, symbolicShape } from '@attnopt/passes';

const here = path.dirname(fileURLToPath(import.meta.url));
const generator = path.join(here, '..', 'src', 'gen', 'bert-base.ts');

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const option = (name: string, fallback: number) => {
  const k = args.indexOf(name);
  return k >= 0 ? Number(args[k + 1]) : fallback;
};
const repeats = option('--repeats', 5);
const given = args.find((a, k) => !a.startsWith('--') && !(k > 0 && args[k - 1] === '--repeats'));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => `${x.toFixed(1)} ms`;

const dir = given ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'attnopt-shapes-'));
const input = given ?? path.join(dir!, 'bert-base.onnx');
try {
  if (!given) {
    const t = performance.now();
    const gen = spawnSync(process.execPath, [...process.execArgv, generator, input], { stdio: 'inherit' });
    if (gen.status !== 0) throw new Error(`generator failed (exit ${gen.status})`);
    console.log(`generated ${input} in ${((performance.now() - t) / 1000).toFixed(1)} s (child process)`);
  }
  console.log(`cpu: ${os.cpus()[0]?.model ?? 'unknown'} x ${os.cpus().length}`);

  const imports: number[] = [];
  const cold: number[] = [];
  const warm: number[] = [];
  const recognize: number[] = [];
  let summary = '';
  for (let r = 0; r < repeats; r++) {
    // import + one pass (first on this graph), then passes over the same graph after dropping the cache
    let t = performance.now();
    const model = importOnnx(input);
    imports.push(performance.now() - t);
    const g = model.graph;
    t = performance.now();
    analyzeShapes(g);
    cold.push(performance.now() - t);
    for (let k = 0; k < 3; k++) {
      invalidateShapes();
      t = performance.now();
      analyzeShapes(g);
      warm.push(performance.now() - t);
    }
    // import + recognize end to end, on a fresh import (the shape cache starts empty)
    invalidateShapes();
    t = performance.now();
    const fresh = importOnnx(input).graph;
    recognizePass({ explain: false }).run(fresh);
    recognize.push(performance.now() - t);
    const sites = fresh.nodes.filter(isAttention).length;
    const out = symbolicShape(fresh.outputs[0]);
    summary = `${g.nodes.length} nodes; ${sites} attention sites lifted; output shape [${out?.map(String).join(', ')}]`;
  }
  console.log(summary);
  console.log(`import (median of ${repeats}):             ${ms(median(imports))}`);
  console.log(`engine pass, first on the graph (median):  ${ms(median(cold))}`);
  console.log(`engine pass, repeated (median of ${warm.length}):    ${ms(median(warm))}`);
  console.log(`import + recognize (median of ${repeats}):    ${ms(median(recognize))}`);
} finally {
  if (dir && !flag('--keep')) fs.rmSync(dir, { recursive: true, force: true });
}
