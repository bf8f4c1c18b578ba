// Test support: the shared runtime. A WebGPU test FAILS (never skips) without an adapter; the message says
// how to install the driver (scripts/install-lavapipe.sh).

import { INSTALL_HINT, WgslRuntime } from '../runtime.js';

let runtime: Promise<WgslRuntime> | undefined;

export function testRuntime(): Promise<WgslRuntime> {
  runtime ??= WgslRuntime.create().catch((e: unknown) => {
    const msg = (e as Error).message;
    throw new Error(
      `${process.env.CI ? 'CI: ' : ''}WebGPU tests need an adapter: ${msg.includes('no WebGPU adapter') ? msg : `${msg}; ${INSTALL_HINT}`}`,
    );
  });
  return runtime;
}
