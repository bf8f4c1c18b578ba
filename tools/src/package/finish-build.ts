// The steps of npm run build after tsc -b: built files whose source is gone are deleted, then the command is bundled.
import { fileURLToPath } from 'node:url';
import { workspacePackages } from './pack.js';
import { pruneStale } from './prune-stale.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
for (const [name, { dir }] of workspacePackages(root)) {
  for (const file of pruneStale(dir, name === '@attnopt/cli' ? ['attnopt.js'] : [])) console.log(`removed ${file} (its source is gone)`);
}
await import('./bundle-cli.js');
