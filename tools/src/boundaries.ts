// Module boundaries of ARCHITECTURE.md: which workspace package may import which, and that every
// import goes through a package's public entry (no deep imports).

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** package -> the workspace packages it may import (ARCHITECTURE.md, "Packages"). */
export const ALLOWED_IMPORTS: Record<string, readonly string[]> = {
  ir: [],
  reference: ['ir'],
  onnx: ['ir'],
  rewrite: ['ir'],
  cost: ['ir'],
  bounds: ['ir'],
  passes: ['ir', 'rewrite', 'cost', 'bounds'],
  properties: ['ir', 'reference', 'bounds'],
  'backend-cpu': ['ir'],
  'runtime-cpu': ['ir', 'backend-cpu'],
  'backend-wgsl': ['ir'],
  core: ['ir', 'reference', 'onnx', 'rewrite', 'cost', 'bounds', 'passes', 'properties', 'backend-cpu', 'runtime-cpu', 'backend-wgsl'],
  cli: ['core'],
};

export interface BoundaryViolation {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

const IMPORT = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function* sourceFiles(dir: string): Iterable<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* sourceFiles(path);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) yield path; // tests may use devDependencies
  }
}

/** Every import of a workspace package that the table forbids, or that reaches past its entry point. */
export function checkBoundaries(root: string): BoundaryViolation[] {
  const violations: BoundaryViolation[] = [];
  const packagesDir = join(root, 'packages');
  for (const pkg of readdirSync(packagesDir)) {
    const src = join(packagesDir, pkg, 'src');
    if (!statSync(join(packagesDir, pkg)).isDirectory()) continue;
    const allowed = ALLOWED_IMPORTS[pkg];
    if (!allowed) {
      violations.push({ file: `packages/${pkg}`, line: 0, message: `package ${pkg} is not in the architecture table` });
      continue;
    }
    for (const file of sourceFiles(src)) {
      // comments may show imports as examples: blank them out, keeping line numbers
      const text = readFileSync(file, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' '))
        .replace(/\/\/.*$/gm, '');
      for (const m of text.matchAll(IMPORT)) {
        const spec = m[1] ?? m[2]!;
        if (!spec.startsWith('@attnopt/')) continue;
        const line = text.slice(0, m.index).split('\n').length;
        const where = relative(root, file);
        const [, name, ...deep] = spec.split('/');
        if (deep.length > 0) {
          violations.push({ file: where, line, message: `deep import ${spec}: import @attnopt/${name} only` });
        } else if (!allowed.includes(name!)) {
          violations.push({ file: where, line, message: `${pkg} may not import @attnopt/${name} (allowed: ${allowed.join(', ') || 'none'})` });
        }
      }
    }
  }
  return violations;
}
