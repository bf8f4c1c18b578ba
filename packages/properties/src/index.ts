// @attnopt/properties: arbitraries and properties of attention, for attnopt and for other compilers.

export * from './arbitraries/spec.js';
export * from './arbitraries/attention-inputs.js';
export * from './arbitraries/graph.js';
