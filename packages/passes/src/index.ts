// @attnopt/passes: recognize, analyze, sparsify, lower. Public API.

export { liftSite, siteOrigin, SITE_ORIGIN, type SiteMatch, type SiteOrigin } from './recognize/lift.js';
export { DECOMPOSED_RULES, decomposedAttention, DECOMPOSED_ATTENTION } from './recognize/decomposed/index.js';
