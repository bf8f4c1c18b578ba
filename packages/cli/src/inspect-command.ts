// attnopt inspect MODEL [--json]: every attention site of a model, one line each (or one JSON object).

import { type Command } from 'commander';
import { inspectModel, type InspectReport } from '@attnopt/core';
import { loadModelOrFail } from './load.js';

export function formatInspect(report: InspectReport): string {
  const lines = [`${report.model}: ${report.sites.length} attention site${report.sites.length === 1 ? '' : 's'}`];
  for (const s of report.sites) {
    const heads = s.kvHeads === s.heads ? `heads=${s.heads}` : `heads=${s.heads} kvHeads=${s.kvHeads}`;
    lines.push(
      `  ${s.id}  ${heads} headDim=${s.headDim} scale=${Number(s.scale.toPrecision(6))} mask=${s.mask}` +
        (s.bias === null ? '' : ` bias=${s.bias}`) +
        `  [${s.onnxNodes.length} ONNX node${s.onnxNodes.length === 1 ? '' : 's'}: ${abbreviate(s.onnxNodes)}]`,
    );
  }
  return lines.join('\n');
}

function abbreviate(names: readonly string[]): string {
  return names.length <= 3 ? names.join(', ') : `${names.slice(0, 2).join(', ')}, ... ${names[names.length - 1]}`;
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('find every attention site of an ONNX model: heads, head size, scale and mask')
    .argument('<model>', 'the ONNX model file (external data is read from beside it)')
    .option('--json', 'print one JSON object: { model, sites: [{ id, heads, kvHeads, headDim, scale, mask, onnxNodes, bias }] }')
    .addHelpText('after', '\nExamples:\n  $ attnopt inspect model.onnx\n  $ attnopt inspect model.onnx --json | jq .sites[0]')
    .action((modelPath: string, options: { json?: boolean }) => {
      const model = loadModelOrFail(modelPath);
      const report = inspectModel(model);
      process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatInspect(report)}\n`);
    });
}
