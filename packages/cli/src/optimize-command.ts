// attnopt optimize MODEL -o OUT: the whole job, written atomically (no partial file on failure).
// Options are declared in registerOptimize; the outputs (the model, then anything else a flag asks for) are
// written in writeOutputs, after every check has passed.

import { type Command } from 'commander';
import { type AttnoptModel, optimize, type OptimizeResult, type OptimizedSite, writeOnnx } from '@attnopt/core';
import { requireSites } from './decide.js';
import { CliError, ExitCode } from './exit-codes.js';
import { loadModelOrFail } from './load.js';
import { addDecisionOptions, type DecisionFlags } from './options.js';
import { withProgress } from './progress.js';
import { samplesFor } from './samples.js';

interface OptimizeFlags extends DecisionFlags {
  output: string;
  target: string;
  json?: boolean;
}

/** Stage names of core's optimize, then the command's own (for the progress bar). */
const STAGES = ['calibration inputs', 'recognize', 'analyze masks', 'calibrate', 'sparsify', 'lower', 'write'];

function writeOptimized(output: string, model: AttnoptModel): void {
  try {
    writeOnnx(output, model);
  } catch (e) {
    throw new CliError(`${output}: could not write the optimized model: ${(e as Error).message}`, ExitCode.badInput);
  }
}

/** Everything the command writes, once the optimization has succeeded. */
function writeOutputs(flags: OptimizeFlags, result: OptimizeResult): void {
  writeOptimized(flags.output, result.model);
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
  const command = program
    .command('optimize')
    .description('rewrite each attention site into the cheapest form whose certified error fits the budget')
    .argument('<model>', 'the ONNX model file')
    .requiredOption('-o, --output <file>', 'where to write the optimized model (written atomically)');
  addDecisionOptions(command, true)
    .option('--json', 'print { sites: [{ id, chosen, exact, bound, measuredError, flopsBefore, flopsAfter, reason? }], output }')
    .addHelpText('after', '\nExamples:\n  $ attnopt optimize model.onnx -o model.opt.onnx\n  $ attnopt optimize model.onnx -o exact.onnx --max-error 0 --json')
    .action(async (modelPath: string, flags: OptimizeFlags) => {
      const model = loadModelOrFail(modelPath);
      const result = await withProgress('optimize', STAGES, async (p) => {
        p.stage('calibration inputs');
        const samples = flags.maxError > 0 ? samplesFor(model, flags.calibration, flags.seqLen, flags.seed, 2) : [];
        let optimized: OptimizeResult;
        try {
          optimized = await optimize(model, {
            maxError: flags.maxError,
            samples,
            seqLen: flags.seqLen,
            seed: flags.seed,
            target: flags.target,
            onStage: (s) => p.stage(s),
          });
        } catch (e) {
          throw new CliError(`${modelPath}: ${(e as Error).message}`, ExitCode.badInput);
        }
        requireSites(optimized.sites.length, modelPath, 'optimize');
        p.stage('write');
        writeOutputs(flags, optimized);
        return optimized;
      });
      if (flags.json) process.stdout.write(`${JSON.stringify({ sites: result.sites, output: flags.output }, null, 2)}\n`);
      else process.stdout.write(`${modelPath}: ${result.sites.length} site${result.sites.length === 1 ? '' : 's'} -> ${flags.output}\n${formatSites(result.sites)}\n`);
    });
}
