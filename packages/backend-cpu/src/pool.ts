// Worker threads over one shared WebAssembly.Memory: each worker instantiates the generated kernel on the
// shared memory and takes work items (batch, head, query block) from an atomic counter, the items sorted
// by decreasing block count (largest first: balances causal and sparse rows).

import './wasm/webassembly-types.js';
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const cache = new Map();
parentPort.on('message', (m) => {
  let e = cache.get(m.key);
  if (!e || e.memId !== m.memId) {
    if (m.module || m.bytes) {
      const inst = new WebAssembly.Instance(m.module ?? new WebAssembly.Module(m.bytes), { env: { memory: m.memory } });
      e = { memId: m.memId, exports: inst.exports, js: false };
    } else {
      e = { memId: m.memId, fn: new Function(m.source)(), js: true };
    }
    cache.set(m.key, e);
  }
  const run = e.js ? e.fn : e.exports[m.entry ?? 'attend'];
  const byItem = m.entry === 'attendGuarded' || m.entry === 'summarizeItems';
  const I = new Int32Array(m.memory.buffer);
  const F = new Float32Array(m.memory.buffer);
  let done = 0;
  for (;;) {
    const k = Atomics.add(I, m.counter >> 2, 1);
    if (k >= m.nItems) break;
    const x = (m.items >> 2) + m.itemWords * k;
    if (byItem) {
      if (e.js) run(F, I, 4 * x, m.scratch);
      else run(4 * x, m.scratch);
    } else if (e.js) run(F, I, I[x], I[x + 1], I[x + 2], I[x + 3], m.scratch, I[x + 4]);
    else run(I[x], I[x + 1], I[x + 2], I[x + 3], m.scratch, I[x + 4]);
    done++;
  }
  parentPort.postMessage(done);
});
`;

/**
 * What a worker runs: a WebAssembly kernel (its bytes, and best its compiled module: posted to the workers,
 * it shares one compilation, so the optimized code V8 tiers up to serves every thread) or a JavaScript
 * kernel (its source).
 */
export type KernelCode =
  | { readonly key: string; readonly bytes: Uint8Array; readonly module?: WebAssembly.Module; readonly entry?: KernelEntry }
  | { readonly key: string; readonly source: string; readonly entry?: KernelEntry };
/**
 * The function a worker calls per item: `attend(q, out, blocks, nBlocks, scratch, rows)` from the item's words,
 * or `attendGuarded(item, scratch)` / `summarizeItems(item, scratch)` (WebAssembly only) with the item's byte
 * address (guard/guard-shape.ts).
 */
export type KernelEntry = 'attend' | 'attendGuarded' | 'summarizeItems';

export interface PoolJob {
  readonly code: KernelCode;
  /** Byte address of the items: nItems records of itemWords i32 (q, out, blocks, nBlocks, rows, ...). */
  readonly items: number;
  readonly nItems: number;
  readonly counter: number;
  readonly scratch: number;
  readonly scratchStride: number;
  /** i32 words per item record (default 8). */
  readonly itemWords?: number;
}

let nextMemoryId = 1;

/** A grow-only shared memory with an id (workers re-instantiate when it changes). */
export class SharedWorkspace {
  memory: WebAssembly.Memory;
  readonly id = nextMemoryId++;
  constructor(bytes = 1 << 20) {
    this.memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536), maximum: 65536, shared: true });
  }
  ensure(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytes > have) this.memory.grow(Math.ceil((bytes - have) / 65536));
  }
}

/** A pool of `threads` workers sharing one workspace memory. close() when done. */
export class CpuWorkerPool {
  readonly workspace = new SharedWorkspace();
  private readonly workers: Worker[];

  constructor(readonly threads: number) {
    if (!Number.isSafeInteger(threads) || threads < 1) throw new Error(`threads must be an integer >= 1, got ${threads}`);
    this.workers = Array.from({ length: threads }, () => {
      const w = new Worker(WORKER_SOURCE, { eval: true });
      w.unref();
      return w;
    });
  }

  async run(job: PoolJob): Promise<void> {
    const I = new Int32Array(this.workspace.memory.buffer);
    Atomics.store(I, job.counter >> 2, 0);
    await Promise.all(
      this.workers.map(
        (w, k) =>
          new Promise<void>((resolve, reject) => {
            w.ref();
            const onError = (err: Error) => {
              w.off('message', onMessage);
              w.unref();
              reject(err);
            };
            const onMessage = () => {
              w.off('error', onError);
              w.unref();
              resolve();
            };
            w.once('message', onMessage);
            w.once('error', onError);
            const code = 'module' in job.code && job.code.module ? { key: job.code.key, module: job.code.module, entry: job.code.entry } : job.code;
            w.postMessage({
              ...code,
              memory: this.workspace.memory,
              memId: this.workspace.id,
              items: job.items,
              itemWords: job.itemWords ?? 8,
              nItems: job.nItems,
              counter: job.counter,
              scratch: job.scratch + k * job.scratchStride,
            });
          }),
      ),
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
