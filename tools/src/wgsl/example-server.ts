// The static server of examples/webgpu-browser: the page, its script, and /kernel.json (a kernel generated
// by @attnopt/backend-wgsl, see example-kernel.ts).

import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const EXAMPLE_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../examples/webgpu-browser');
const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.md': 'text/markdown' };

/** Serves the example with `kernelJson` as /kernel.json on `port` (0: any free port). */
export function startExampleServer(kernelJson: string, port = 0): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/kernel.json') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(kernelJson);
      return;
    }
    if (path === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    const file = normalize(join(EXAMPLE_ROOT, path === '/' ? 'index.html' : path));
    if (!file.startsWith(EXAMPLE_ROOT)) {
      res.writeHead(403).end();
      return;
    }
    readFile(file).then(
      (body) => res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(body),
      () => res.writeHead(404).end('not found'),
    );
  });
  return new Promise((ok) =>
    server.listen(port, '127.0.0.1', () => ok({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server })),
  );
}
