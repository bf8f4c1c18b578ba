// attnopt optimize --report as a user runs it: the HTML file opens in a real headless browser (Debian's
// chromium through playwright-core) without errors or requests, and every figure of its per-site table is
// the number `--json` printed for that site in the same run. Bad report paths: clear message, documented exit
// code, nothing written.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const here = fileURLToPath(new URL('.', import.meta.url));
const bin = resolve(here, '../bin/attnopt.js');
const fixtures = resolve(here, '../../../../shared/fixtures/onnx');
const MODELS = {
  'tiny-bert': resolve(here, '../../../examples/tiny-bert/model.onnx'),
  'gpt2 (causal proven)': join(fixtures, 'torch-exports/gpt2_causal_attn_where_op17_dyn.onnx'),
};
const CHROMIUM = '/usr/bin/chromium';
const FIELDS = ['id', 'chosen', 'exact', 'bound', 'measuredError', 'flopsBefore', 'flopsAfter'] as const;
const scratch = mkdtempSync(join(tmpdir(), 'attnopt-report-'));
let browser: Browser | undefined;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (scripts/install-chromium.sh); the report tests need it`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}, 600_000);
afterAll(async () => {
  await browser?.close();
  rmSync(scratch, { recursive: true, force: true });
});

function attnopt(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.each(Object.entries(MODELS))('attnopt optimize %s --report', (name, model) => {
  test('writes the model and a report whose table equals the --json sites', async () => {
    const dir = join(scratch, name.replace(/\W+/g, '-'));
    mkdirSync(dir);
    const out = join(dir, 'opt.onnx');
    const report = join(dir, 'report.html');
    const r = attnopt('optimize', model, '-o', out, '--report', report, '--seq-len', '32', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout) as { sites: Record<string, unknown>[]; output: string; report: string };
    expect(json.report).toBe(report);
    expect(existsSync(out)).toBe(true);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);

    const page = await browser!.newPage();
    const problems: string[] = [];
    page.on('console', (m) => (m.type() === 'error' || m.type() === 'warning') && problems.push(m.text()));
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('request', (q) => !q.url().startsWith('file:') && problems.push(`request ${q.url()}`));
    await page.goto(`file://${report}`, { waitUntil: 'load' });
    const cells = (await page.evaluate(
      `[...document.querySelectorAll('#site-table td[data-field]')].map((td) => ({ site: td.getAttribute('data-site'), field: td.getAttribute('data-field'), value: td.getAttribute('data-value') }))`,
    )) as { site: string; field: string; value: string }[];
    await page.close();
    expect(problems).toEqual([]);
    expect(json.sites.length).toBeGreaterThan(0);
    for (const site of json.sites) {
      for (const field of FIELDS) {
        const cell = cells.find((c) => c.site === site.id && c.field === field);
        expect(cell, `${String(site.id)}.${field}`).toBeDefined();
        const want = site[field];
        if (typeof want === 'number' || want === null) expect(cell!.value === 'null' ? null : Number(cell!.value), `${String(site.id)}.${field}`).toBe(want);
        else expect(cell!.value, `${String(site.id)}.${field}`).toBe(String(want));
      }
    }
    // the report is one self-contained file: no script or stylesheet is loaded from elsewhere
    expect(readFileSync(report, 'utf8')).not.toMatch(/<(script|link)[^>]+(src|href)=["']?https?:/);
  }, 600_000);
});

describe('attnopt optimize --report: bad paths', () => {
  test('a report in a folder that does not exist: exit 2, nothing written', () => {
    const out = join(scratch, 'bad1.onnx');
    const r = attnopt('optimize', MODELS['tiny-bert'], '-o', out, '--report', join(scratch, 'no-such-dir', 'r.html'), '--seq-len', '16');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no-such-dir');
    expect(r.stderr).toContain('does not exist');
    expect(existsSync(out)).toBe(false);
  });

  test('the report named as the output model: exit 1, nothing written', () => {
    const out = join(scratch, 'bad2.onnx');
    const r = attnopt('optimize', MODELS['tiny-bert'], '-o', out, '--report', out, '--seq-len', '16');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--report is the same file as -o');
    expect(existsSync(out)).toBe(false);
  });
});
