// A killed optimize: the command runs in one process (bin/attnopt.js), so a signal ends it. Neither OUT nor a
// temporary file is left, the caller sees a death by that signal (a shell's 128 + signal), and no process of
// attnopt survives it to write OUT later.

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel } from '@attnopt/core';
import { afterAll, expect, test } from 'vitest';

const here = fileURLToPath(new URL('.', import.meta.url));
const bin = resolve(here, '../bin/attnopt.js');
// calibration at n = 1024 takes several seconds: long enough to be killed in the middle
const model = resolve(here, '../../../../shared/fixtures/onnx/torch-exports/mha_self_causal_op17_dyn.onnx');
const scratch = mkdtempSync(join(tmpdir(), 'attnopt-kill-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Pids of live processes whose command line mentions `text` (read from /proc). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

test.each(['SIGTERM', 'SIGKILL', 'SIGINT'] as const)('%s during optimize: no OUT, no temporary file, no attnopt process left', async (signal) => {
  const dir = mkdtempSync(join(scratch, `${signal}-`));
  const out = join(dir, 'out.onnx');
  const child = spawn(process.execPath, [bin, 'optimize', model, '-o', out, '--seq-len', '1024'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += String(d)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.on('exit', (code, sig) => done({ code, signal: sig })));
  await sleep(4000);
  expect(child.exitCode).toBeNull(); // still working: the kill lands in the middle of the run
  expect(processesMentioning(out)).toContain(child.pid);
  child.kill(signal);
  const ended = await exited;
  expect(ended).toEqual({ code: null, signal }); // a death by the signal: a shell reports 128 + its number
  expect(stderr).toBe('');
  await sleep(1000); // anything that survived would now be writing
  expect(readdirSync(dir)).toEqual([]);
  expect(processesMentioning(out)).toEqual([]);
}, 60_000);

test('a crash outside the command\'s own handling (an exception thrown later by a callback): exit 70, never 1', async () => {
  const dir = mkdtempSync(join(scratch, 'crash-'));
  const out = join(dir, 'out.onnx');
  // a preloaded module whose timer throws while optimize is calibrating: what a bug in a callback looks like
  const bomb = `data:text/javascript,setTimeout(() => { throw new Error('a bug in a callback'); }, 3000);`;
  const child = spawn(process.execPath, ['--import', bomb, bin, 'optimize', model, '-o', out, '--seq-len', '1024'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += String(d)));
  const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.on('exit', (code, sig) => done({ code, signal: sig })));
  expect(ended).toEqual({ code: 70, signal: null });
  expect(stderr).toMatch(/^attnopt: internal error: Error: a bug in a callback/);
  // A timer cannot interrupt synchronous work: the throw lands at the next turn of the event loop, which may come
  // after OUT was renamed into place. Never a temporary file, and never a partial OUT: if OUT is there, it is whole.
  const left = readdirSync(dir);
  expect(left.filter((f) => f !== 'out.onnx')).toEqual([]);
  if (left.includes('out.onnx')) expect(loadModel(out).graph.nodes.length).toBeGreaterThan(0);
}, 60_000);
