// The HTML report in a real headless browser (Debian's chromium through playwright-core): it renders without
// console errors or requests, its heatmaps and curves have content, and every figure of the per-site table is
// optimize's own number for that site (optimize run here, apart from the report). The heatmaps are checked
// against the float64 reference: the attention mass against referenceAttention's probabilities binned here,
// the keep-pattern against the spec's keeps() predicate pair by pair.
// Models: examples/tiny-bert (seq 64) and a generated long-attention model (one ONNX Attention, 512 tokens,
// local Q/K so sparsify picks a window).

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { keeps, type MaskSpec, parseSpec } from '@attnopt/ir';
import { analyzeMaskPass } from '@attnopt/passes';
import { referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import type { CalibrationSample } from '../src/calibrate/index.js';
import { collectSiteTensors, generateInputs } from '../src/calibrate/index.js';
import { loadModel } from '../src/model.js';
import { optimize } from '../src/optimize.js';
import { recognize } from '../src/recognize.js';
import { buildReport, type ReportData, renderReport } from '../src/report/index.js';
import { longAttentionBytes, longAttentionSample } from './helpers/long-attention.js';

const CHROMIUM = '/usr/bin/chromium';
const TINY_BERT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../examples/tiny-bert/model.onnx');
const TABLE_FIELDS = ['id', 'chosen', 'exact', 'bound', 'measuredError', 'flopsBefore', 'flopsAfter'] as const;

const LONG_N = 512;

// ---- the two reports, and optimize's JSON computed apart from them ------------------------------------------------
interface Case {
  readonly name: string;
  readonly source: string | Uint8Array;
  readonly samples: CalibrationSample[];
  readonly seqLen: number;
  data?: ReportData;
  html?: string;
  /** The sites as `attnopt optimize --json` prints them. */
  json?: Record<string, unknown>[];
}

const tinySamples = generateInputs(loadModel(TINY_BERT), { seqLen: 64, seed: 0, count: 2 });
const CASES: Case[] = [
  { name: 'tiny-bert', source: TINY_BERT, samples: tinySamples, seqLen: 64 },
  { name: 'long-attention', source: longAttentionBytes(), samples: [longAttentionSample(1, LONG_N), longAttentionSample(2, LONG_N)], seqLen: LONG_N },
];

let browser: Browser;

beforeAll(async () => {
  for (const c of CASES) {
    const verifySamples = c.name === 'long-attention' ? [longAttentionSample(3, LONG_N)] : undefined;
    // the long model's samples are the user's data: its window is accepted on them (statistical tier), as the
    // block certificate of the guarded tier is loose on its smoothly decaying attention
    const statistical = c.name === 'long-attention' ? { allowStatistical: true } : {};
    c.data = await buildReport(loadModel(c.source), { seqLen: c.seqLen, samples: c.samples, ...statistical, ...(verifySamples ? { verifySamples } : {}) });
    c.html = renderReport(c.data);
    const result = await optimize(loadModel(c.source), { maxError: 1e-2, seqLen: c.seqLen, samples: c.samples, ...statistical });
    c.json = JSON.parse(JSON.stringify({ sites: result.sites })).sites as Record<string, unknown>[];
  }
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (scripts/install-chromium.sh); the report tests need it`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}, 600_000);

afterAll(async () => {
  await browser?.close();
});

/** Evaluates a browser-side expression (a string: this package is typed without the DOM library). */
const inPage = <T>(page: Page, expression: string): Promise<T> => page.evaluate(expression) as Promise<T>;

/** Opens the report; returns the page and what went wrong while it loaded (console errors, requests made). */
async function open(html: string): Promise<{ page: Page; errors: string[]; requests: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('request', (r) => requests.push(r.url()));
  await page.setContent(html, { waitUntil: 'load' });
  return { page, errors, requests };
}

describe.each(CASES.map((c) => [c.name, c] as const))('report of %s', (_name, c) => {
  test('optimize reports sites (the long model: one window)', () => {
    expect(c.json!.length).toBeGreaterThan(0);
    if (c.name === 'long-attention') {
      expect(c.json).toHaveLength(1);
      expect(c.json![0]!.exact).toBe(false);
      expect(parseSpec(c.json![0]!.chosen as string).kind).toBe('window');
    }
  });

  test('renders in chromium: no errors, no requests, heatmaps drawn, curves drawn', async () => {
    const { page, errors, requests } = await open(c.html!);
    try {
      expect(errors).toEqual([]);
      expect(requests.filter((u) => !u.startsWith('about:') && !u.startsWith('data:'))).toEqual([]);
      expect(c.html).not.toMatch(/(src|href)="(https?:)?\/\//);
      const heatmaps = c.data!.sites.reduce((n, s) => n + (s.heatmaps ? s.heatmaps.heads.length * 2 : 0), 0);
      expect(heatmaps).toBeGreaterThan(0);
      expect(await inPage<string>(page, 'document.body.dataset.rendered')).toBe(String(heatmaps));
      // every canvas: sized, on screen, every pixel painted (opaque)
      const canvases = await inPage<{ w: number; h: number; boxW: number; boxH: number; opaque: number }[]>(
        page,
        `[...document.querySelectorAll('canvas.heatmap')].map((cv) => {
          const box = cv.getBoundingClientRect();
          const px = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
          let opaque = 0;
          for (let k = 3; k < px.length; k += 4) if (px[k] === 255) opaque++;
          return { w: cv.width, h: cv.height, boxW: box.width, boxH: box.height, opaque };
        })`,
      );
      expect(canvases).toHaveLength(heatmaps);
      for (const cv of canvases) {
        expect(cv.w * cv.h).toBeGreaterThan(0);
        expect(cv.boxW).toBeGreaterThan(0);
        expect(cv.boxH).toBeGreaterThan(0);
        expect(cv.opaque).toBe(cv.w * cv.h);
      }
      // charts: the trade-off curve, the model cost curves (time, FLOPs), one cost curve per site
      const charts = await inPage<{ id: string; w: number; h: number; marks: number; drawn: number }[]>(
        page,
        `[...document.querySelectorAll('svg.chart')].map((svg) => {
          const box = svg.getBoundingClientRect();
          const marks = [...svg.querySelectorAll('path.series, circle.point')].map((m) => m.getBBox());
          return { id: svg.getAttribute('data-chart'), w: box.width, h: box.height, marks: marks.length, drawn: marks.filter((b) => b.width > 0 || b.height > 0).length };
        })`,
      );
      const ids = charts.map((x) => x.id);
      expect(ids).toEqual(expect.arrayContaining(['tradeoff', 'cost-model-ms', 'cost-model-flops', ...c.data!.sites.map((s) => `cost-${s.row.id}`)]));
      for (const chart of charts) {
        expect(chart.w).toBeGreaterThan(0);
        expect(chart.h).toBeGreaterThan(0);
        expect(chart.marks).toBeGreaterThan(0);
        expect(chart.drawn).toBeGreaterThan(0);
      }
      // the embedded data is the ReportData
      const embedded = await inPage<unknown>(page, `JSON.parse(document.getElementById('report-data').textContent)`);
      expect(embedded).toEqual(JSON.parse(JSON.stringify(c.data)));
    } finally {
      await page.close();
    }
  });

  test("every figure of the per-site table is optimize's number for that site", async () => {
    const { page } = await open(c.html!);
    try {
      const cells = await inPage<{ site: string; field: string; value: string; text: string }[]>(
        page,
        `[...document.querySelectorAll('#site-table td[data-field]')].map((td) => ({
          site: td.getAttribute('data-site'),
          field: td.getAttribute('data-field'),
          value: td.getAttribute('data-value'),
          text: td.textContent.trim(),
        }))`,
      );
      const rows = await inPage<string[]>(page, `[...document.querySelectorAll('#site-table tr[data-site-row]')].map((tr) => tr.getAttribute('data-site-row'))`);
      expect(rows).toEqual(c.json!.map((s) => s.id));
      for (const site of c.json!) {
        const id = site.id as string;
        const of = (field: string) => cells.find((x) => x.site === id && x.field === field);
        for (const field of TABLE_FIELDS) {
          const cell = of(field);
          expect(cell, `${id}.${field}`).toBeDefined();
          const want = site[field];
          if (typeof want === 'number' || want === null) {
            const got = cell!.value === 'null' ? null : Number(cell!.value);
            expect(got, `${id}.${field}`).toBe(want);
            // shown rounded to 4 significant digits (integers below 1e5 in full)
            if (want === null) expect(cell!.text).toBe('n/a');
            else expect(Math.abs(Number(cell!.text) - want), `${id}.${field} shown as ${cell!.text}`).toBeLessThanOrEqual(5e-4 * Math.abs(want));
          } else if (typeof want === 'boolean') {
            expect(cell!.value).toBe(String(want));
            // an approximate site is shown by its tier (guarded, statistical), as optimize names it
            expect(cell!.text).toBe(want ? 'exact' : String(site.guarantee));
          } else {
            expect(cell!.value).toBe(want);
            expect(cell!.text).toBe(want);
          }
        }
        const ratio = of('flopsRatio')!;
        const before = site.flopsBefore as number | null;
        const after = site.flopsAfter as number | null;
        if (before === null || after === null) expect(ratio.text).toBe('n/a');
        else expect(Number(ratio.value)).toBe(before / after);
      }
    } finally {
      await page.close();
    }
  });

  test('the trade-off curve: budget 0 is exact, every point within what it certifies', () => {
    const points = c.data!.tradeoff;
    expect(points.map((p) => p.budget)).toEqual([0, 1e-3, 1e-2, 5e-2, 1e-1]);
    const exact = points[0]!;
    expect(exact.sitesChanged).toBe(0);
    for (const o of exact.outputs) expect(o.maxAbsError).toBeLessThanOrEqual(1e-5);
    for (const p of points) {
      expect(p.withinCertified).not.toBe(false);
      expect(p.msOriginal).toBeGreaterThan(0);
      expect(p.msOptimized).toBeGreaterThan(0);
    }
    const main = points.find((p) => p.budget === 1e-2)!;
    expect(main.chosen).toEqual(Object.fromEntries(c.json!.map((s) => [s.id, s.chosen])));
    if (c.name === 'long-attention') {
      const loosest = points[points.length - 1]!;
      expect(loosest.sitesChanged).toBe(1);
      expect(loosest.modeledSpeedup).toBeGreaterThan(1);
      expect(loosest.outputs[0]!.meanCosine).toBeGreaterThan(0.99);
    }
  });
});

describe('report heatmaps against the float64 reference', () => {
  test('tiny-bert: attention mass = referenceAttention probabilities binned (rtol 1e-3)', async () => {
    const data = CASES[0]!.data!;
    const model = loadModel(TINY_BERT);
    recognize(model.graph);
    runPipeline(model.graph, [analyzeMaskPass()], { verify: false });
    const collected = await collectSiteTensors(model, tinySamples);
    for (const site of collected) {
      const maps = data.sites.find((s) => s.row.id === site.id)!.heatmaps!;
      expect(maps.rowStride).toBe(1);
      const { rows, cols, nq, nk } = maps;
      const H = site.params.numHeads;
      const expected = Array.from({ length: H }, () => new Float64Array(rows * cols));
      const bin = (i: number, n: number, bins: number) => {
        let r = 0;
        while (r + 1 < bins && Math.floor(((r + 1) * n) / bins) <= i) r++;
        return r;
      };
      let count = 0;
      for (const s of site.samples) {
        const f64 = (t: { shape: readonly number[]; data: ArrayLike<number> }) => ({ shape: t.shape, data: Float64Array.from(t.data) });
        const out = referenceAttention(
          { ...site.params, scoresMode: 'softmax' },
          { q: f64(s.q), k: f64(s.k!), v: f64(s.v!), ...(s.bias ? { bias: f64(s.bias) } : {}) },
        );
        const p = out.scores!;
        const B = s.q.shape[0]!;
        for (let b = 0; b < B; b++) {
          count++;
          for (let h = 0; h < H; h++) {
            // sum per bin, then divide by the bin's pair count
            for (let i = 0; i < nq; i++) {
              for (let j = 0; j < nk; j++) expected[h]![bin(i, nq, rows) * cols + bin(j, nk, cols)]! += p.data[((b * H + h) * nq + i) * nk + j]!;
            }
          }
        }
      }
      expect(maps.averagedOver).toBe(count);
      for (let h = 0; h < maps.heads.length; h++) {
        for (let r = 0; r < rows; r++) {
          for (let cc = 0; cc < cols; cc++) {
            const area = (Math.floor(((r + 1) * nq) / rows) - Math.floor((r * nq) / rows)) * (Math.floor(((cc + 1) * nk) / cols) - Math.floor((cc * nk) / cols));
            const want = expected[h]![r * cols + cc]! / (count * area);
            const got = maps.heads[h]!.mass[r * cols + cc]!;
            expect(Math.abs(got - want), `${site.id} head ${h} bin (${r}, ${cc})`).toBeLessThanOrEqual(1e-12 + 1e-3 * Math.abs(want));
          }
        }
      }
    }
  });

  test("long-attention: keep-pattern = the chosen spec's keeps() counted pair by pair", () => {
    const site = CASES[1]!.data!.sites[0]!;
    const maps = site.heatmaps!;
    const spec = parseSpec(site.row.chosen) as MaskSpec;
    expect(maps.keep).toHaveLength(1);
    const { rows, cols, nq, nk } = maps;
    for (let r = 0; r < rows; r++) {
      for (let cc = 0; cc < cols; cc++) {
        const [i0, i1] = [Math.floor((r * nq) / rows), Math.floor(((r + 1) * nq) / rows)];
        const [j0, j1] = [Math.floor((cc * nk) / cols), Math.floor(((cc + 1) * nk) / cols)];
        let kept = 0;
        for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) if (keeps(spec, i, j, { nq, nk })) kept++;
        const want = kept / ((i1 - i0) * (j1 - j0));
        expect(Math.abs(maps.keep![0]![r * cols + cc]! - want), `bin (${r}, ${cc})`).toBeLessThanOrEqual(5e-4 * want);
      }
    }
  });

  test('long-attention: the mass concentrates where the window keeps (diagonal bins over corner bins)', () => {
    const maps = CASES[1]!.data!.sites[0]!.heatmaps!;
    for (const { mass } of maps.heads) {
      const diagonal = Array.from({ length: maps.rows }, (_, r) => mass[r * maps.cols + r]!);
      const corner = mass[maps.cols - 1]!;
      expect(Math.min(...diagonal)).toBeGreaterThan(100 * corner);
    }
  });

  test("long-attention: the cost curve at the calibration length gives optimize's FLOPs", () => {
    const site = CASES[1]!.data!.sites[0]!;
    const k = site.costCurve.n.indexOf(LONG_N);
    expect(k).toBeGreaterThanOrEqual(0);
    const series = (label: string) => site.costCurve.series.find((s) => s.label === label)!;
    expect(series('dense').flops[k]).toBe(site.row.flopsBefore);
    expect(series('chosen').flops[k]).toBe(site.row.flopsAfter);
  });
});
