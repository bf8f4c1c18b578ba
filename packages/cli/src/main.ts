// The attnopt command line: parse, dispatch, and map failures to the documented exit codes.

import { Command, CommanderError } from 'commander';
import { OnnxImportError } from '@attnopt/core';
import { CliError, ExitCode } from './exit-codes.js';
import { registerInspect } from './inspect-command.js';
import { registerOptimize } from './optimize-command.js';
import { registerVerify } from './verify-command.js';
import { registerCodegen } from './codegen-command.js';
import { registerExplain } from './explain-command.js';
import { printable, printError } from './print.js';

export function buildProgram(): Command {
  const program = new Command('attnopt')
    .description('a compiler for attention: find attention sites in ONNX models and make them cheaper within an error budget')
    .version('0.0.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(printable(s)) })
    .addHelpText(
      'after',
      '\nExamples:\n  $ attnopt inspect model.onnx\n  $ attnopt explain model.onnx\n  $ attnopt optimize model.onnx -o model.opt.onnx && attnopt verify model.onnx model.opt.onnx\n  $ attnopt codegen model.onnx --target wgsl -o kernels/\n' +
        '\nExit codes: 0 ok, 1 usage error, 2 bad input (missing, unreadable or invalid model or inputs, no attention to work on), ' +
        '3 verification failed, 70 internal error.',
    );
  registerInspect(program);
  registerOptimize(program);
  registerVerify(program);
  registerCodegen(program);
  registerExplain(program);
  return program;
}

export async function run(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv as string[], { from: 'user' });
    return ExitCode.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version are successes; everything else commander reports is a usage error
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help'
        ? ExitCode.ok
        : ExitCode.usage;
    }
    if (e instanceof CliError) {
      printError(e.message);
      return e.exitCode;
    }
    // a model found invalid after loading (a local function that calls itself, written out to be read): bad input
    if (e instanceof OnnxImportError) {
      printError(e.message);
      return ExitCode.badInput;
    }
    printError(`internal error: ${(e as Error).stack ?? String(e)}`);
    return ExitCode.internal;
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'))) {
  process.exitCode = await run(process.argv.slice(2));
}
