// The HTML report of `attnopt optimize --report`: buildReport gathers the data, renderReport draws it.
export { buildReport, type ReportOptions } from './build-report.js';
export { renderReport, formatNumber } from './render-report.js';
export type * from './report-data.js';
