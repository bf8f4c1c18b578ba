// @attnopt/passes: recognize, analyze, sparsify, lower. Public API.
