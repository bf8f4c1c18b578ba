// Shared Vitest settings for every package: resolve workspace packages to their TypeScript
// sources (the "@attnopt/source" export condition) so tests never need a build step.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const conditions = ['@attnopt/source', 'import', 'module', 'node', 'default'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: conditions } },
  test: {
    pool: 'forks',
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 120_000,
    // the compile pipeline runs the IR verifier before and after every pass (a failure names the pass)
    // and rewrites are not timed against the sites as written (decisions would follow the machine's load); the
    // tests of that timing pass their own timer or ask for it
    env: { ATTNOPT_VERIFY_EACH: '1', ATTNOPT_MEASURE: '0' },
    setupFiles: [fileURLToPath(new URL('./vitest.setup.ts', import.meta.url))],
  },
});
