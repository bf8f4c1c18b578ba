/// <reference types="@webgpu/types" />
// A tiny static server for examples/webgpu-browser: serves the page and /kernel.json, a kernel generated
// by @attnopt/backend-wgsl at start-up (WGSL, uniforms, buffers, reference output).
//   npx tsx --conditions=@attnopt/source tools/src/wgsl/serve-example.ts [port]
//   npx tsx --conditions=@attnopt/source tools/src/wgsl/serve-example.ts --write   (writes kernel.json beside the page)

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exampleKernel } from './example-kernel.js';
import { EXAMPLE_ROOT, startExampleServer } from './example-server.js';

const kernel = JSON.stringify(exampleKernel());
if (process.argv.includes('--write')) {
  await writeFile(join(EXAMPLE_ROOT, 'kernel.json'), kernel);
  console.log(`wrote ${join(EXAMPLE_ROOT, 'kernel.json')}`);
} else {
  const { url } = await startExampleServer(kernel, Number(process.argv[2] ?? 8123));
  console.log(`serving ${EXAMPLE_ROOT} on ${url}`);
}
