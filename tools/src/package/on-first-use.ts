// The third-party packages the bundled command loads on first use rather than at startup, and the module that
// stands for each of them in the bundle.

/**
 * CommonJS packages the command needs only once a command runs, not to parse arguments or print help: each is
 * required on the first access to its default export. onnxruntime-node loads its native library, protobufjs and
 * cli-progress their module trees: loaded eagerly, the three took `attnopt --help` from 0.21 s to 0.27 s of CPU
 * time (node alone: 0.10 s).
 * Only default imports whose properties are read (`ort.InferenceSession`) are supported: any other import of
 * them fails the build.
 */
export const LOADED_ON_FIRST_USE = ['onnxruntime-node', 'protobufjs/minimal.js', 'cli-progress'] as const;

/** The module standing for a package of LOADED_ON_FIRST_USE: a proxy that requires it when first read. */
export function onFirstUseSource(specifier: string): string {
  return [
    "import { createRequire } from 'node:module';",
    'let loaded;',
    `const load = () => (loaded ??= createRequire(import.meta.url)(${JSON.stringify(specifier)}));`,
    'export default new Proxy({}, {',
    '  get: (_, key) => Reflect.get(load(), key),',
    '  set: (_, key, value) => Reflect.set(load(), key, value),',
    '  has: (_, key) => Reflect.has(load(), key),',
    '});',
    '',
  ].join('\n');
}
