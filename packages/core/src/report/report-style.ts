// The report's inline stylesheet (system fonts only: nothing is fetched).

export const REPORT_CSS = `
:root { --ink: #1d2330; --muted: #5d6678; --line: #dfe3ea; --card: #f6f7fa; --accent: #2f6fdb; --good: #1d8a4c; --warn: #b5591b; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: #fff; }
header { padding: 28px 40px 18px; background: linear-gradient(120deg, #17213a, #2b3f6e); color: #fff; }
header h1 { margin: 0 0 4px; font-size: 24px; font-weight: 650; letter-spacing: .2px; }
header .model { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; opacity: .85; word-break: break-all; }
header .options { margin: 6px 0 0; font-size: 12.5px; opacity: .75; }
main { padding: 8px 40px 48px; max-width: 1320px; }
h2 { margin: 32px 0 10px; font-size: 19px; font-weight: 650; border-bottom: 1px solid var(--line); padding-bottom: 6px; }
h3 { margin: 26px 0 8px; font-size: 16px; font-weight: 650; }
h3 code { font-weight: 500; }
p.lead { color: var(--muted); margin: 4px 0 14px; max-width: 900px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0 4px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 10px 16px; min-width: 150px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .5px; }
.card .value { font-size: 22px; font-weight: 650; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 4px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 6px 8px; text-align: left; vertical-align: top; }
th { background: var(--card); font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .4px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.reason { color: var(--muted); font-size: 12.5px; max-width: 380px; }
tr.changed td:first-child { box-shadow: inset 3px 0 0 var(--good); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 9px; font-size: 11.5px; font-weight: 600; }
.badge.exact { background: #e3f4ea; color: var(--good); }
.badge.approx { background: #fdeee2; color: var(--warn); }
.charts { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
svg.chart { background: #fff; border: 1px solid var(--line); border-radius: 10px; max-width: 100%; height: auto; }
svg.chart .plot-area { fill: #fbfcfe; stroke: #c9cfda; }
svg.chart .grid { stroke: #e8ebf1; stroke-width: 1; }
svg.chart .tick { font-size: 11px; fill: var(--muted); }
svg.chart .axis-label { font-size: 12px; fill: var(--ink); }
svg.chart .chart-title { font-size: 13px; font-weight: 600; fill: var(--ink); }
svg.chart .series { fill: none; stroke-width: 2.2; }
svg.chart .legend { font-size: 12px; fill: var(--ink); }
svg.chart .point-label { font-size: 10.5px; }
.site { border: 1px solid var(--line); border-radius: 12px; padding: 4px 20px 18px; margin: 22px 0; }
.heads { display: flex; flex-wrap: wrap; gap: 16px; }
.head { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 8px 10px; }
.head .title { font-size: 12px; font-weight: 600; color: var(--muted); margin-bottom: 4px; }
.pair { display: flex; gap: 10px; }
figure { margin: 0; }
figcaption { font-size: 11.5px; color: var(--muted); text-align: center; }
canvas.heatmap { width: 168px; height: 168px; image-rendering: pixelated; border: 1px solid #c9cfda; background: #fff; display: block; }
.scale { display: flex; align-items: center; gap: 6px; font-size: 11.5px; color: var(--muted); margin: 6px 0 10px; }
.scale canvas { width: 160px; height: 10px; border: 1px solid #c9cfda; image-rendering: pixelated; }
.readout { font-size: 12px; color: var(--muted); min-height: 18px; margin-top: 4px; }
details { margin: 8px 0; }
summary { cursor: pointer; color: var(--accent); font-weight: 600; }
.note { color: var(--muted); font-size: 12.5px; }
footer { color: var(--muted); font-size: 12px; padding: 0 40px 30px; }
`;
