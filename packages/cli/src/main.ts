// The attnopt command line: parse, dispatch, and map failures to the documented exit codes.

import { Command, CommanderError } from 'commander';
import { CliError, ExitCode } from './exit-codes.js';
import { registerInspect } from './inspect-command.js';
import { registerOptimize } from './optimize-command.js';
import { registerVerify } from './verify-command.js';

export function buildProgram(): Command {
  const program = new Command('attnopt')
    .description('a compiler for attention: find attention sites in ONNX models and make them cheaper within an error budget')
    .version('0.0.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 usage error, 2 bad input (missing, unreadable or invalid model), 3 verification failed.',
    );
  registerInspect(program);
  registerOptimize(program);
  registerVerify(program);
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
      process.stderr.write(`attnopt: ${e.message}\n`);
      return e.exitCode;
    }
    process.stderr.write(`attnopt: internal error: ${(e as Error).stack ?? String(e)}\n`);
    return 70;
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'))) {
  process.exitCode = await run(process.argv.slice(2));
}
