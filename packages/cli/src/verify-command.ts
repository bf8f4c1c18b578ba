// attnopt verify ORIGINAL OPTIMIZED: both models in onnxruntime on the same inputs; how much of the
// original's behaviour the optimized model keeps. It always judges: exit 3 when an output's error, with the
// models as written, exceeds what the optimized model's metadata certifies plus float rounding and the
// original's own drift under onnxruntime's graph optimizations; without a certificate, when it exceeds
// --tolerance times the output's scale; and when a --min-top1, --max-kl or --min-cosine threshold is missed.

import { type Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_TOLERANCE, type GuardFallbackRate, type OutputComparison, type Runtime, VERIFY_METRICS, type VerifyMetric, type VerifyReport, type VerifyThresholds, verifyModels } from '@attnopt/core';
import { CliError, ExitCode } from './exit-codes.js';
import { failedOn } from './failure.js';
import { loadModelOrFail } from './load.js';
import { checkRunMemory, ALLOW_MEMORY_HELP, memorySize } from './memory.js';
import { DIM_HELP, dimSize, integer, nonNegativeNumber, positiveInteger, runtimeOption } from './options.js';
import { printError, printJson, printResult } from './print.js';
import { withProgress } from './progress.js';
import { calibrationNote, emptyCacheDims, samplesFor, SEED_STREAM } from './samples.js';

interface VerifyFlags {
  seqLen: number;
  inputs?: string;
  seed: number;
  dim?: Record<string, number>;
  runtime: Runtime;
  json?: boolean;
  tolerance?: number;
  minTop1?: number;
  maxKl?: number;
  minCosine?: number;
  maxBpbDelta?: number;
  metric: VerifyMetric;
  allowMemory?: number;
}

function fraction(value: string): number {
  const x = nonNegativeNumber(value);
  if (x > 1) throw new InvalidArgumentError('expected a number between 0 and 1');
  return x;
}

function cosine(value: string): number {
  const x = Number(value);
  if (value.trim() === '' || !(x >= -1 && x <= 1)) throw new InvalidArgumentError('expected a number between -1 and 1');
  return x;
}

function thresholdsOf(flags: VerifyFlags): VerifyThresholds {
  return {
    ...(flags.tolerance !== undefined ? { tolerance: flags.tolerance } : {}),
    ...(flags.minTop1 !== undefined ? { minTop1: flags.minTop1 } : {}),
    ...(flags.maxKl !== undefined ? { maxKL: flags.maxKl } : {}),
    ...(flags.minCosine !== undefined ? { minCosine: flags.minCosine } : {}),
    ...(flags.maxBpbDelta !== undefined ? { maxBpbDelta: flags.maxBpbDelta } : {}),
  };
}

/** Thresholds that judged nothing (no output has the metric): said, so a reader does not take them as passed. */
function unusedThresholds(report: VerifyReport): string[] {
  const has = (k: keyof OutputComparison) => report.outputs.some((o) => o[k] !== undefined);
  const t = report.thresholds;
  return [
    t.minTop1 !== undefined && !has('top1Agreement') ? '--min-top1' : '',
    t.maxKL !== undefined && !has('meanKL') ? '--max-kl' : '',
    t.minCosine !== undefined && !has('meanCosine') ? '--min-cosine' : '',
    t.maxBpbDelta !== undefined && !has('bitsPerByte') ? '--max-bpb-delta' : '',
  ].filter((s) => s !== '');
}

const fmt = (x: number) => x.toPrecision(3);
const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toPrecision(3)}`;

function formatOutput(o: OutputComparison): string {
  const extra = [
    o.top1Agreement !== undefined ? `top-1 agreement ${(100 * o.top1Agreement).toFixed(2)}%` : '',
    o.meanKL !== undefined ? `mean KL ${fmt(o.meanKL)}` : '',
    o.meanCosine !== undefined ? `mean cosine ${o.meanCosine.toFixed(6)}` : '',
    o.bitsPerByte !== undefined
      ? `bits per byte ${o.bitsPerByte.original.toFixed(4)} -> ${o.bitsPerByte.optimized.toFixed(4)} (delta ${signed(o.bitsPerByte.delta)} over ${o.bitsPerByte.positions} positions)`
      : '',
  ].filter((s) => s !== '');
  const line = `  ${o.name} [${o.shape.join(', ')}]: max abs error ${fmt(o.maxAbsError)}, max rel error ${fmt(o.maxRelError)}${extra.length ? `, ${extra.join(', ')}` : ''}`;
  // onnxruntime: the models as written, when its graph optimizations change what either computes
  const moved = o.asWrittenMaxAbsError !== undefined && (o.asWrittenMaxAbsError !== o.maxAbsError || (o.originalDrift ?? 0) > 0);
  return moved
    ? `${line}\n    as written (graph optimizations off): max abs error ${fmt(o.asWrittenMaxAbsError!)}; onnxruntime's graph optimizations move the original itself by ${fmt(o.originalDrift ?? 0)}`
    : line;
}

/** The guarded sites' fallback measured on these inputs (in the runtime that ran them), one line each. */
function formatFallback(rates: VerifyReport['guardFallback']): string {
  if (rates === undefined || rates.length === 0) return '';
  const strips = (r: GuardFallbackRate) => (r.recomputed !== undefined && r.recomputed > r.fellBack ? `; ${r.recomputed} recomputed with the rows of their strips of 4` : '');
  // a lowered site recomputes a row in every head when one head falls back there: its flags' rows are its dense work
  const line = (r: GuardFallbackRate) =>
    r.checked === 0
      ? `\n  guarded ${r.site}: no row certified on these inputs (a call of few new queries, a decode step, takes the site's exact dense form)`
      : r.rows !== undefined && r.rowsRecomputed !== undefined && r.rows > 0
      ? `\n  guarded ${r.site}: ${(100 * r.rate).toPrecision(3)}% of (batch, head, row) over the budget at run time (${r.fellBack} of ${r.checked}); ` +
        `their rows, ${(100 * (r.rowsRecomputed / r.rows)).toPrecision(3)}% of (batch, row), recomputed densely in every head (${r.rowsRecomputed} of ${r.rows})`
      : `\n  guarded ${r.site}: ${(100 * r.rate).toPrecision(3)}% of (batch, head, row) recomputed densely at run time (${r.fellBack} of ${r.checked}${strips(r)})`;
  return rates.map(line).join('');
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('run the original and the optimized model on the same inputs and compare their outputs')
    .argument('<original>', 'the original ONNX model')
    .argument('<optimized>', 'the model `attnopt optimize` wrote')
    .option('--seq-len <n>', 'sequence length of generated inputs', positiveInteger, 128)
    .option('--inputs <path>', 'inputs: a folder of .npy or TensorProto .pb files named after the model inputs (or numbered sample folders)')
    .option('--seed <s>', 'seed of generated inputs (a stream apart from the calibration inputs optimize generates with the same seed)', integer, 0)
    .option('--dim <name=size>', DIM_HELP, dimSize)
    .addOption(runtimeOption('(both models)'))
    .option('--tolerance <t>', `without a certificate in the optimized model: max abs error allowed, relative to each output's scale (its largest |element| in the original), default ${DEFAULT_TOLERANCE}`, nonNegativeNumber)
    .option('--min-top1 <share>', 'logits outputs: least share (0..1) of rows whose argmax must agree', fraction)
    .option('--max-kl <kl>', 'logits outputs: largest mean KL(original || optimized) allowed', nonNegativeNumber)
    .option('--min-cosine <c>', 'embedding outputs: least mean cosine similarity of rows', cosine)
    .addOption(
      new Option('--metric <name>', 'bits per byte: auto scores logits [batch, seq, 256] against the next byte of an integer input_ids; bpb scores any logits [batch, seq, V] against input_ids (or the only integer input), and fails when they do not pair')
        .choices(VERIFY_METRICS)
        .default('auto'),
    )
    .option('--max-bpb-delta <bits>', "byte LMs: largest increase of bits per byte (optimized minus original) allowed", nonNegativeNumber)
    .option('--allow-memory <size>', ALLOW_MEMORY_HELP, memorySize)
    .option('--json', 'print { outputs: [{ name, maxAbsError, maxRelError, rounding, scale, top1Agreement?, meanKL?, meanCosine?, bitsPerByte?: { original, optimized, delta, positions }, asWrittenMaxAbsError?, originalDrift? }], msOriginal, msOptimized, certified, withinCertified, thresholds, failures, passed, guardFallback?: [{ site, checked, fellBack, rate, recomputed? }] }')
    .addHelpText('after', '\nOutputs are compared as deployed (onnxruntime with all graph optimizations). In onnxruntime both models also run\nwith graph optimizations off (as written): the certificate is checked there, with float rounding and the\noriginal\'s own drift under the optimizations (how much the same model moves when only its float order changes)\nallowed beside it. The fallback of each guarded site (the share of (batch, head, row) its run-time certificate recomputed\ndensely on these inputs) is measured in the runtime that ran them and printed per site. Exit 3 when an output differs by more than that. Without a certificate, exit 3 when the max abs error\nof an output exceeds --tolerance x its scale. Exit 3 too when a --min-top1, --max-kl, --min-cosine or --max-bpb-delta threshold is missed.\nA byte-level LM (logits [batch, seq, 256], input_ids of bytes) is also scored in bits per byte: row t predicts byte t + 1,\n-log2 of its probability averaged over every predicted position, for both models, with the delta (optimized - original).\n\nExamples:\n  $ attnopt verify model.onnx model.opt.onnx\n  $ attnopt verify model.onnx model.opt.onnx --seq-len 512 --json\n  $ attnopt verify model.onnx model.opt.onnx --runtime attnopt-cpu    # without onnxruntime\n  $ attnopt verify lm.onnx lm.opt.onnx --inputs heldout/ --max-bpb-delta 0.01    # a byte LM on held-out text')
    .action(async (originalPath: string, optimizedPath: string, flags: VerifyFlags) => {
      const original = loadModelOrFail(originalPath);
      const optimized = loadModelOrFail(optimizedPath);
      if (flags.inputs === undefined) checkRunMemory(original, originalPath, flags.seqLen, flags.allowMemory);
      const note = calibrationNote(optimized, flags.inputs);
      if (note !== undefined) printError(`note: ${note}`);
      const report = await withProgress('verify', ['inputs', 'running both models'], async (p) => {
        p.stage('inputs');
        const verifyOn = (dims: Readonly<Record<string, number>> | undefined) =>
          verifyModels(originalPath, optimizedPath, optimized, samplesFor(original, flags.inputs, flags.seqLen, flags.seed + SEED_STREAM.verify, 1, dims), { runtime: flags.runtime, thresholds: thresholdsOf(flags), metric: flags.metric });
        p.stage('running both models');
        try {
          return await verifyOn(flags.dim);
        } catch (e) {
          const failed = failedOn(optimizedPath, e, flags.inputs === undefined ? { generated: true, seqLen: flags.seqLen } : { generated: false }, '--inputs', [originalPath]);
          // generated inputs with a default cache: a model that takes cached tokens only with one new token
          // (onnxruntime-genai's mask subgraph) runs on an empty cache, the first call of every generation
          const empty = flags.inputs === undefined ? emptyCacheDims(original, flags.dim) : undefined;
          if (empty === undefined) throw failed;
          try {
            const report = await verifyOn(empty);
            printError(`note: the models failed on generated inputs with cached tokens (${firstLine(e)}); verified on an empty cache instead (${Object.entries(empty).filter(([name]) => !(name in (flags.dim ?? {}))).map(([name]) => `--dim ${name}=0`).join(' ')})`);
            return report;
          } catch {
            throw failed;
          }
        }
      });
      if (flags.json) {
        printJson(report);
      } else {
        const certified =
          report.certified === null
            ? `no certificate in the model: judged against tolerance ${report.thresholds.tolerance} x each output's scale`
            : `stated max error per site ${fmt(report.certified)}: exact and guarded sites hold it on every input, statistical ones on their calibration data`;
        printResult(
          `${optimizedPath} vs ${originalPath} (${certified}):\n${report.outputs.map(formatOutput).join('\n')}\n` +
            `  time: original ${report.msOriginal.toFixed(1)} ms, optimized ${report.msOptimized.toFixed(1)} ms` +
            formatFallback(report.guardFallback),
        );
      }
      for (const unused of unusedThresholds(report)) printError(`note: ${unused} judged no output (no output has that measure)`);
      if (!report.passed) {
        throw new CliError(`verification failed:\n  ${report.failures.join('\n  ')}`, ExitCode.verificationFailed);
      }
    });
}

/** The first line of an error's message. */
const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
