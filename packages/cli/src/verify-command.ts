// attnopt verify ORIGINAL OPTIMIZED: both models in onnxruntime on the same inputs; how much of the
// original's behaviour the optimized model keeps. Exit 3 when an output's error exceeds what the optimized
// model's metadata certifies.

import { type Command } from 'commander';
import { type OutputComparison, type Runtime, verifyModels } from '@attnopt/core';
import { CliError, ExitCode } from './exit-codes.js';
import { loadModelOrFail } from './load.js';
import { integer, positiveInteger, runtimeOption } from './options.js';
import { withProgress } from './progress.js';
import { samplesFor } from './samples.js';

interface VerifyFlags {
  seqLen: number;
  inputs?: string;
  seed: number;
  runtime: Runtime;
  json?: boolean;
}

const fmt = (x: number) => x.toPrecision(3);

function formatOutput(o: OutputComparison): string {
  const extra = [
    o.top1Agreement !== undefined ? `top-1 agreement ${(100 * o.top1Agreement).toFixed(2)}%` : '',
    o.meanKL !== undefined ? `mean KL ${fmt(o.meanKL)}` : '',
    o.meanCosine !== undefined ? `mean cosine ${o.meanCosine.toFixed(6)}` : '',
  ].filter((s) => s !== '');
  return `  ${o.name} [${o.shape.join(', ')}]: max abs error ${fmt(o.maxAbsError)}, max rel error ${fmt(o.maxRelError)}${extra.length ? `, ${extra.join(', ')}` : ''}`;
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('run the original and the optimized model on the same inputs and compare their outputs')
    .argument('<original>', 'the original ONNX model')
    .argument('<optimized>', 'the model `attnopt optimize` wrote')
    .option('--seq-len <n>', 'sequence length of generated inputs', positiveInteger, 128)
    .option('--inputs <path>', 'inputs: a folder of .npy or TensorProto .pb files named after the model inputs (or numbered sample folders)')
    .option('--seed <s>', 'seed of generated inputs', integer, 1)
    .addOption(runtimeOption('(both models)'))
    .option('--json', 'print { outputs: [{ name, maxAbsError, maxRelError, top1Agreement?, meanKL?, meanCosine? }], msOriginal, msOptimized, certified, withinCertified }')
    .addHelpText('after', '\nExit 3 when an output differs by more than the certified error in the optimized model (plus float rounding).\n\nExamples:\n  $ attnopt verify model.onnx model.opt.onnx\n  $ attnopt verify model.onnx model.opt.onnx --seq-len 512 --json\n  $ attnopt verify model.onnx model.opt.onnx --runtime attnopt-cpu    # without onnxruntime')
    .action(async (originalPath: string, optimizedPath: string, flags: VerifyFlags) => {
      const original = loadModelOrFail(originalPath);
      const optimized = loadModelOrFail(optimizedPath);
      const report = await withProgress('verify', ['inputs', 'running both models'], async (p) => {
        p.stage('inputs');
        const samples = samplesFor(original, flags.inputs, flags.seqLen, flags.seed, 1);
        p.stage('running both models');
        try {
          return await verifyModels(originalPath, optimizedPath, optimized, samples, { runtime: flags.runtime });
        } catch (e) {
          throw new CliError(`${optimizedPath}: ${(e as Error).message}`, ExitCode.badInput);
        }
      });
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        const certified = report.certified === null ? 'no certificate in the model' : `certified max error per site ${fmt(report.certified)}`;
        process.stdout.write(
          `${optimizedPath} vs ${originalPath} (${certified}):\n${report.outputs.map(formatOutput).join('\n')}\n` +
            `  time: original ${report.msOriginal.toFixed(1)} ms, optimized ${report.msOptimized.toFixed(1)} ms\n`,
        );
      }
      if (report.withinCertified === false) {
        throw new CliError(`verification failed: an output differs by more than the certified ${fmt(report.certified ?? 0)}`, ExitCode.verificationFailed);
      }
    });
}
