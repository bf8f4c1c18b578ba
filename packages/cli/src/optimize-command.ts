// attnopt optimize MODEL -o OUT: the whole job, written atomically (no partial file on failure).

import { type Command } from 'commander';
import { type AttnoptModel, optimize, type OptimizedSite, writeOnnx } from '@attnopt/core';
import { CliError, ExitCode } from './exit-codes.js';
import { loadModelOrFail } from './load.js';
import { integer, nonNegativeNumber, positiveInteger } from './options.js';
import { stageReporter } from './progress.js';
import { samplesFor } from './samples.js';

interface OptimizeFlags {
  output: string;
  maxError: number;
  seqLen: number;
  calibration?: string;
  seed: number;
  target: string;
  json?: boolean;
}

function writeOptimized(output: string, model: AttnoptModel): void {
  try {
    writeOnnx(output, model);
  } catch (e) {
    throw new CliError(`${output}: could not write the optimized model: ${(e as Error).message}`, ExitCode.badInput);
  }
}

const fmt = (x: number) => (Number.isFinite(x) ? x.toPrecision(3) : 'n/a');

export function formatSites(sites: readonly OptimizedSite[]): string {
  return sites
    .map((s) => {
      const what = s.exact ? 'exact' : `bound ${fmt(s.bound)}, measured ${fmt(s.measuredError ?? NaN)}`;
      const why = s.reason ? `  (${s.reason})` : '';
      return `  ${s.id}  ${s.chosen}  [${what}]  flops ${fmt(s.flopsBefore)} -> ${fmt(s.flopsAfter)}${why}`;
    })
    .join('\n');
}

export function registerOptimize(program: Command): void {
  program
    .command('optimize')
    .description('rewrite each attention site into the cheapest form whose certified error fits the budget')
    .argument('<model>', 'the ONNX model file')
    .requiredOption('-o, --output <file>', 'where to write the optimized model (written atomically)')
    .option('--max-error <e>', 'max absolute error of each site, certified on calibration data; 0 allows exact rewrites only', nonNegativeNumber, 1e-2)
    .option('--seq-len <n>', 'sequence length of generated calibration inputs', positiveInteger, 128)
    .option('--calibration <path>', 'calibration inputs: a folder of .npy or TensorProto .pb files named after the model inputs (or numbered sample folders)')
    .option('--seed <s>', 'seed of generated inputs and seeded forms', integer, 0)
    .option('--target <name>', 'cost model target: onnxruntime-cpu, attnopt-cpu or webgpu', 'onnxruntime-cpu')
    .option('--json', 'print { sites: [{ id, chosen, exact, bound, measuredError, flopsBefore, flopsAfter, reason? }], output }')
    .addHelpText('after', '\nExamples:\n  $ attnopt optimize model.onnx -o model.opt.onnx\n  $ attnopt optimize model.onnx -o exact.onnx --max-error 0 --json')
    .action(async (modelPath: string, flags: OptimizeFlags) => {
      const model = loadModelOrFail(modelPath);
      const samples = flags.maxError > 0 ? samplesFor(model, flags.calibration, flags.seqLen, flags.seed, 2) : [];
      let result;
      try {
        result = await optimize(model, {
          maxError: flags.maxError,
          samples,
          seqLen: flags.seqLen,
          seed: flags.seed,
          target: flags.target,
          onStage: stageReporter('optimize'),
        });
      } catch (e) {
        throw new CliError(`${modelPath}: ${(e as Error).message}`, ExitCode.badInput);
      }
      writeOptimized(flags.output, result.model);
      if (flags.json) process.stdout.write(`${JSON.stringify({ sites: result.sites, output: flags.output }, null, 2)}\n`);
      else process.stdout.write(`${modelPath}: ${result.sites.length} site${result.sites.length === 1 ? '' : 's'} -> ${flags.output}\n${formatSites(result.sites)}\n`);
    });
}
