/// <reference types="@webgpu/types" />
// A tiny static server for examples/webgpu-browser: serves the page and /kernel.json, a kernel generated
// by @attnopt/backend-wgsl at start-up (WGSL, uniforms, buffers, reference output).
//   npx tsx --conditions=@attnopt/source tools/src/wgsl/serve-example.ts [port]
//   npx tsx --conditions=@attnopt/source tools/src/wgsl/serve-example.ts --write   (writes kernel.json beside the page)

import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exampleKernel } from './example-kernel.js';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../examples/webgpu-browser');
const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.md': 'text/markdown' };

const kernel = JSON.stringify(exampleKernel());
if (process.argv.includes('--write')) {
  await writeFile(join(root, 'kernel.json'), kernel);
  console.log(`wrote ${join(root, 'kernel.json')}`);
} else {
  const port = Number(process.argv[2] ?? 8123);
  createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/kernel.json') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(kernel);
      return;
    }
    const file = normalize(join(root, path === '/' ? 'index.html' : path));
    if (!file.startsWith(root)) {
      res.writeHead(403).end();
      return;
    }
    readFile(file).then(
      (body) => res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(body),
      () => res.writeHead(404).end('not found'),
    );
  }).listen(port, () => console.log(`serving ${root} on http://localhost:${port}/`));
}
