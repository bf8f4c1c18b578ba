// attnopt optimize MODEL -o OUT: the whole job, written atomically (no partial file on failure).
// Options are declared in registerOptimize; the outputs (the model, then anything else a flag asks for) are
// written in writeOutputs, after every check has passed.

import { existsSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { type Command } from 'commander';
import { AtomicFile, type AttnoptModel, buildReport, OPTIMIZE_STAGES, optimize, type OptimizeResult, type OptimizedSite, renderReport, writeOnnx } from '@attnopt/core';
import { requireSites } from './decide.js';
import { CliError, ExitCode } from './exit-codes.js';
import { failedOn } from './failure.js';
import { loadModelOrFail } from './load.js';
import { addDecisionOptions, type DecisionFlags } from './options.js';
import { withProgress } from './progress.js';
import { samplesFor } from './samples.js';

interface OptimizeFlags extends DecisionFlags {
  output: string;
  target: string;
  report?: string;
  json?: boolean;
}

/** Stage names of core's optimize, then the command's own (for the progress bar). */
const STAGES = ['calibration inputs', ...OPTIMIZE_STAGES, 'write'];

function writeOptimized(output: string, model: AttnoptModel): void {
  try {
    writeOnnx(output, model);
  } catch (e) {
    throw new CliError(`${output}: could not write the optimized model: ${(e as Error).message}`, ExitCode.badInput);
  }
}

/** The report's file, checked before any work: a new or replaceable file in an existing folder, not the model's. */
function checkReportPath(report: string, modelPath: string, output: string): void {
  const at = resolve(report);
  if (at === resolve(output) || at === resolve(modelPath)) {
    throw new CliError(`${report}: --report must name a file other than the model and the optimized model`, ExitCode.usage);
  }
  if (!existsSync(dirname(at)) || !statSync(dirname(at)).isDirectory()) {
    throw new CliError(`${report}: the folder ${dirname(report)} does not exist`, ExitCode.badInput);
  }
  if (existsSync(at) && !statSync(at).isFile()) throw new CliError(`${report}: exists and is not a file`, ExitCode.badInput);
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
      return `  ${s.id}  ${s.chosen}  [${what}]  flops ${fmt(s.flopsBefore)} -> ${fmt(s.flopsAfter)}${kept}${why}`;
    })
    .join('\n');
}

export function registerOptimize(program: Command): void {
  const command = program
    .command('optimize')
    .description('rewrite each attention site into the cheapest form whose certified error fits the budget')
    .argument('<model>', 'the ONNX model file')
    .requiredOption('-o, --output <file>', 'where to write the optimized model (written atomically)')
    .option('--report <file>', 'also write a self-contained HTML report: per-site table, attention heatmaps, cost and trade-off curves');
  addDecisionOptions(command, true)
    .option('--json', 'print { sites: [{ id, chosen, exact, bound, measuredError, flopsBefore, flopsAfter, reason?, groups?, restored? }], output }')
    .addHelpText(
      'after',
      '\nExamples:\n  $ attnopt optimize model.onnx -o model.opt.onnx\n  $ attnopt optimize model.onnx -o model.opt.onnx --report report.html\n' +
        '  $ attnopt optimize model.onnx -o exact.onnx --max-error 0 --json',
    )
    .action(async (modelPath: string, flags: OptimizeFlags) => {
      const model = loadModelOrFail(modelPath);
      if (flags.report !== undefined) checkReportPath(flags.report, modelPath, flags.output);
      const stages = flags.report !== undefined ? [...STAGES.slice(0, -1), 'report', 'write'] : STAGES;
      const result = await withProgress('optimize', stages, async (p) => {
        p.stage('calibration inputs');
        const samples = flags.maxError > 0 ? samplesFor(model, flags.calibration, flags.seqLen, flags.seed, 2, flags.dim) : [];
        let optimized: OptimizeResult;
        try {
          optimized = await optimize(model, {
            maxError: flags.maxError,
            samples,
            seqLen: flags.seqLen,
            seed: flags.seed,
            target: flags.target,
            runtime: flags.runtime,
            onStage: (s) => p.stage(s),
          });
        } catch (e) {
          throw failedOn(modelPath, e, flags.calibration === undefined ? { generated: true, seqLen: flags.seqLen } : { generated: false });
        }
        requireSites(optimized.sites.length, modelPath, 'optimize');
        let html: string | undefined;
        if (flags.report !== undefined) {
          p.stage('report');
          try {
            const data = await buildReport(loadModelOrFail(modelPath), {
              maxError: flags.maxError,
              samples,
              seqLen: flags.seqLen,
              seed: flags.seed,
              target: flags.target,
              optimized,
              runtime: flags.runtime,
              onProgress: (s) => p.stage(`report: ${s}`),
            });
            html = renderReport(data);
          } catch (e) {
            throw new CliError(`${modelPath}: could not build the report: ${(e as Error).message}`, ExitCode.badInput);
          }
        }
        p.stage('write');
        writeOutputs(flags, optimized, html);
        return optimized;
      });
      const report = flags.report !== undefined ? { report: flags.report } : {};
      if (flags.json) process.stdout.write(`${JSON.stringify({ sites: result.sites, output: flags.output, ...report }, null, 2)}\n`);
      else {
        const also = flags.report !== undefined ? `\n  report: ${flags.report}` : '';
        process.stdout.write(`${modelPath}: ${result.sites.length} site${result.sites.length === 1 ? '' : 's'} -> ${flags.output}\n${formatSites(result.sites)}${also}\n`);
      }
    });
}
