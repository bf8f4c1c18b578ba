// A small line / scatter chart as inline SVG: linear or log axes with ticks, labels and a legend. No
// external fonts or scripts: the report stays one self-contained file.

import { maxOf, minOf } from '../extremes.js';

export interface ChartSeries {
  readonly label: string;
  readonly color: string;
  /** [x, y] points; a point with a null coordinate is left out (and breaks the line). */
  readonly points: readonly (readonly [number | null, number | null])[];
  readonly line?: boolean;
  readonly dashed?: boolean;
  /** Marker: filled dot, hollow dot, or none. */
  readonly marker?: 'dot' | 'ring' | 'none';
  /** Text beside each point (same length as points), e.g. the budget. */
  readonly pointLabels?: readonly string[];
}

export interface ChartAxis {
  readonly label: string;
  readonly log?: boolean;
  /** Force the range to include these values. */
  readonly include?: readonly number[];
  readonly format?: (x: number) => string;
  /** Tick positions (default: rounded values over the range). */
  readonly ticks?: readonly number[];
}

export interface ChartSpec {
  readonly id: string;
  readonly title: string;
  readonly x: ChartAxis;
  readonly y: ChartAxis;
  readonly series: readonly ChartSeries[];
  readonly width?: number;
  readonly height?: number;
}

export const escapeHtml = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const compact = (x: number): string => {
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e4 || a < 1e-2) return x.toExponential(0).replace('e+', 'e');
  return Number(x.toPrecision(3)).toString();
};

/** Labels with as many decimals as the tick step needs (0.9999990 and 0.9999995 stay apart). */
function tickFormat(values: readonly number[], log: boolean): (x: number) => string {
  if (log || values.length < 2) return compact;
  const step = Math.abs(values[1]! - values[0]!);
  const big = maxOf(values.map(Math.abs));
  if (big >= 1e4 || step === 0) return compact;
  const decimals = Math.min(12, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
  return (x) => x.toFixed(decimals);
}

/** Rounded tick values over [lo, hi]: powers of ten on a log axis, 1-2-5 steps on a linear one. */
function ticks(lo: number, hi: number, log: boolean): number[] {
  if (log) {
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
      const t = 10 ** e;
      if (t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9)) out.push(t);
    }
    if (out.length < 2) return [lo, hi];
    return out;
  }
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= 6) ?? 10 * mag;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

function range(values: number[], axis: ChartAxis): [number, number] {
  const vs = [...values, ...(axis.include ?? [])].filter((v) => Number.isFinite(v) && (!axis.log || v > 0));
  if (vs.length === 0) return axis.log ? [1, 10] : [0, 1];
  let lo = minOf(vs);
  let hi = maxOf(vs);
  if (axis.log) {
    if (lo === hi) return [lo / 2, hi * 2];
    return [lo / 1.15, hi * 1.15];
  }
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.05 || 0.5;
    return [lo - pad, hi + pad];
  }
  const pad = (hi - lo) * 0.06;
  return [lo - pad, hi + pad];
}

/** The chart as an <svg> element (role img, titled), with data-chart = spec.id. */
export function svgChart(spec: ChartSpec): string {
  const W = spec.width ?? 560;
  const H = spec.height ?? 320;
  const m = { left: 70, right: 16, top: 30, bottom: 48 };
  const perRow = spec.series.some((s) => s.label.length > 24) ? 1 : 2;
  const legendRows = Math.ceil(spec.series.length / perRow);
  const ph = H - m.top - m.bottom - legendRows * 16;
  const xs = spec.series.flatMap((s) => s.points.map((p) => p[0]).filter((v): v is number => v !== null));
  const ys = spec.series.flatMap((s) => s.points.map((p) => p[1]).filter((v): v is number => v !== null));
  const [x0, x1] = range(xs, spec.x);
  const [y0, y1] = range(ys, spec.y);
  const tx = (v: number) => (spec.x.log ? Math.log(v / x0) / Math.log(x1 / x0) : (v - x0) / (x1 - x0));
  const ty = (v: number) => (spec.y.log ? Math.log(v / y0) / Math.log(y1 / y0) : (v - y0) / (y1 - y0));
  const px = (v: number) => m.left + tx(v) * pw;
  const py = (v: number) => m.top + (1 - ty(v)) * ph;
  const ok = (v: number | null, axis: ChartAxis): v is number => v !== null && Number.isFinite(v) && (!axis.log || v > 0);
  const xTicks = spec.x.ticks ?? ticks(x0, x1, spec.x.log ?? false);
  const yTicks = spec.y.ticks ?? ticks(y0, y1, spec.y.log ?? false);
  const fx = spec.x.format ?? tickFormat(xTicks, spec.x.log ?? false);
  const fy = spec.y.format ?? tickFormat(yTicks, spec.y.log ?? false);
  m.left = Math.max(m.left, 34 + 6.5 * maxOf(yTicks.map((t) => fy(t).length)));
  const pw = W - m.left - m.right;
  const parts: string[] = [];
  parts.push(`<text class="chart-title" x="${m.left}" y="18">${escapeHtml(spec.title)}</text>`);
  parts.push(`<rect class="plot-area" x="${m.left}" y="${m.top}" width="${pw}" height="${ph}"/>`);
  for (const t of xTicks) {
    const x = px(t).toFixed(1);
    parts.push(`<line class="grid" x1="${x}" x2="${x}" y1="${m.top}" y2="${m.top + ph}"/>`);
    parts.push(`<text class="tick" x="${x}" y="${m.top + ph + 15}" text-anchor="middle">${escapeHtml(fx(t))}</text>`);
  }
  for (const t of yTicks) {
    const y = py(t).toFixed(1);
    parts.push(`<line class="grid" x1="${m.left}" x2="${m.left + pw}" y1="${y}" y2="${y}"/>`);
    parts.push(`<text class="tick" x="${m.left - 6}" y="${(py(t) + 4).toFixed(1)}" text-anchor="end">${escapeHtml(fy(t))}</text>`);
  }
  parts.push(`<text class="axis-label" x="${m.left + pw / 2}" y="${m.top + ph + 34}" text-anchor="middle">${escapeHtml(spec.x.label)}</text>`);
  parts.push(
    `<text class="axis-label" transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(spec.y.label)}</text>`,
  );
  spec.series.forEach((s, k) => {
    const pts = s.points.map(([x, y]) => (ok(x, spec.x) && ok(y, spec.y) ? ([px(x), py(y)] as const) : null));
    if (s.line !== false) {
      let d = '';
      let pen = false;
      for (const p of pts) {
        if (p === null) {
          pen = false;
          continue;
        }
        d += `${pen ? 'L' : 'M'}${p[0].toFixed(1)} ${p[1].toFixed(1)}`;
        pen = true;
      }
      if (d !== '') {
        parts.push(`<path class="series" data-series="${escapeHtml(s.label)}" d="${d}" stroke="${s.color}"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
      }
    }
    const marker = s.marker ?? 'dot';
    pts.forEach((p, i) => {
      if (p === null) return;
      if (marker !== 'none') {
        const fill = marker === 'dot' ? s.color : '#fff';
        const [x, y] = s.points[i]!;
        parts.push(
          `<circle class="point" data-series="${escapeHtml(s.label)}" cx="${p[0].toFixed(1)}" cy="${p[1].toFixed(1)}" r="4" fill="${fill}" stroke="${s.color}"><title>${escapeHtml(
            `${s.label}: ${spec.x.label} ${fx(x!)}, ${spec.y.label} ${fy(y!)}${s.pointLabels ? ` (${s.pointLabels[i]})` : ''}`,
          )}</title></circle>`,
        );
      }
      if (s.pointLabels?.[i]) {
        parts.push(`<text class="point-label" x="${(p[0] + 6).toFixed(1)}" y="${(p[1] - 6 - 10 * (k % 2)).toFixed(1)}" fill="${s.color}">${escapeHtml(s.pointLabels[i]!)}</text>`);
      }
    });
    const lx = m.left + (k % perRow) * (pw / 2);
    const ly = m.top + ph + 44 + Math.floor(k / perRow) * 16;
    parts.push(
      `<g class="legend-item"><line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>` +
        `<circle cx="${lx + 11}" cy="${ly}" r="3.5" fill="${marker === 'ring' ? '#fff' : s.color}" stroke="${s.color}"/>` +
        `<text class="legend" x="${lx + 28}" y="${ly + 4}">${escapeHtml(s.label)}</text></g>`,
    );
  });
  return (
    `<svg class="chart" data-chart="${escapeHtml(spec.id)}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(spec.title)}">` +
    parts.join('') +
    '</svg>'
  );
}
