// Exact sparsity analysis: what a site's own mask already keeps, as a spec, for every length.
export { analyzeMaskPass, combineSpecs, siteDims, ANALYZE_MASK } from './pass.js';
export { proveMaskSpec, formulaToSpec, type MaskProof, type SiteDims } from './prove.js';
export { MASKED_AT_OR_BELOW, type Formula, type Sym } from './symbolic.js';
export { maskProven, undoMaskProofs } from './undo.js';
export { UNKEPT_ROWS_NOTE } from './unkept-rows.js';
