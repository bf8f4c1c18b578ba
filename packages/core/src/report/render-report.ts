// renderReport: ReportData -> one self-contained HTML file (inline CSS, inline SVG charts, heatmaps drawn on
// canvases by an inline script from the embedded JSON; nothing fetched). Every figure of the per-site table
// carries data-site / data-field / data-value (the exact number) so tools and tests can read it back.

import { HEATMAP_SCRIPT } from './heatmap-script.js';
import type { ReportCostCurve, ReportData, ReportSite, ReportTradeoffPoint } from './report-data.js';
import { REPORT_CSS } from './report-style.js';
import { type ChartSeries, escapeHtml as esc, svgChart } from './svg-chart.js';

const COLORS: Record<string, string> = { dense: '#8a93a6', original: '#b5591b', chosen: '#2f6fdb' };
const PALETTE = ['#2f6fdb', '#1d8a4c', '#b5591b', '#8e44ad', '#c0392b', '#16a085'];

/** A number as the table shows it: integers below 1e5 in full, others to 4 significant digits; null as n/a. */
export function formatNumber(x: number | null): string {
  if (x === null) return 'n/a';
  if (x === 0) return '0';
  if (Number.isInteger(x) && Math.abs(x) < 1e5) return String(x);
  return x.toPrecision(4).replace('e+', 'e');
}

const pct = (x: number | null): string => (x === null ? 'n/a' : `${(100 * x).toFixed(2)}%`);
const ratio = (a: number | null, b: number | null): number | null => (a !== null && b !== null && b > 0 ? a / b : null);

/** A table cell holding one number: its exact value in data-value, shown rounded. */
function numCell(site: string, field: string, x: number | null, extra = ''): string {
  return `<td class="num" data-site="${esc(site)}" data-field="${field}" data-value="${x === null ? 'null' : String(x)}"${extra}>${formatNumber(x)}</td>`;
}

function summaryCards(d: ReportData): string {
  const s = d.summary;
  const card = (label: string, field: string, value: string, raw: number | null) =>
    `<div class="card"><div class="label">${label}</div><div class="value" data-summary="${field}" data-value="${raw === null ? 'null' : raw}">${value}</div></div>`;
  const speed = ratio(s.flopsBefore, s.flopsAfter);
  return (
    '<div class="cards">' +
    card('Attention sites', 'sites', String(s.sites), s.sites) +
    card('Sites made sparse', 'sitesChanged', String(s.sitesChanged), s.sitesChanged) +
    card('Attention FLOPs before', 'flopsBefore', formatNumber(s.flopsBefore), s.flopsBefore) +
    card('Attention FLOPs after', 'flopsAfter', formatNumber(s.flopsAfter), s.flopsAfter) +
    card('FLOPs reduction (cost model)', 'flopsRatio', speed === null ? 'n/a' : `${speed.toFixed(2)}x`, speed) +
    card('Largest bound (guarded: every input; statistical: calibration data)', 'largestBound', formatNumber(s.largestBound), s.largestBound) +
    '</div>'
  );
}

function siteTable(d: ReportData): string {
  const head =
    '<tr><th>Site</th><th>Found</th><th>Chosen</th><th>Result</th><th>Bound (per the tier)</th><th>Measured error</th>' +
    '<th>FLOPs before</th><th>FLOPs after</th><th>Reduction</th><th>Why</th></tr>';
  const rows = d.sites.map((s) => {
    const r = s.row;
    const id = r.id;
    const red = ratio(r.flopsBefore, r.flopsAfter);
    return (
      `<tr class="${r.exact ? 'exact' : 'changed'}" data-site-row="${esc(id)}">` +
      `<td data-site="${esc(id)}" data-field="id" data-value="${esc(id)}"><a href="#${esc(id)}">${esc(id)}</a></td>` +
      `<td><code>${esc(s.found?.mask ?? 'n/a')}</code></td>` +
      `<td data-site="${esc(id)}" data-field="chosen" data-value="${esc(r.chosen)}"><code>${esc(r.chosen)}</code></td>` +
      `<td data-site="${esc(id)}" data-field="exact" data-value="${r.exact}"><span class="badge ${r.exact ? 'exact' : 'approx'}">${r.exact ? 'exact' : (r.guarantee ?? 'approximate')}</span>${r.guarantee === 'guarded' && r.fallbackRate !== undefined ? ` <span class="fallback">fallback ${(100 * r.fallbackRate).toPrecision(2)}% of rows (predicted)</span>` : ''}</td>` +
      numCell(id, 'bound', r.bound) +
      numCell(id, 'measuredError', r.measuredError) +
      numCell(id, 'flopsBefore', r.flopsBefore) +
      numCell(id, 'flopsAfter', r.flopsAfter) +
      `<td class="num" data-site="${esc(id)}" data-field="flopsRatio" data-derived="flopsBefore/flopsAfter" data-value="${red === null ? 'null' : red}">${red === null ? 'n/a' : `${red.toFixed(2)}x`}</td>` +
      `<td class="reason">${esc(r.reason ?? (r.exact ? 'the site keeps its exact spec' : ''))}</td>` +
      '</tr>'
    );
  });
  return `<table id="site-table"><thead>${head}</thead><tbody>${rows.join('')}</tbody></table>`;
}

/** The agreement figure of an output: top-1 for logits, else mean cosine. */
function agreementOf(p: ReportTradeoffPoint, output: string): { value: number | null; kind: 'top-1' | 'cosine' | null } {
  const o = p.outputs.find((x) => x.name === output);
  if (o?.top1Agreement !== null && o?.top1Agreement !== undefined) return { value: o.top1Agreement, kind: 'top-1' };
  if (o?.meanCosine !== null && o?.meanCosine !== undefined) return { value: o.meanCosine, kind: 'cosine' };
  return { value: null, kind: null };
}

/** The fallback verify measured for a guarded site (or each of its head groups) at this budget, if any. */
function measuredFallback(p: ReportTradeoffPoint, id: string): string {
  const rates = Object.entries(p.guardFallback ?? {}).filter(([label]) => label === id || label.startsWith(`${id}.`));
  return rates
    .map(([label, rate]) => ` <span class="fallback" data-site="${esc(label)}" data-field="guardFallback" data-value="${rate}">${label === id ? '' : `${esc(label.slice(id.length + 1))}: `}fallback ${pct(rate)} of rows (measured)</span>`)
    .join('');
}

function tradeoffSection(d: ReportData): string {
  const points = d.tradeoff;
  const outputs = [...new Set(points.flatMap((p) => p.outputs.map((o) => o.name)))].filter((name) => points.some((p) => agreementOf(p, name).value !== null)).slice(0, 3);
  const series: ChartSeries[] = outputs.flatMap((name, k) => {
    const kind = points.map((p) => agreementOf(p, name).kind).find((x) => x !== null);
    const label = `${kind === 'top-1' ? 'top-1 agreement' : 'mean cosine'} of ${name}`;
    const color = PALETTE[k % PALETTE.length]!;
    return [
      {
        label: `${label}, measured speed-up`,
        color,
        line: false,
        points: points.map((p) => [p.measuredSpeedup, agreementOf(p, name).value] as const),
        pointLabels: points.map((p) => `≤ ${p.budget}`),
      },
      {
        label: `${label}, cost-model speed-up`,
        color,
        dashed: true,
        marker: 'ring' as const,
        points: points.map((p) => [p.modeledSpeedup, agreementOf(p, name).value] as const),
      },
    ];
  });
  const chart =
    series.length === 0
      ? '<p class="note">No output of this model is logits or an embedding verify can compare by agreement; see the table.</p>'
      : svgChart({
          id: 'tradeoff',
          title: 'Output agreement vs speed-up, one point per error budget',
          x: { label: 'speed-up over the original (x)', include: [1], format: (x) => `${Number(x.toPrecision(3))}x` },
          y: { label: 'agreement with the original', include: [1] },
          series,
          width: 720,
          height: 380,
        });
  const rows = points.map((p) => {
    const cells = p.outputs
      .map(
        (o) =>
          `<div><code>${esc(o.name)}</code>: max abs error ${formatNumber(o.maxAbsError)}` +
          (o.top1Agreement !== null ? `, top-1 <span data-output="${esc(o.name)}" data-field="top1Agreement" data-value="${o.top1Agreement}">${pct(o.top1Agreement)}</span>` : '') +
          (o.meanKL !== null ? `, KL ${formatNumber(o.meanKL)}` : '') +
          (o.meanCosine !== null ? `, cosine ${o.meanCosine.toFixed(6)}` : '') +
          '</div>',
      )
      .join('');
    return (
      `<tr data-budget="${p.budget}"><td class="num">${p.budget}</td><td class="num">${p.sitesChanged}</td>` +
      `<td class="num">${p.modeledSpeedup === null ? 'n/a' : `${p.modeledSpeedup.toFixed(2)}x`}</td>` +
      `<td class="num">${p.measuredSpeedup === null ? 'n/a' : `${p.measuredSpeedup.toFixed(2)}x`}</td>` +
      `<td class="num">${p.msOriginal === null ? 'n/a' : p.msOriginal.toFixed(2)} / ${p.msOptimized === null ? 'n/a' : p.msOptimized.toFixed(2)}</td>` +
      `<td>${cells}</td><td>${p.withinCertified === null ? 'n/a' : p.withinCertified ? 'yes' : '<strong>no</strong>'}</td>` +
      `<td class="mono">${Object.entries(p.chosen)
        .map(([id, spec]) => `${esc(id)}: ${esc(spec)}${measuredFallback(p, id)}`)
        .join('<br>')}</td></tr>`
    );
  });
  return (
    '<section id="tradeoff-section"><h2>How much of full attention does sparse attention recover here?</h2>' +
    `<p class="lead">For each error budget the model was optimized again and run beside the original in onnxruntime on ${d.options.verifySamples} held-out input${d.options.verifySamples === 1 ? '' : 's'} ` +
    '(verify): how often the outputs agree (top-1 for logits, mean cosine for embeddings) against how much faster the optimized model ran (filled: measured; hollow: the cost model).</p>' +
    `<div class="charts">${chart}</div>` +
    '<table id="tradeoff-table"><thead><tr><th>Budget</th><th>Sites changed</th><th>Speed-up (model)</th><th>Speed-up (measured)</th><th>ms original / optimized</th><th>Outputs</th><th>Within the bound</th><th>Chosen</th></tr></thead>' +
    `<tbody>${rows.join('')}</tbody></table></section>`
  );
}

function costChart(id: string, title: string, curve: ReportCostCurve, field: 'ms' | 'flops', width = 520, height = 300): string {
  return svgChart({
    id,
    title,
    x: { label: 'sequence length n (batch 1, nq = nk = n)', log: true, ticks: curve.n, format: (x) => String(Math.round(x)) },
    y: { label: field === 'ms' ? 'predicted ms' : 'FLOPs', log: true },
    series: curve.series.map((s) => ({
      label: `${s.label}: ${s.spec}`.slice(0, 70),
      color: COLORS[s.label] ?? '#333',
      dashed: s.label === 'dense',
      points: curve.n.map((n, k) => [n, s[field][k] ?? null] as const),
    })),
    width,
    height,
  });
}

function heatmapBlock(site: ReportSite, index: number): string {
  const h = site.heatmaps;
  if (h === null) return `<p class="note">No heatmaps: ${esc(site.skipped ?? 'no calibration data')}.</p>`;
  const id = site.row.id;
  const readout = `readout-${esc(id)}`;
  const heads = h.heads.map(({ head }) => {
    const keepMap = h.keep === null ? null : h.keep.length === 1 ? h.keep[0]! : (h.keep[head] ?? null);
    const keep =
      keepMap === null
        ? `<figure><div class="note" style="width:168px;height:168px;display:flex;align-items:center;text-align:center">${h.keep === null ? 'chosen form unknown' : 'low-rank form: no key set'}</div><figcaption>chosen keep-pattern</figcaption></figure>`
        : `<figure><canvas class="heatmap" data-site="${index}" data-head="${head}" data-kind="keep" data-readout="${readout}" aria-label="${esc(id)} head ${head} keep-pattern"></canvas><figcaption>chosen keep-pattern</figcaption></figure>`;
    return (
      `<div class="head"><div class="title">head ${head}</div><div class="pair">` +
      `<figure><canvas class="heatmap" data-site="${index}" data-head="${head}" data-kind="mass" data-readout="${readout}" aria-label="${esc(id)} head ${head} attention mass"></canvas><figcaption>attention mass</figcaption></figure>` +
      keep +
      '</div></div>'
    );
  });
  return (
    `<p class="note">Calibration data: ${h.nq} queries x ${h.nk} keys, binned ${h.rows} x ${h.cols} (queries down, keys across); mass averaged over ${h.averagedOver} sample${h.averagedOver === 1 ? '' : 's'}` +
    (h.rowStride > 1 ? `, every ${h.rowStride}th query row` : '') +
    (h.headsOmitted > 0 ? `; ${h.headsOmitted} more head${h.headsOmitted === 1 ? '' : 's'} not drawn` : '') +
    `.${h.note ? ` ${esc(h.note)}.` : ''}</p>` +
    '<div class="scale"><span>attention mass: 0</span><canvas class="scale-bar" data-kind="mass"></canvas><span>max of each map (sqrt scale)</span>' +
    '<span style="width:18px"></span><span>kept: 0%</span><canvas class="scale-bar" data-kind="keep"></canvas><span>100%</span></div>' +
    `<div class="heads">${heads.join('')}</div><div class="readout" id="${readout}"></div>`
  );
}

function triedTable(site: ReportSite): string {
  if (site.tried.length === 0) return '';
  const rows = site.tried.map(
    (t) =>
      `<tr${t.accepted ? ' class="changed"' : ''}><td><code>${esc(t.spec)}</code></td><td>${t.certified ? 'mask-shaped' : 'low-rank (calibration data only)'}</td>` +
      `<td class="num">${formatNumber(t.bound)}</td><td class="num">${formatNumber(t.measuredError)}</td><td class="num">${formatNumber(t.maxDroppedMass)}</td>` +
      `<td class="num">${formatNumber(t.flops)}</td><td class="num">${t.time === null ? 'n/a' : (t.time * 1e3).toPrecision(3)}</td><td class="reason">${esc(t.reason)}</td></tr>`,
  );
  return (
    `<details><summary>Forms tried (${site.tried.length})</summary><table class="tried"><thead><tr><th>Form</th><th>Kind</th><th>Bound</th><th>Measured error</th><th>Max dropped mass</th><th>FLOPs</th><th>Predicted ms</th><th>Outcome</th></tr></thead>` +
    `<tbody>${rows.join('')}</tbody></table></details>`
  );
}

function siteSection(site: ReportSite, index: number): string {
  const r = site.row;
  const f = site.found;
  if (f === null) return `<section class="site" id="${esc(r.id)}"><h3>${esc(r.id)}: <code>${esc(r.chosen)}</code></h3><p class="note">${esc(site.skipped ?? '')}.</p></section>`;
  return (
    `<section class="site" id="${esc(r.id)}"><h3>${esc(r.id)}: <code>${esc(f.mask)}</code> → <code>${esc(r.chosen)}</code></h3>` +
    `<p class="note">${f.heads} heads (${f.kvHeads} key/value), head dim ${f.headDim}, scale ${Number(f.scale.toPrecision(6))}; ` +
    `proven mask <code>${esc(f.proven)}</code>${f.bias ? `; bias or mask input <code>${esc(f.bias)}</code>` : ''}; ` +
    `from ONNX nodes <span class="mono">${esc(f.onnxNodes.slice(0, 8).join(', '))}${f.onnxNodes.length > 8 ? `, ... (${f.onnxNodes.length})` : ''}</span>.</p>` +
    heatmapBlock(site, index) +
    `<div class="charts">${costChart(`cost-${r.id}`, `${r.id}: predicted time vs sequence length`, site.costCurve, 'ms', 480, 280)}</div>` +
    triedTable(site) +
    '</section>'
  );
}

/** The report as one HTML document. */
export function renderReport(data: ReportData): string {
  const o = data.options;
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  const notes = data.notes.length
    ? `<details><summary>Pass notes (${data.notes.length})</summary><ul>${data.notes.map((n) => `<li class="mono">${esc(n)}</li>`).join('')}</ul></details>`
    : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>attnopt report: ${esc(data.model)}</title>
<style>${REPORT_CSS}</style>
</head>
<body>
<header><h1>attnopt report</h1><p class="model">${esc(data.model)}</p>
<p class="options">max error ${o.maxError} per site · target ${esc(o.target)} · calibration: ${o.calibrationSamples} sample${o.calibrationSamples === 1 ? '' : 's'}, sequence length ${o.seqLen} · seed ${o.seed}</p></header>
<main>
<section id="summary"><h2>Summary</h2>${summaryCards(data)}</section>
<section id="sites-section"><h2>Attention sites</h2>
<p class="lead">What recognition found at each site, the form chosen within the error budget, its tier (exact; guarded: the bound holds on every input, checked at run time; statistical: on the calibration data only), its bound and measured error, and the attention FLOPs the cost model predicts at the calibration length (the same figures as <code>attnopt optimize --json</code>).</p>
${siteTable(data)}</section>
${tradeoffSection(data)}
<section id="cost-section"><h2>Cost vs sequence length</h2>
<p class="lead">The cost model's prediction for all attention sites together on ${esc(o.target)}: dense attention, the sites' own masks, and the chosen forms.</p>
<div class="charts">${costChart('cost-model-ms', 'All sites: predicted time', data.costCurve, 'ms')}${costChart('cost-model-flops', 'All sites: FLOPs', data.costCurve, 'flops')}</div></section>
<section id="heatmaps-section"><h2>Sites and heads</h2>
<p class="lead">Per head, where the attention mass goes on the calibration data (mean softmax probability per block of queries and keys) beside the pairs the chosen form keeps.</p>
${data.sites.map(siteSection).join('\n')}</section>
${notes}
</main>
<footer>Generated by attnopt. The data behind every figure is embedded below as JSON (script#report-data).</footer>
<script type="application/json" id="report-data">${json}</script>
<script>${HEATMAP_SCRIPT}</script>
</body>
</html>
`;
}
