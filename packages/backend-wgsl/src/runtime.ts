// The WebGPU runtime: finds an adapter (navigator.gpu in browsers, Dawn through the `webgpu` package in
// Node), requests a device with the adapter's compute limits and the optional features it offers, compiles
// generated programs once per cache key, and reuses buffers.

import type { WgslProgram } from './wgsl/builder.js';

/** The script that installs a Vulkan driver Dawn accepts on a machine without a GPU. */
export const INSTALL_HINT =
  'no WebGPU adapter found. On a machine without a GPU install Mesa 25 lavapipe: ' +
  'sudo bash packages/backend-wgsl/scripts/install-lavapipe.sh (Debian bookworm; see ../shared/design/TOOLCHAIN.md)';

// Dawn's instance must stay reachable while any device lives: a collected instance kills the process.
let dawnGpu: GPU | undefined;

/** navigator.gpu when present (browsers, Deno), else Dawn from the `webgpu` package (Node). */
export async function gpuEntryPoint(): Promise<GPU | undefined> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  if (dawnGpu) return dawnGpu;
  const specifier = 'webgpu';
  const mod = (await import(/* @vite-ignore */ specifier)) as { create: (flags: string[]) => GPU; globals: object };
  // GPUBufferUsage, GPUMapMode, GPUShaderStage... as globals, the way browsers define them.
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  dawnGpu = mod.create([]);
  return dawnGpu;
}

export interface RuntimeFeatures {
  readonly f16: boolean;
  readonly subgroups: boolean;
  readonly timestampQuery: boolean;
}

const LIMIT_NAMES = [
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
] as const;

/** A WGSL compile error: names the kernel and the first error's line. */
export class WgslCompileError extends Error {
  constructor(
    readonly kernel: string,
    readonly messages: readonly { type: string; lineNum: number; linePos: number; message: string }[],
    code: string,
  ) {
    const first = messages.find((m) => m.type === 'error') ?? messages[0];
    const line = first ? code.split('\n')[first.lineNum - 1] ?? '' : '';
    super(
      `WGSL kernel ${kernel} failed to compile: ` +
        (first ? `line ${first.lineNum}:${first.linePos}: ${first.message}\n  ${line.trim()}` : 'no message') +
        (messages.length > 1 ? ` (+${messages.length - 1} more)` : ''),
    );
    this.name = 'WgslCompileError';
  }
}

export class WgslRuntime {
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private readonly freeBuffers = new Map<string, GPUBuffer[]>();
  /** Pipelines compiled (cache misses), for tests and reports. */
  compiled = 0;

  private constructor(
    readonly device: GPUDevice,
    readonly adapterDescription: string,
    readonly features: RuntimeFeatures,
  ) {}

  /** Opens the default adapter; throws (with the install hint) when there is none. */
  static async create(options: { powerPreference?: GPUPowerPreference } = {}): Promise<WgslRuntime> {
    const gpu = await gpuEntryPoint();
    const adapter = gpu ? await gpu.requestAdapter(options.powerPreference ? { powerPreference: options.powerPreference } : {}) : null;
    if (!adapter) throw new Error(INSTALL_HINT);
    const wanted: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];
    const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
    const requiredLimits: Record<string, number> = {};
    for (const name of LIMIT_NAMES) requiredLimits[name] = adapter.limits[name];
    const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
    const info = adapter.info;
    const description = [info?.vendor, info?.architecture, info?.device, info?.description].filter((x) => x).join(' ') || 'unknown adapter';
    return new WgslRuntime(device, description, {
      f16: device.features.has('shader-f16'),
      subgroups: device.features.has('subgroups'),
      timestampQuery: device.features.has('timestamp-query'),
    });
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  /** Compiler messages for a program (errors, warnings, infos), without building a pipeline. */
  async compilationMessages(program: WgslProgram): Promise<readonly GPUCompilationMessage[]> {
    const module = this.device.createShaderModule({ label: program.name, code: program.code });
    return (await module.getCompilationInfo()).messages;
  }

  /** The compute pipeline of a program, compiled once per cache key. Compile errors reject with WgslCompileError. */
  pipeline(program: WgslProgram): Promise<GPUComputePipeline> {
    let p = this.pipelines.get(program.cacheKey);
    if (!p) {
      p = this.compile(program);
      this.pipelines.set(program.cacheKey, p);
      p.catch(() => this.pipelines.delete(program.cacheKey));
    }
    return p;
  }

  private async compile(program: WgslProgram): Promise<GPUComputePipeline> {
    for (const f of program.features) {
      if (!this.device.features.has(f as GPUFeatureName)) throw new Error(`WGSL kernel ${program.name} needs feature ${f}, not offered`);
    }
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ label: program.name, code: program.code });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length > 0) {
      await this.device.popErrorScope();
      throw new WgslCompileError(program.name, errors, program.code);
    }
    const pipeline = await this.device.createComputePipelineAsync({ label: program.name, layout: 'auto', compute: { module, entryPoint: 'main' } }).catch(
      (e: unknown) => {
        throw new Error(`WGSL kernel ${program.name}: pipeline creation failed: ${(e as Error).message}`);
      },
    );
    const err = await this.device.popErrorScope();
    if (err) throw new Error(`WGSL kernel ${program.name}: ${err.message}`);
    this.compiled++;
    return pipeline;
  }

  /** A buffer of at least `size` bytes (rounded up to 256) with `usage`, reused from released ones when possible. */
  acquire(size: number, usage: GPUBufferUsageFlags): GPUBuffer {
    const bytes = Math.max(256, Math.ceil(size / 256) * 256);
    const key = `${bytes}:${usage}`;
    const free = this.freeBuffers.get(key);
    const reused = free?.pop();
    if (reused) return reused;
    return this.device.createBuffer({ size: bytes, usage });
  }

  /** Gives a buffer back for reuse. */
  release(buffer: GPUBuffer): void {
    const key = `${buffer.size}:${buffer.usage}`;
    const list = this.freeBuffers.get(key) ?? [];
    list.push(buffer);
    this.freeBuffers.set(key, list);
  }

  /** Uploads bytes into a (reused) storage buffer. */
  upload(data: ArrayBufferView<ArrayBuffer>, usage: GPUBufferUsageFlags = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST): GPUBuffer {
    const buf = this.acquire(data.byteLength, usage | GPUBufferUsage.COPY_DST);
    const padded = data.byteLength % 4 === 0 ? data : copyPadded(data);
    this.device.queue.writeBuffer(buf, 0, padded.buffer, padded.byteOffset, padded.byteLength);
    return buf;
  }

  /** Copies `bytes` of a buffer back to the host. */
  async download(buffer: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.acquire(size, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(buffer, 0, staging, 0, size);
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ, 0, size);
    const out = staging.getMappedRange(0, size).slice(0, bytes);
    staging.unmap();
    this.release(staging);
    return out;
  }

  destroy(): void {
    for (const list of this.freeBuffers.values()) for (const b of list) b.destroy();
    this.freeBuffers.clear();
    this.device.destroy();
  }
}

function copyPadded(data: ArrayBufferView<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return out;
}
