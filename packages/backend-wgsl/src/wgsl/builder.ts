// A small WGSL shader builder (after ORT Web's ShaderHelper): a program declares its storage bindings and
// uniforms, asks for the helper functions it uses by name (only those are emitted), and gets a cache key.
// Template literals are used only for the kernel body.

/** The 4-byte scalar types a uniform field may have. */
export type UniformType = 'u32' | 'i32' | 'f32';
export type StorageAccess = 'read' | 'read_write';

export interface UniformField {
  readonly name: string;
  readonly type: UniformType;
}

export interface StorageBinding {
  readonly name: string;
  /** WGSL element type of the runtime-sized array. */
  readonly element: string;
  readonly access: StorageAccess;
  readonly binding: number;
}

/** A module-scope helper function: its code and the helpers it calls. */
export interface WgslHelper {
  readonly name: string;
  readonly code: string;
  readonly uses?: readonly string[];
}

/** Helpers shared by kernels; a shader gets only those it asks for. */
export const HELPERS: Readonly<Record<string, WgslHelper>> = {
  // tanh(x) for |x| <= 15 (tanh(15) = 1 in f32): some drivers compute tanh via exp and give NaN for large |x|.
  safe_tanh: {
    name: 'safe_tanh',
    code: 'fn safe_tanh(x: f32) -> f32 {\n  return tanh(clamp(x, -15.0, 15.0));\n}',
  },
};

/** A generated program: WGSL text, its bindings and uniforms, and the key a pipeline cache stores it under. */
export interface WgslProgram {
  /** Kernel name, used in error messages. */
  readonly name: string;
  readonly code: string;
  readonly cacheKey: string;
  readonly uniforms: readonly UniformField[];
  /** Storage bindings in binding order (the uniform block is binding `uniformBinding`). */
  readonly storage: readonly StorageBinding[];
  readonly uniformBinding: number;
  readonly workgroupSize: number;
  /** Bytes of workgroup memory the kernel declares. */
  readonly workgroupBytes: number;
  /** Device features the code needs (e.g. 'shader-f16'). */
  readonly features: readonly string[];
}

/** Packs uniform values (by field name) into the std140-compatible byte layout of the uniform struct. */
export function packUniforms(fields: readonly UniformField[], values: Readonly<Record<string, number>>): ArrayBuffer {
  const bytes = Math.max(16, Math.ceil((fields.length * 4) / 16) * 16);
  const buf = new ArrayBuffer(bytes);
  const view = new DataView(buf);
  fields.forEach((f, k) => {
    const v = values[f.name];
    if (v === undefined) throw new Error(`uniform ${f.name} has no value`);
    if (f.type === 'f32') view.setFloat32(k * 4, v, true);
    else if (f.type === 'i32') view.setInt32(k * 4, v, true);
    else view.setUint32(k * 4, v, true);
  });
  return buf;
}

export class ShaderBuilder {
  private readonly enables = new Set<string>();
  private readonly diagnostics = new Set<string>();
  private readonly builtins = new Map<string, string>();
  private readonly features = new Set<string>();
  private readonly uniforms: UniformField[] = [];
  private readonly storage: StorageBinding[] = [];
  private readonly helpers = new Map<string, string>();
  private readonly decls: string[] = [];
  private workgroupBytes = 0;

  constructor(readonly name: string) {}

  /** `enable f16;` and the device feature it needs. */
  enableF16(): this {
    this.enables.add('f16');
    this.features.add('shader-f16');
    return this;
  }

  /**
   * `enable subgroups;` and its device feature. Subgroup builtins are called here in control flow that is
   * uniform per subgroup but not per workgroup (rows handed out per subgroup), which WGSL's analysis cannot
   * prove: `diagnostic(off, subgroup_uniformity)` states that the kernel guarantees it.
   */
  enableSubgroups(): this {
    this.enables.add('subgroups');
    this.features.add('subgroups');
    this.diagnostics.add('diagnostic(off, subgroup_uniformity);');
    return this;
  }

  /** An extra parameter of the entry point, e.g. builtin('subgroup_size', 'sg_size'); returns its name. */
  builtin(builtin: string, name: string): string {
    this.builtins.set(name, `@builtin(${builtin}) ${name}: u32`);
    return name;
  }

  /** A uniform field; returns the WGSL expression that reads it. */
  uniform(name: string, type: UniformType): string {
    if (this.uniforms.some((u) => u.name === name)) throw new Error(`${this.name}: uniform ${name} declared twice`);
    this.uniforms.push({ name, type });
    return `u.${name}`;
  }

  /** A storage buffer `array<element>` at the next binding; returns its name. */
  storageArray(name: string, element: string, access: StorageAccess = 'read'): string {
    this.storage.push({ name, element, access, binding: this.storage.length });
    return name;
  }

  /** A `var<workgroup>` array; counts its bytes against the workgroup storage limit. */
  workgroupArray(name: string, element: 'f32' | 'f16', length: number): string {
    this.decls.push(`var<workgroup> ${name}: array<${element}, ${length}>;`);
    this.workgroupBytes += length * (element === 'f16' ? 2 : 4);
    return name;
  }

  /** A `var<workgroup>` atomic<u32> (4 bytes of workgroup memory). */
  workgroupAtomic(name: string): string {
    this.decls.push(`var<workgroup> ${name}: atomic<u32>;`);
    this.workgroupBytes += 4;
    return name;
  }

  /** A module-scope declaration (constants, generated functions). */
  declare(code: string): this {
    this.decls.push(code);
    return this;
  }

  /** Requests a helper from HELPERS (and what it uses); returns its name for the body to call. */
  helper(name: string): string {
    const h = HELPERS[name];
    if (!h) throw new Error(`${this.name}: unknown WGSL helper ${name}`);
    for (const dep of h.uses ?? []) this.helper(dep);
    if (!this.helpers.has(name)) this.helpers.set(name, h.code);
    return name;
  }

  /** Assembles the module: enables, bindings, uniforms, helpers, declarations and the entry point. */
  build(options: { workgroupSize: number; body: string; keyParts: readonly (string | number)[] }): WgslProgram {
    const lines: string[] = [];
    for (const e of this.enables) lines.push(`enable ${e};`);
    lines.push(...this.diagnostics);
    if (this.uniforms.length === 0) this.uniform('unused', 'u32');
    lines.push(`struct Uniforms {\n${this.uniforms.map((u) => `  ${u.name}: ${u.type},`).join('\n')}\n};`);
    for (const s of this.storage) {
      lines.push(`@group(0) @binding(${s.binding}) var<storage, ${s.access}> ${s.name}: array<${s.element}>;`);
    }
    const uniformBinding = this.storage.length;
    lines.push(`@group(0) @binding(${uniformBinding}) var<uniform> u: Uniforms;`);
    lines.push(...this.helpers.values(), ...this.decls);
    lines.push(
      `@compute @workgroup_size(${options.workgroupSize})\nfn main(${['@builtin(workgroup_id) wid: vec3<u32>', '@builtin(local_invocation_index) lid: u32', ...this.builtins.values()].join(', ')}) {\n${options.body}\n}`,
    );
    return {
      name: this.name,
      code: `${lines.join('\n\n')}\n`,
      cacheKey: [this.name, ...options.keyParts].join('|'),
      uniforms: [...this.uniforms],
      storage: [...this.storage],
      uniformBinding,
      workgroupSize: options.workgroupSize,
      workgroupBytes: this.workgroupBytes,
      features: [...this.features],
    };
  }
}
