// The ONNX fixture corpus: ../shared/fixtures/onnx from the repository root, found from this package.
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CORPUS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../shared/fixtures/onnx');

export function corpusModels(dir: string = CORPUS_DIR): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...corpusModels(full));
    else if (entry.name.endsWith('.onnx')) out.push(full);
  }
  return out.sort();
}
