// docs/recognition-coverage.md must be what the coverage script writes for the corpus as it is now.

import fs from 'node:fs';
import { expect, test } from 'vitest';
import { COMMAND, coverageMarkdown, DOC, measureCoverage } from './recognition-coverage.js';

test('docs/recognition-coverage.md is up to date', () => {
  const fresh = coverageMarkdown(measureCoverage());
  const committed = fs.existsSync(DOC) ? fs.readFileSync(DOC, 'utf8') : '';
  expect(committed === fresh, `docs/recognition-coverage.md is stale: rerun \`${COMMAND}\``).toBe(true);
});
