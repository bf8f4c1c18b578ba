// Built files whose source is gone: tsc -b writes dist/X.js and dist/X.d.ts for every src/X.ts but never deletes
// them when src/X.ts is renamed or removed, so without this they would be packed and shipped.

import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';

const BUILT = /\.(d\.ts|js)$/;

/** Deletes dist/**\/X.js and X.d.ts of a package that have no src/**\/X.ts (`keep`: generated files, relative to dist/). */
export function pruneStale(packageDir: string, keep: readonly string[] = []): string[] {
  const dist = join(packageDir, 'dist');
  if (!existsSync(dist)) return [];
  const removed: string[] = [];
  for (const entry of readdirSync(dist, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !BUILT.test(entry.name)) continue;
    const file = join(entry.parentPath, entry.name);
    const rel = relative(dist, file);
    if (keep.includes(rel)) continue;
    if (!existsSync(join(packageDir, 'src', rel.replace(BUILT, '.ts')))) {
      rmSync(file);
      removed.push(file);
    }
  }
  return removed;
}
