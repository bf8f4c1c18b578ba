// ONNX import + export of a 400 MB BERT-base model with external data: wall time and peak RSS, codec path
// (readModel -> writeModel, weights copied to the new side file) and, when @attnopt/onnx exports them, the
// IR path (readModel -> importModel -> exportModel -> writeModel), side by side in one process, repeated,
// medians reported. Target (issue): under 5 s and peak RSS under 2x the model size.
//
//   npx tsx --conditions=@attnopt/source tools/bench/import-export.ts [MODEL.onnx] [--repeats N] [--keep]
//
// Without MODEL.onnx the model is generated (tools/src/gen/bert-base.ts, in a child process so that its
// memory does not count here) into a temp folder, removed at the end unless --keep. Outputs are written
// beside the input and removed after every repetition.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import * as onnx from '@attnopt/onnx';
import { decodeModel, encodeModel, mapTensors, nodeReadFiles, nodeWriteFiles, readModel, writeModel, type ModelProto, type ReadFiles, type WriteFiles } from '@attnopt/onnx';

const here = path.dirname(fileURLToPath(import.meta.url));
const generator = path.join(here, '..', 'src', 'gen', 'bert-base.ts');
const MiB = 2 ** 20;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

// ---------------------------------------------------------------------------------------------------
// Peak RSS: a worker samples the process's RSS every millisecond (the main thread is blocked in
// synchronous file and codec work, so it cannot sample itself) into shared memory.

const shared = new Int32Array(new SharedArrayBuffer(8)); // [0]: peak RSS in KiB since reset, [1]: stop flag
const sampler = new Worker(
  `const { workerData } = require('node:worker_threads');
   const s = workerData;
   while (Atomics.load(s, 1) === 0) {
     const kb = Math.round(process.memoryUsage.rss() / 1024);
     if (kb > Atomics.load(s, 0)) Atomics.store(s, 0, kb);
     Atomics.wait(s, 1, 0, 1);
   }`,
  { eval: true, workerData: shared },
);
const resetPeak = (): void => void Atomics.store(shared, 0, Math.round(process.memoryUsage.rss() / 1024));
const peakRss = (): number => Math.max(Atomics.load(shared, 0) * 1024, process.memoryUsage.rss());
const maxRss = (): number => process.resourceUsage().maxRSS * 1024;

// ---------------------------------------------------------------------------------------------------
// File operations timed, to split wall time into reading, writing, fsync and the rest (codec CPU).

interface IoTimes {
  read: number;
  write: number;
  fsync: number;
}
const io: IoTimes = { read: 0, write: 0, fsync: 0 };
const timed = <A extends unknown[], R>(key: keyof IoTimes, fn: (...a: A) => R) => (...a: A): R => {
  const t = performance.now();
  try {
    return fn(...a);
  } finally {
    io[key] += performance.now() - t;
  }
};
const readFiles: ReadFiles = { ...nodeReadFiles, read: timed('read', nodeReadFiles.read) };
const writeFiles: WriteFiles = {
  ...nodeWriteFiles,
  write: timed('write', nodeWriteFiles.write),
  fsync: timed('fsync', nodeWriteFiles.fsync),
  fsyncDir: timed('fsync', nodeWriteFiles.fsyncDir),
};

// ---------------------------------------------------------------------------------------------------
// The two paths.

type Fn = (...args: unknown[]) => unknown;
const api = onnx as unknown as Record<string, unknown>;
const importModel = typeof api['importModel'] === 'function' ? (api['importModel'] as Fn) : undefined;
const exportModel = typeof api['exportModel'] === 'function' ? (api['exportModel'] as Fn) : undefined;

interface PathSpec {
  name: string;
  run(input: string, output: string): void;
}

const codecPath: PathSpec = {
  name: 'codec: readModel -> writeModel',
  run(input, output) {
    const loaded = readModel(input, { files: readFiles });
    writeModel(output, loaded.model, { source: loaded.externalData, externalData: {}, files: writeFiles });
  },
};

/**
 * The IR path, through the API the IR bridge gives: importModel(model, { file, externalData }) -> OnnxModel
 * (tensors stay lazy references into the side file), exportModel(OnnxModel) -> ModelProto. Looked up at run
 * time, so that this script also runs on a checkout without the bridge.
 */
const irPath: PathSpec | undefined =
  importModel !== undefined && exportModel !== undefined
    ? {
        name: 'IR: readModel -> importModel -> exportModel -> writeModel',
        run(input, output) {
          const loaded = readModel(input, { files: readFiles });
          const ir = importModel(loaded.model, { file: loaded.file, externalData: loaded.externalData });
          const model = exportModel(ir) as ModelProto;
          writeModel(output, model, { source: loaded.externalData, externalData: {}, files: writeFiles });
        },
      }
    : undefined;

interface Sample {
  wall: number;
  read: number;
  write: number;
  fsync: number;
  other: number;
  peakRss: number;
  baseRss: number;
  maxRss: number;
  /** Minor page faults (first touches of fresh memory): costly on this VM. */
  faults: number;
  outBytes: number;
}

function fileBytes(onnxFile: string): number {
  const data = `${onnxFile}.data`;
  return fs.statSync(onnxFile).size + (fs.existsSync(data) ? fs.statSync(data).size : 0);
}

function removeModel(onnxFile: string): void {
  fs.rmSync(onnxFile, { force: true });
  fs.rmSync(`${onnxFile}.data`, { force: true });
}

/** Byte-compares two files, reading both into reused buffers. */
function sameBytes(a: string, b: string): boolean {
  const size = fs.statSync(a).size;
  if (size !== fs.statSync(b).size) return false;
  const [fa, fb] = [fs.openSync(a, 'r'), fs.openSync(b, 'r')];
  const [ba, bb] = [Buffer.allocUnsafe(16 * MiB), Buffer.allocUnsafe(16 * MiB)];
  try {
    for (let at = 0; at < size; at += ba.length) {
      const n = Math.min(ba.length, size - at);
      if (fs.readSync(fa, ba, 0, n, at) !== n || fs.readSync(fb, bb, 0, n, at) !== n) return false;
      if (ba.compare(bb, 0, n, 0, n) !== 0) return false;
    }
    return true;
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

async function measure(spec: PathSpec, input: string, output: string, check?: (output: string) => void): Promise<Sample> {
  removeModel(output);
  gc();
  await new Promise((r) => setTimeout(r, 50)); // let the sampler see the settled RSS
  io.read = io.write = io.fsync = 0;
  const baseRss = process.memoryUsage.rss();
  const faults0 = process.resourceUsage().minorPageFault;
  resetPeak();
  const t = performance.now();
  spec.run(input, output);
  const wall = performance.now() - t;
  await new Promise((r) => setTimeout(r, 5));
  const sample: Sample = {
    wall,
    ...io,
    other: wall - io.read - io.write - io.fsync,
    peakRss: peakRss(),
    baseRss,
    maxRss: maxRss(),
    faults: process.resourceUsage().minorPageFault - faults0,
    outBytes: fileBytes(output),
  };
  check?.(output);
  removeModel(output);
  return sample;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let input: string | undefined;
  let repeats = 3;
  let keep = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--repeats') repeats = Number(args[++i]);
    else if (a === '--keep') keep = true;
    else if (a.startsWith('-')) throw new Error(`unknown option ${a}; usage: import-export.ts [MODEL.onnx] [--repeats N] [--keep]`);
    else input = a;
  }
  if (!Number.isSafeInteger(repeats) || repeats < 1) throw new Error('--repeats needs a positive integer');

  let tempDir: string | undefined;
  try {
    if (input === undefined) {
      tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'attnopt-bench-'));
      input = path.join(tempDir, 'bert-base.onnx');
      const t = performance.now();
      const gen = spawnSync(process.execPath, [...process.execArgv, generator, input], { stdio: 'inherit' });
      if (gen.status !== 0) throw new Error(`generator failed (exit ${gen.status})`);
      console.log(`generated in ${((performance.now() - t) / 1000).toFixed(1)} s (child process)`);
    }
    const modelBytes = fileBytes(input);
    const outDir = path.dirname(path.resolve(input));
    const cpu = os.cpus()[0]?.model ?? 'unknown';
    console.log(`model ${input}: ${(modelBytes / MiB).toFixed(1)} MiB (.onnx + .data)`);
    console.log(`machine: ${os.cpus().length} cores, ${cpu}, Node ${process.version}; ${repeats} repetitions`);
    if (irPath === undefined) console.log('IR path: @attnopt/onnx exports no importModel/exportModel yet, skipped');

    const paths = irPath === undefined ? [codecPath] : [codecPath, irPath];
    const samples = new Map<string, Sample[]>(paths.map((p) => [p.name, []]));
    const failed = new Set<string>();
    for (let r = 0; r < repeats; r++) {
      // Alternate the order (AB, BA, AB...) so that drift on the shared machine hits both alike.
      for (const spec of r % 2 === 0 ? paths : [...paths].reverse()) {
        if (failed.has(spec.name)) continue;
        // Once per path, outside the timing: the copy should be the input byte for byte (same layout rules).
        const check =
          r === 0
            ? (out: string) => {
                const sameData = sameBytes(`${input}.data`, `${out}.data`);
                // The .onnx differs only in the side file's name (location entries): put the input's back.
                const renamed = mapTensors(decodeModel(fs.readFileSync(out)), 'ModelProto', (t) =>
                  t.externalData === undefined
                    ? t
                    : { ...t, externalData: t.externalData.map((e) => (e.key === 'location' ? { ...e, value: `${path.basename(input!)}.data` } : e)) },
                );
                const sameModel = Buffer.from(encodeModel(renamed)).equals(fs.readFileSync(input!));
                console.log(`  ${spec.name.split(':')[0]} output is the input byte for byte: .data ${sameData ? 'yes' : 'NO'}, .onnx (side file name aside) ${sameModel ? 'yes' : 'NO'}`);
              }
            : undefined;
        let s: Sample;
        try {
          s = await measure(spec, input, path.join(outDir, `out-${r}.onnx`), check);
        } catch (error) {
          removeModel(path.join(outDir, `out-${r}.onnx`));
          if (spec === codecPath) throw error;
          console.log(`  run ${r + 1} ${spec.name}: FAILED: ${(error as Error).stack ?? String(error)}`);
          failed.add(spec.name);
          continue;
        }
        samples.get(spec.name)!.push(s);
        console.log(
          `  run ${r + 1} ${spec.name}: ${(s.wall / 1000).toFixed(2)} s, peak RSS ${(s.peakRss / MiB).toFixed(0)} MiB` +
            ` (base ${(s.baseRss / MiB).toFixed(0)}), maxRSS so far ${(s.maxRss / MiB).toFixed(0)} MiB, ${s.faults} minor faults`,
        );
        if (Math.abs(s.outBytes - modelBytes) > modelBytes * 0.01) {
          console.log(`  warning: output is ${s.outBytes} bytes, input ${modelBytes}`);
        }
      }
    }

    const rows = paths.filter((p) => samples.get(p.name)!.length > 0).map((p) => {
      const ss = samples.get(p.name)!;
      const m = (k: keyof Sample) => median(ss.map((s) => s[k]));
      return { name: p.name, wall: m('wall'), read: m('read'), write: m('write'), fsync: m('fsync'), other: m('other'), peak: m('peakRss'), base: m('baseRss'), faults: m('faults') };
    });
    const sec = (ms: number) => (ms / 1000).toFixed(2);
    const header = ['path', 'wall s', 'read s', 'write s', 'fsync s', 'other s', 'peak RSS MiB', 'peak-base MiB', 'peak/model', 'minor faults', 'target'];
    const body = rows.map((r) => {
      const ratio = r.peak / modelBytes;
      const met = r.wall < 5000 && ratio < 2;
      return [r.name, sec(r.wall), sec(r.read), sec(r.write), sec(r.fsync), sec(r.other), (r.peak / MiB).toFixed(0), ((r.peak - r.base) / MiB).toFixed(0), ratio.toFixed(2), r.faults.toFixed(0), met ? 'met' : 'NOT met'];
    });
    const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
    const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
    console.log(`\nmedian of ${repeats} (model ${(modelBytes / MiB).toFixed(1)} MiB; target: wall < 5 s, peak RSS < 2x model):`);
    console.log(line(header));
    console.log(line(widths.map((w) => '-'.repeat(w))));
    for (const b of body) console.log(line(b));
    if (rows.length === 2) console.log(`IR / codec wall time: ${(rows[1]!.wall / rows[0]!.wall).toFixed(2)}x`);
    console.log(`process maxRSS (whole run, resourceUsage): ${(maxRss() / MiB).toFixed(0)} MiB = ${(maxRss() / modelBytes).toFixed(2)}x the model`);
  } finally {
    if (tempDir !== undefined && !keep) fs.rmSync(tempDir, { recursive: true, force: true });
    else if (tempDir !== undefined) console.log(`kept ${tempDir}`);
    Atomics.store(shared, 1, 1);
    Atomics.notify(shared, 1);
    await sampler.terminate();
  }
}

await main();
