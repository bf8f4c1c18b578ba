// @attnopt/rewrite: pattern matching, rewriting and the pass manager. Public API.
