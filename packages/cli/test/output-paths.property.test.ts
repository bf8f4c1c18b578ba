// For any layout of the output folder (files, folders, symbolic links and FIFOs where the outputs go, links
// to the model and its weights) and any spelling of -o and --report (the model's own files among them):
// optimize either succeeds, writing regular files at exactly the paths it was told, or fails with exit 1 or 2
// changing nothing; in both cases no file the user did not name as an output changes (every entry of the
// folder hashed before and after).

import { execFileSync } from 'node:child_process';
import { copyFileSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, expect, test } from 'vitest';
import { snapshot } from './folder-snapshot.js';
import { attnoptInProcess as attnopt } from './run-captured.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const tinyBert = resolve(here, '../../../examples/tiny-bert');
const scratch = mkdtempSync(join(tmpdir(), 'attnopt-layouts-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** What may already stand at a name where an output could go. */
const KINDS = ['absent', 'file', 'folder', 'fifo', 'link to model', 'link to weights', 'link to a file', 'dangling link'] as const;
type Kind = (typeof KINDS)[number];
const SLOTS = ['out.onnx', 'out.onnx.data', 'r.html', 'r.html.data'] as const;

/** Names -o and --report may be given: the slots, the model's own files, spelled plainly or roundabout. */
const TARGETS = ['out.onnx', 'out.onnx.data', 'r.html', 'model.onnx', 'model.onnx.data', './model.onnx', 'sub/../model.onnx.data', 'sub/../out.onnx', 'sub', 'missing/out.onnx'];

function make(dir: string, name: string, kind: Kind): void {
  const at = join(dir, name);
  if (kind === 'file') writeFileSync(at, `user's ${name}\n`);
  else if (kind === 'folder') mkdirSync(at);
  else if (kind === 'fifo') execFileSync('mkfifo', [at]);
  else if (kind === 'link to model') symlinkSync(join(dir, 'model.onnx'), at);
  else if (kind === 'link to weights') symlinkSync('model.onnx.data', at);
  else if (kind === 'link to a file') symlinkSync('precious.txt', at);
  else if (kind === 'dangling link') symlinkSync('nowhere', at);
}

let run = 0;
const outcomes = new Map<number, number>();

test('no file the user did not name as an output changes, whatever the layout', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.record({ kinds: fc.tuple(...SLOTS.map(() => fc.constantFrom(...KINDS))), output: fc.constantFrom(...TARGETS), report: fc.option(fc.constantFrom(...TARGETS), { freq: 3 }) }),
      async ({ kinds, output, report }) => {
        const dir = join(scratch, `layout-${run++}`);
        mkdirSync(dir);
        mkdirSync(join(dir, 'sub'));
        for (const f of ['model.onnx', 'model.onnx.data']) copyFileSync(join(tinyBert, f), join(dir, f));
        writeFileSync(join(dir, 'precious.txt'), 'precious\n');
        SLOTS.forEach((name, k) => make(dir, name, kinds[k]!));
        const before = snapshot(dir);
        const args = ['optimize', join(dir, 'model.onnx'), '-o', join(dir, output), '--max-error', '0', ...(report !== null ? ['--report', join(dir, report)] : [])];
        const r = await attnopt(...args);
        const after = snapshot(dir);
        outcomes.set(r.code, (outcomes.get(r.code) ?? 0) + 1);
        if (r.code !== 0) {
          expect([1, 2]).toContain(r.code);
          expect(after).toEqual(before); // a refusal changes nothing at all
          return;
        }
        // success: only the named outputs (the model, its side file, the report) changed, each a regular file now
        const named = [output, `${output}.data`, ...(report !== null ? [report] : [])].map((p) => relative(dir, resolve(dir, p)));
        for (const p of named.slice(0, 1).concat(report !== null ? [named[2]!] : [])) expect(lstatSync(join(dir, p)).isFile()).toBe(true);
        const untouched = (s: Record<string, string>) => Object.fromEntries(Object.entries(s).filter(([k]) => !named.includes(k)));
        expect(untouched(after)).toEqual(untouched(before));
        expect(Object.keys(after).filter((k) => !(k in before) && !named.includes(k))).toEqual([]); // no stray temp files
      },
    ),
    { numRuns: 40 },
  );
  // the layouts reached both sides: writes that succeeded and refusals of each kind
  expect([...outcomes.keys()].sort()).toEqual([0, 1, 2]);
}, 120_000);
