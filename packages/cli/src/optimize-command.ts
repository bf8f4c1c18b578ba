// attnopt optimize MODEL -o OUT: the whole job, written atomically (no partial file on failure).
// Options are declared in registerOptimize; every output path is checked before any work (checkOutputFiles:
// new or regular files, none the same file as an input or another output); the outputs (the model, then
// anything else a flag asks for) are written in writeOutputs, after every check has passed, with signals
// held until they are in place.

import { rmSync } from 'node:fs';
import { type Command } from 'commander';
import {
  AtomicFile,
  type AttnoptModel,
  buildReport,
  modelFiles,
  OPTIMIZE_STAGES,
  optimize,
  type OptimizeResult,
  type OptimizedSite,
  renderReport,
  writeModel,
} from '@attnopt/core';
import { coreOptions, requireSites } from './decide.js';
import { CliError, ExitCode } from './exit-codes.js';
import { failedOn } from './failure.js';
import { loadModelOrFail } from './load.js';
import { checkRunMemory } from './memory.js';
import { checkOutputFiles, type InputFile, type OutputFile, sideFileOf } from './output-paths.js';
import { addDecisionOptions, budgetAllowsApproximation, checkSeqLen, type DecisionFlags } from './options.js';
import { printError, printJson, printResult } from './print.js';
import { withProgress } from './progress.js';
import { emptyCacheDims, recordCalibration, samplesFor, SEED_STREAM } from './samples.js';
import { holdingSignals } from './signals.js';

interface OptimizeFlags extends DecisionFlags {
  output: string;
  target: string;
  report?: string;
  json?: boolean;
}

/** The command's own first stage, the labels of optimize's passes, then writing (for the progress bar). */
const STAGES = ['calibration inputs', ...OPTIMIZE_STAGES, 'write'];

function writeOptimized(output: string, model: AttnoptModel): void {
  try {
    writeModel(output, model);
  } catch (e) {
    throw new CliError(`${output}: could not write the optimized model: ${(e as Error).message}`, ExitCode.badInput);
  }
}

/** Every file the command writes and reads, checked before any work. */
function checkPaths(modelPath: string, model: AttnoptModel, flags: OptimizeFlags): void {
  const inputs: InputFile[] = modelFiles(model).map((f, k) => ({ path: f, role: k === 0 ? `the model ${modelPath}` : `the model's external data ${f}` }));
  if (inputs.length === 0) inputs.push({ path: modelPath, role: `the model ${modelPath}` });
  const outputs: OutputFile[] = [
    { path: flags.output, role: '-o' },
    { path: sideFileOf(flags.output), role: `the side file of -o (${sideFileOf(flags.output)}, the weights)` },
  ];
  if (flags.report !== undefined) outputs.push({ path: flags.report, role: '--report' });
  checkOutputFiles(outputs, inputs);
}

/** The report written to a temporary file beside its target, flushed; renamed into place by the caller. */
function stageReport(target: string, html: string): AtomicFile {
  let file: AtomicFile | undefined;
  try {
    file = AtomicFile.create(target);
    file.write(new TextEncoder().encode(html));
    file.sync();
    return file;
  } catch (e) {
    file?.abort();
    throw new CliError(`${target}: could not write the report: ${(e as Error).message}`, ExitCode.badInput);
  }
}

/**
 * Everything the command writes, once the optimization (and the report) succeeded: the report goes to a temporary
 * file first, then the model is written atomically, then the report is renamed into place; on any failure
 * neither file is left behind (nor changed, when one existed).
 */
function writeOutputs(flags: OptimizeFlags, result: OptimizeResult, reportHtml: string | undefined): void {
  const report = flags.report !== undefined && reportHtml !== undefined ? stageReport(flags.report, reportHtml) : undefined;
  try {
    writeOptimized(flags.output, result.model);
  } catch (e) {
    report?.abort();
    throw e;
  }
  if (report === undefined) return;
  try {
    report.rename();
  } catch (e) {
    report.abort();
    rmSync(flags.output, { force: true });
    throw new CliError(`${flags.report}: could not write the report: ${(e as Error).message}`, ExitCode.badInput);
  }
}

const fmt = (x: number) => (Number.isFinite(x) ? x.toPrecision(3) : 'n/a');

export function formatSites(sites: readonly OptimizedSite[]): string {
  return sites
    .map((s) => {
      const what = s.exact ? 'exact' : `bound ${fmt(s.bound)}, measured ${fmt(s.measuredError ?? NaN)}`;
      const why = s.reason ? `  (${s.reason})` : '';
      const kept = s.restored ? '  [kept as the model wrote it]' : '';
      const decode = s.decodeStep ? `  [one decode step predicted ${(s.decodeStep.rewrittenSeconds / s.decodeStep.asWrittenSeconds).toFixed(2)}x slower than as written: explain says more]` : '';
      return `  ${s.id}  ${s.chosen}  [${what}]  flops ${fmt(s.flopsBefore)} -> ${fmt(s.flopsAfter)}${kept}${decode}${why}`;
    })
    .join('\n');
}

export function registerOptimize(program: Command): void {
  const command = program
    .command('optimize')
    .description('rewrite each attention site into the cheapest form whose guaranteed error (exact, or guarded at run time) fits the budget')
    .argument('<model>', 'the ONNX model file')
    .requiredOption('-o, --output <file>', 'where to write the optimized model (written atomically)')
    .option('--report <file>', 'also write a self-contained HTML report: per-site table, attention heatmaps, cost and trade-off curves');
  addDecisionOptions(command, true)
    .option('--json', 'print { sites: [{ id, chosen, exact, bound, measuredError, flopsBefore, flopsAfter, reason?, measuredTime?, decodeStep?, decodeRoute?, groups?, restored? }], relative?: { maxRelError, scales, budgets }, output }')
    .addHelpText(
      'after',
      '\nExamples:\n  $ attnopt optimize model.onnx -o model.opt.onnx\n  $ attnopt optimize model.onnx -o model.opt.onnx --report report.html\n' +
        '  $ attnopt optimize model.onnx -o exact.onnx --max-error 0 --json',
    )
    .action(async (modelPath: string, flags: OptimizeFlags) => {
      const model = loadModelOrFail(modelPath);
      checkPaths(modelPath, model, flags);
      if (budgetAllowsApproximation(flags) && flags.calibration === undefined) checkRunMemory(model, modelPath, flags.seqLen, flags.allowMemory);
      checkSeqLen(flags.seqLen);
      const stages = flags.report !== undefined ? [...STAGES.slice(0, -1), 'report', 'write'] : STAGES;
      const result = await withProgress('optimize', stages, async (p) => {
        p.stage('calibration inputs');
        const seed = flags.seed + SEED_STREAM.calibration;
        const samples = budgetAllowsApproximation(flags) ? samplesFor(model, flags.calibration, flags.seqLen, seed, 2, flags.dim) : [];
        let optimized: OptimizeResult;
        try {
          optimized = await optimize(model, { ...coreOptions(flags, samples, flags.target), onStage: (s) => p.stage(s), onProgress: (d) => p.detail(d) });
        } catch (e) {
          throw failedOn(modelPath, e, flags.calibration === undefined ? { generated: true, seqLen: flags.seqLen } : { generated: false });
        }
        requireSites(optimized.sites.length, modelPath, 'optimize');
        let html: string | undefined;
        if (flags.report !== undefined) {
          p.stage('report');
          const reportOn = async (dims: Readonly<Record<string, number>> | undefined) =>
            buildReport(loadModelOrFail(modelPath), {
              maxError: optimized.relative ? Object.values(optimized.relative.budgets).reduce((x, y) => Math.max(x, y), 0) : flags.maxError,
              samples,
              seqLen: flags.seqLen,
              seed: flags.seed,
              target: flags.target,
              optimized,
              runtime: flags.runtime,
              ...(flags.measure === false ? { measure: false } : {}),
              ...(flags.decodeSteps !== undefined ? { decodeSteps: flags.decodeSteps } : {}),
              // held out: a generated input of its own seed stream, never one of the calibration inputs
              verifySamples: [...samplesFor(model, undefined, flags.seqLen, flags.seed + SEED_STREAM.heldOut, 1, dims)],
              onProgress: (s) => p.stage(`report: ${s}`),
            });
          try {
            html = renderReport(await reportOn(flags.dim));
          } catch (e) {
            const failed = new CliError(`${modelPath}: could not build the report: ${(e as Error).message}`, ExitCode.badInput);
            // the held-out input is generated: a model that takes cached tokens only with one new token
            // (onnxruntime-genai's) runs on an empty cache, as verify does
            const empty = emptyCacheDims(model, flags.dim);
            if (empty === undefined) throw failed;
            try {
              html = renderReport(await reportOn(empty));
              printError(`note: the report's held-out input with cached tokens failed (${(e as Error).message.split('\n')[0]}); it was run on an empty cache instead`);
            } catch {
              throw failed;
            }
          }
        }
        p.stage('write');
        if (budgetAllowsApproximation(flags)) recordCalibration(optimized.model, flags.calibration);
        await holdingSignals(() => writeOutputs(flags, optimized, html));
        return optimized;
      });
      const report = flags.report !== undefined ? { report: flags.report } : {};
      if (flags.json) printJson({ sites: result.sites, ...(result.relative ? { relative: result.relative } : {}), output: flags.output, ...report });
      else {
        const also = flags.report !== undefined ? `\n  report: ${flags.report}` : '';
        printResult(`${modelPath}: ${result.sites.length} site${result.sites.length === 1 ? '' : 's'} -> ${flags.output}\n${formatSites(result.sites)}${also}`);
      }
    });
}
