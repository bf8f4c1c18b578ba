// attnopt verify ORIGINAL OPTIMIZED: both models in onnxruntime on the same inputs; how much of the
// original's behaviour the optimized model keeps. Exit 3 when an output's error, with the models as written,
// exceeds what the optimized model's metadata certifies plus float rounding and the original's own drift
// under onnxruntime's graph optimizations.

import { type Command } from 'commander';
import { type OutputComparison, type Runtime, verifyModels } from '@attnopt/core';
import { CliError, ExitCode } from './exit-codes.js';
import { failedOn } from './failure.js';
import { loadModelOrFail } from './load.js';
import { DIM_HELP, dimSize, integer, positiveInteger, runtimeOption } from './options.js';
import { withProgress } from './progress.js';
import { samplesFor } from './samples.js';

interface VerifyFlags {
  seqLen: number;
  inputs?: string;
  seed: number;
  dim?: Record<string, number>;
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
  const line = `  ${o.name} [${o.shape.join(', ')}]: max abs error ${fmt(o.maxAbsError)}, max rel error ${fmt(o.maxRelError)}${extra.length ? `, ${extra.join(', ')}` : ''}`;
  // onnxruntime: the models as written, when its graph optimizations change what either computes
  const moved = o.asWrittenMaxAbsError !== undefined && (o.asWrittenMaxAbsError !== o.maxAbsError || (o.originalDrift ?? 0) > 0);
  return moved
    ? `${line}\n    as written (graph optimizations off): max abs error ${fmt(o.asWrittenMaxAbsError!)}; onnxruntime's graph optimizations move the original itself by ${fmt(o.originalDrift ?? 0)}`
    : line;
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
    .option('--dim <name=size>', DIM_HELP, dimSize)
    .addOption(runtimeOption('(both models)'))
    .option('--json', 'print { outputs: [{ name, maxAbsError, maxRelError, rounding, top1Agreement?, meanKL?, meanCosine?, asWrittenMaxAbsError?, originalDrift? }], msOriginal, msOptimized, certified, withinCertified }')
    .addHelpText('after', '\nOutputs are compared as deployed (onnxruntime with all graph optimizations). In onnxruntime both models also run\nwith graph optimizations off (as written): the certificate is checked there, with float rounding and the\noriginal\'s own drift under the optimizations (how much the same model moves when only its float order changes)\nallowed beside it. Exit 3 when an output differs by more than that.\n\nExamples:\n  $ attnopt verify model.onnx model.opt.onnx\n  $ attnopt verify model.onnx model.opt.onnx --seq-len 512 --json\n  $ attnopt verify model.onnx model.opt.onnx --runtime attnopt-cpu    # without onnxruntime')
    .action(async (originalPath: string, optimizedPath: string, flags: VerifyFlags) => {
      const original = loadModelOrFail(originalPath);
      const optimized = loadModelOrFail(optimizedPath);
      const report = await withProgress('verify', ['inputs', 'running both models'], async (p) => {
        p.stage('inputs');
        const samples = samplesFor(original, flags.inputs, flags.seqLen, flags.seed, 1, flags.dim);
        p.stage('running both models');
        try {
          return await verifyModels(originalPath, optimizedPath, optimized, samples, { runtime: flags.runtime });
        } catch (e) {
          throw failedOn(optimizedPath, e, flags.inputs === undefined ? { generated: true, seqLen: flags.seqLen } : { generated: false }, '--inputs');
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
