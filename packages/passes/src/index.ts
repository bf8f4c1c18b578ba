// @attnopt/passes: recognize, analyze, sparsify, lower. Public API.

export { liftSite, siteOrigin, SITE_ORIGIN, type SiteMatch, type SiteOrigin } from './recognize/lift.js';
