// @attnopt/core: the library API for other compilers. Public API.

export { type AttnoptModel, loadOnnx as importOnnx, saveOnnx as exportOnnx } from './model.js';
export { recognize, type RecognizeResult } from './recognize.js';
export { attentionSites, inspectModel, type InspectReport, type InspectSite } from './inspect.js';
export * from './calibrate/index.js';
