#!/usr/bin/env node
// The attnopt command: runs src/main.ts with the workspace's TypeScript sources (tsx, @attnopt/source condition).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const tsx = import.meta.resolve('tsx');
const result = spawnSync(
  process.execPath,
  ['--conditions=@attnopt/source', '--import', tsx, main, ...process.argv.slice(2)],
  { stdio: 'inherit', env: { ORT_DISABLE_TELEMETRY: '1', ...process.env } },
);
if (result.error) {
  console.error(`attnopt: could not start: ${result.error.message}`);
  process.exit(1);
}
process.exit(result.status ?? 1);
