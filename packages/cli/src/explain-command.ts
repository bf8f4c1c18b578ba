// attnopt explain MODEL: why each attention site was or was not rewritten, in words: what recognition lifted,
// what the mask analysis proved, and why sparsify chose a form or kept the site. Nothing is written.

import { type Command } from 'commander';
import { type Explanation, explainDecisions } from '@attnopt/core';
import { decideOrFail, DECIDE_STAGES } from './decide.js';
import { loadModelOrFail } from './load.js';
import { addDecisionOptions, type DecisionFlags } from './options.js';
import { printJson, printResult } from './print.js';
import { withProgress } from './progress.js';

interface ExplainFlags extends DecisionFlags {
  json?: boolean;
}

export function formatExplanation(model: string, e: Explanation): string {
  const n = e.sites.length;
  if (n === 0) return `${model}: no attention site found: nothing to rewrite`;
  const lines = [`${model}: ${n} attention site${n === 1 ? '' : 's'} (max error ${e.budget}, cost model ${e.target}, n=${e.seqLen})`];
  for (const s of e.sites) {
    const verdict = !s.rewritten
      ? `not rewritten: computes ${s.chosen}, as recognized`
      : `rewritten ${s.recognized} -> ${s.chosen} (${s.exact ? 'exact' : 'within the budget'})`;
    lines.push(`${s.id}: ${verdict}`);
    for (const w of s.why) lines.push(`  - ${w}`);
    if (s.tried.length > 0) {
      const qualified = s.tried.filter((t) => t.includes(': qualifies')).length;
      lines.push(`  - ${s.tried.length} forms tried, ${qualified} within the budget (attnopt inspect --decisions lists each)`);
    }
  }
  return lines.join('\n');
}

export function registerExplain(program: Command): void {
  const command = program
    .command('explain')
    .description('say, in words, why each attention site would or would not be rewritten by optimize (writes nothing)')
    .argument('<model>', 'the ONNX model file');
  addDecisionOptions(command, true)
    .option('--json', 'print { model, budget, target, seqLen, sites: [{ id, node, onnxNodes, rewritten, exact, recognized, proven, chosen, why: [string], tried: [string] }] }')
    .addHelpText('after', '\nExamples:\n  $ attnopt explain model.onnx\n  $ attnopt explain model.onnx --seq-len 2048 --target attnopt-cpu --max-error 0.05')
    .action(async (modelPath: string, flags: ExplainFlags) => {
      const model = loadModelOrFail(modelPath);
      const result = await withProgress('explain', DECIDE_STAGES, (p) => decideOrFail(model, modelPath, flags, flags.target ?? 'onnxruntime-cpu', p));
      const explanation = explainDecisions(result);
      if (flags.json) printJson({ model: modelPath, ...explanation });
      else printResult(formatExplanation(modelPath, explanation));
    });
}
