// attnopt codegen MODEL --target wgsl|cpu -o DIR: the kernels of every attention site, after the same choices
// optimize makes (costed for the kernel's target), and a manifest saying what each kernel computes. DIR is
// written atomically: on any failure nothing is left behind.

import { type Command, Option } from 'commander';
import { compile, type CompileTarget, modelFiles, type DecideResult, type KernelManifestEntry, type Node } from '@attnopt/core';
import { decideOrFail, DECIDE_STAGES, requireSites } from './decide.js';
import { CliError, ExitCode } from './exit-codes.js';
import { loadModelOrFail } from './load.js';
import { addDecisionOptions, type DecisionFlags } from './options.js';
import { checkOutputDir, GENERATOR, MANIFEST, writeDirAtomically } from './output-dir.js';
import { checkNotInside } from './output-paths.js';
import { printJson, printResult } from './print.js';
import { withProgress } from './progress.js';
import { holdingSignals } from './signals.js';

interface CodegenFlags extends DecisionFlags {
  target: CompileTarget;
  output: string;
  json?: boolean;
}

/** The cost model that ranks forms for each kernel target. */
const COST_MODEL: Record<CompileTarget, string> = { wgsl: 'webgpu', cpu: 'attnopt-cpu' };

export interface CodegenManifest {
  /** Marks the folder as attnopt's output: a later codegen may replace it, deleting only `files`. */
  generator: typeof GENERATOR;
  /** Every file attnopt wrote in the folder beside this manifest. */
  files: string[];
  model: string;
  target: CompileTarget;
  costModel: string;
  maxError: number;
  seqLen: number;
  kernels: (KernelManifestEntry & {
    exact: boolean;
    bound: number;
    measuredError: number | null;
    /** For a kernel of one head group of a site split by heads: which query and key/value heads of the site it computes. */
    group?: { site: string; heads: readonly number[]; kvHeads: readonly number[] };
  })[];
  /** Sites without a kernel, and why. */
  skipped: { site: string; spec: string; reason: string }[];
}

function generate(modelPath: string, flags: CodegenFlags, result: DecideResult): { manifest: CodegenManifest; files: Map<string, string | Uint8Array> } {
  const files = new Map<string, string | Uint8Array>();
  const manifest: CodegenManifest = {
    generator: GENERATOR,
    files: [],
    model: modelPath,
    target: flags.target,
    costModel: result.target,
    maxError: result.budget,
    seqLen: result.seqLen,
    kernels: [],
    skipped: [],
  };
  for (const plan of result.sites) {
    // a site split into head groups gets one kernel per group, each with its own spec
    const units: readonly { id: string; node: Node; chosen: string; exact: boolean; bound: number; measuredError: number | null; heads?: readonly number[]; kvHeads?: readonly number[] }[] =
      plan.groups ?? [{ id: plan.id, node: plan.node, chosen: plan.chosen, exact: plan.exact, bound: plan.bound, measuredError: plan.measuredError }];
    for (const unit of units) {
      let kernel;
      try {
        kernel = compile(unit, { target: flags.target });
      } catch (e) {
        manifest.skipped.push({ site: unit.id, spec: unit.chosen, reason: (e as Error).message });
        continue;
      }
      for (const f of kernel.files) files.set(f.name, f.contents);
      const group = unit.heads !== undefined && unit.kvHeads !== undefined ? { group: { site: plan.id, heads: unit.heads, kvHeads: unit.kvHeads } } : {};
      // a guarded unit whose guarded kernel does not apply gets its exact baseline: error 0
      const judged = kernel.manifest.guardedAsBaseline === undefined ? { exact: unit.exact, bound: unit.bound, measuredError: unit.measuredError } : { exact: true, bound: 0, measuredError: 0 };
      manifest.kernels.push({ ...kernel.manifest, ...judged, ...group });
    }
  }
  if (manifest.kernels.length === 0) {
    throw new CliError(
      `${modelPath}: no kernel could be generated for --target ${flags.target}: ${manifest.skipped.map((s) => s.reason).join('; ')}`,
      ExitCode.badInput,
    );
  }
  manifest.files = [...files.keys()];
  files.set(MANIFEST, `${JSON.stringify(manifest, null, 2)}\n`);
  return { manifest, files };
}

export function formatCodegen(dir: string, m: CodegenManifest): string {
  const lines = [`${m.model}: ${m.kernels.length} ${m.target.toUpperCase()} kernel${m.kernels.length === 1 ? '' : 's'} -> ${dir}`];
  for (const k of m.kernels) {
    lines.push(`  ${k.site}  ${k.spec}  [${k.exact ? 'exact' : `bound ${k.bound.toPrecision(3)}`}]  ${k.files.join(', ')}`);
    if (k.guard !== undefined) lines.push(`    guarded: error <= ${k.guard.budget} against ${k.guard.baseline} on every input; rows whose certificate exceeds it are recomputed at run time`);
    if (k.guardedAsBaseline !== undefined) lines.push(`    note: ${k.guardedAsBaseline}`);
  }
  for (const s of m.skipped) lines.push(`  ${s.site}  ${s.spec}  no kernel: ${s.reason}`);
  lines.push(`  manifest: ${dir}/${MANIFEST}`);
  return lines.join('\n');
}

export function registerCodegen(program: Command): void {
  const command = program
    .command('codegen')
    .description('generate a kernel per attention site (WGSL for WebGPU, or WebAssembly/JavaScript for the CPU) and a manifest of what each computes')
    .argument('<model>', 'the ONNX model file')
    .addOption(new Option('--target <target>', 'kernel target').choices(['wgsl', 'cpu']).makeOptionMandatory())
    .requiredOption('-o, --output <dir>', 'the folder to write (new, empty, or an earlier codegen output; written atomically)');
  addDecisionOptions(command, false)
    .option('--json', 'print the manifest: { model, target, costModel, maxError, seqLen, kernels: [{ site, spec, computes, shapes, layout, dtype, bindings, files, ... }], skipped: [{ site, spec, reason }] }')
    .addHelpText(
      'after',
      '\nForms are chosen as optimize chooses them, costed for the target (wgsl: the webgpu cost model, cpu: attnopt-cpu).\n\n' +
        'Examples:\n  $ attnopt codegen model.onnx --target wgsl -o kernels/\n  $ attnopt codegen model.onnx --target cpu -o kernels/ --max-error 0 --json',
    )
    .action(async (modelPath: string, flags: CodegenFlags) => {
      const model = loadModelOrFail(modelPath);
      checkOutputDir(flags.output);
      checkNotInside(flags.output, modelFiles(model));
      const generated = await withProgress('codegen', [...DECIDE_STAGES, 'compile', 'write'], async (p) => {
        const result = await decideOrFail(model, modelPath, flags, COST_MODEL[flags.target], p);
        requireSites(result.sites.length, modelPath, 'compile');
        p.stage('compile');
        const out = generate(modelPath, flags, result);
        p.stage('write');
        await holdingSignals(() => writeDirAtomically(flags.output, out.files));
        return out;
      });
      if (flags.json) printJson(generated.manifest);
      else printResult(formatCodegen(flags.output, generated.manifest));
    });
}
