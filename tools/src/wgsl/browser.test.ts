// examples/webgpu-browser in headless Chromium (Debian's /usr/bin/chromium through playwright-core; its WebGPU
// runs on SwiftShader, Chromium's CPU Vulkan, with --enable-unsafe-webgpu alone). The page must show
// `Status: ok`, and its Y must match the float64 reference here (atol 1e-5, rtol 1e-4), independently of
// the page's own check. Fails (never skips) without Chromium or without a WebGPU adapter in it.

import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareArrays } from '@attnopt/reference';
import { exampleKernel } from './example-kernel.js';
import { startExampleServer } from './example-server.js';

interface PageGlobals {
  document: { getElementById(id: string): { textContent: string | null } | null };
  attnoptResult: { y: number[] };
}

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const kernel = exampleKernel();
let server: Server;
let url: string;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`browser test needs Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
  ({ server, url } = await startExampleServer(JSON.stringify(kernel)));
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--enable-unsafe-webgpu', '--no-sandbox'] });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  server?.close();
});

describe('the WebGPU browser example in headless Chromium', () => {
  it('shows Status: ok and its Y matches the float64 reference', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    // These functions run in the page (serialized, no closure): its globals are typed here by hand, since
    // tools compiles without the DOM lib.
    await page.waitForFunction(
      () => (globalThis as unknown as PageGlobals).document.getElementById('status')?.textContent !== 'starting',
      null,
      { timeout: 90_000 },
    );
    const status = await page.textContent('#status');
    const result = await page.textContent('#result');
    expect(errors).toEqual([]);
    expect(`${status}: ${result}`).toMatch(/^ok: /);
    const out = (await page.evaluate(() => (globalThis as unknown as PageGlobals).attnoptResult)).y;
    expect(out.length).toBe(kernel.expected.length);
    const cmp = compareArrays(Float32Array.from(out), Float64Array.from(kernel.expected), { atol: 1e-5, rtol: 1e-4 });
    expect(cmp.ok, `max abs error ${cmp.maxAbsError}`).toBe(true);
  }, 120_000);
});
