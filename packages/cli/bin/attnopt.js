#!/usr/bin/env node
// The attnopt command, in this one process. Installed (no TypeScript sources beside it), it runs the built
// JavaScript with plain node: dist/attnopt.js, the command and the attnopt packages in one module (npm run build).
// In the repository, where src/ is present, tsx compiles the sources as they load and a resolve hook adds the
// `@attnopt/source` condition, so development needs no build step. No child process: a signal ends the command
// itself (exit 128 + signal) and nothing of it runs on after its caller saw it end.
import { existsSync } from 'node:fs';
import { register } from 'node:module';

process.env.ORT_DISABLE_TELEMETRY ??= '1';
// a failure outside the command's own handling (a callback that throws later) is a bug: exit 70, never 1 (usage)
// (its text escaped as src/print.ts escapes every message: this runs before, or without, the sources)
const escaped = (text) => String(text).replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
const internal = (e) => {
  process.stderr.write(`attnopt: internal error: ${escaped(e?.stack ?? e)}\n`);
  process.exit(70);
};
process.on('uncaughtException', internal);
process.on('unhandledRejection', internal);

/** The command's entry module: the sources under tsx in the repository, else the built JavaScript. */
async function load() {
  if (!existsSync(new URL('../src/main.ts', import.meta.url))) return import('../dist/attnopt.js');
  const { register: registerTsx } = await import('tsx/esm/api');
  registerTsx();
  register('./source-condition.mjs', import.meta.url); // registered last, so it runs first and tsx sees the condition
  return import('../src/main.ts');
}

let code;
try {
  const { run } = await load();
  code = await run(process.argv.slice(2));
} catch (e) {
  // the command's own failures are mapped inside run(); anything here is a failure to load it: internal
  process.stderr.write(`attnopt: internal error: could not start: ${escaped(e?.stack ?? e)}\n`);
  code = 70;
}
process.exitCode = code;
