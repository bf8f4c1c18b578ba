// The IR's text form: printer and parser for graphs, types, attributes and attention specs.

export { printGraph, printType, printAttr, printShape, printDim } from './print.js';
export { parseGraph, parseTypeText } from './parse.js';
export { printSpec, parseSpec } from './spec-text.js';
export { printTensor } from './tensor-text.js';
