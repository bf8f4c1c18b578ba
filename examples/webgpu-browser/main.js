// Runs the generated kernel from kernel.json (made by tools/src/wgsl/serve-example.ts with @attnopt/backend-wgsl)
// through navigator.gpu, compares Y with the float64 reference and shows the timing.

const $ = (id) => document.getElementById(id);
const show = (status, result = '') => {
  $('status').textContent = status;
  $('result').textContent = result;
};

async function main() {
  const kernel = await (await fetch('./kernel.json')).json();
  $('desc').textContent = kernel.description;
  $('wgsl').textContent = kernel.wgsl;
  if (!navigator.gpu) return show('no-webgpu', 'navigator.gpu is undefined: this browser offers no WebGPU here');
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return show('no-adapter', 'navigator.gpu.requestAdapter() returned null');
  const device = await adapter.requestDevice();
  const module = device.createShaderModule({ code: kernel.wgsl });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length) return show('compile-error', errors.map((m) => `line ${m.lineNum}: ${m.message}`).join('\n'));
  const pipeline = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const Arrays = { f32: Float32Array, u32: Uint32Array, i32: Int32Array };
  const buffers = kernel.storage.map((s) => {
    const data = new Arrays[s.type](s.data.length ? s.data : [0]);
    const buf = device.createBuffer({ size: Math.max(16, data.byteLength), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
    device.queue.writeBuffer(buf, 0, data);
    return buf;
  });
  const groups = kernel.dispatches.map((d) => {
    const u = new Uint32Array(d.uniforms);
    const ub = device.createBuffer({ size: u.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(ub, 0, u);
    const entries = buffers.map((buffer, binding) => ({ binding, resource: { buffer } }));
    entries.push({ binding: kernel.uniformBinding, resource: { buffer: ub } });
    return device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
  });
  const run = async () => {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    kernel.dispatches.forEach((d, k) => { pass.setBindGroup(0, groups[k]); pass.dispatchWorkgroups(d.x, d.y); });
    pass.end();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
  };
  await run(); // warm-up
  const reps = 10;
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) await run();
  const ms = (performance.now() - t0) / reps;
  const out = buffers[kernel.outputBinding];
  const bytes = kernel.expected.length * 4;
  const staging = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(out, 0, staging, 0, bytes);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const y = new Float32Array(staging.getMappedRange().slice(0));
  let err = 0;
  y.forEach((v, k) => { err = Math.max(err, Math.abs(v - kernel.expected[k])); });
  const ok = err <= 1e-4;
  // For automated checks (tools/src/wgsl/browser.test.ts): the raw output and the adapter.
  window.attnoptResult = { y: [...y], adapter: { vendor: adapter.info?.vendor, architecture: adapter.info?.architecture }, features: [...adapter.features], ms };
  show(ok ? 'ok' : 'mismatch', `${(adapter.info?.description || adapter.info?.vendor || 'adapter')}: ${ms.toFixed(3)} ms per run, ` +
    `${(kernel.flops / (ms * 1e-3) / 1e9).toFixed(2)} GFLOP/s, max |y - reference| = ${err.toExponential(2)}`);
}

main().catch((e) => show('error', String(e && e.stack || e)));
