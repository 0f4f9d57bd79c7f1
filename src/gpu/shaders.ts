/**
 * Loads shaders/<family>.wgsl by name and reads its interface: every `@binding` line (name, kind)
 * and the fields of the uniform struct, so that a kernel descriptor that names a missing binding, or a
 * dispatch that passes the wrong uniforms, fails with the file and entry point named.
 */

/** Every kernel family; one file shaders/<family>.wgsl and one src/ops/<family>.ts each. */
export const KERNEL_FAMILIES = [
  'elementwise',
  'reduce',
  'matmul',
  'conv2d',
  'batchnorm',
  'pool',
  'shortcut',
  'mask',
  'loss',
  'optim',
  'gather',
] as const;
/**
 * Families whose kernels exchange values within a subgroup (`enable subgroups;`). They are loaded only
 * when the device has subgroups of one fixed size; ops fall back to the portable family otherwise.
 */
export const SUBGROUP_FAMILIES = ['conv2d_subgroup', 'matmul_subgroup'] as const;

export type KernelFamily = (typeof KERNEL_FAMILIES)[number] | (typeof SUBGROUP_FAMILIES)[number];

export type BindingKind = 'uniform' | 'read' | 'read_write';

export interface BindingInfo {
  name: string;
  binding: number;
  kind: BindingKind;
}

export interface UniformField {
  name: string;
  type: 'u32' | 'i32' | 'f32';
}

export interface ShaderInfo {
  family: string;
  source: string;
  module: GPUShaderModule;
  bindings: Map<string, BindingInfo>;
  /** Fields of the struct bound as `var<uniform>`, in memory order (all 4-byte scalars). */
  uniformFields: UniformField[];
  entryPoints: Set<string>;
}

const bindingPattern =
  /@group\(0\)\s*@binding\((\d+)\)\s*var(?:<\s*(uniform|storage)\s*(?:,\s*(read|read_write))?\s*>)?\s+(\w+)\s*:\s*([\w<>, ]+);/g;
const entryPattern = /@compute[^f]*fn\s+(\w+)/g;

export function parseShader(family: string, source: string): Omit<ShaderInfo, 'module'> {
  const bindings = new Map<string, BindingInfo>();
  let uniformType: string | null = null;
  for (const m of source.matchAll(bindingPattern)) {
    const [, binding, space, access, name, type] = m;
    const kind: BindingKind = space === 'uniform' ? 'uniform' : access === 'read_write' ? 'read_write' : 'read';
    if (bindings.has(name)) throw new Error(`${family}.wgsl declares binding '${name}' twice`);
    bindings.set(name, { name, binding: Number(binding), kind });
    if (kind === 'uniform') {
      if (uniformType) throw new Error(`${family}.wgsl: one uniform binding per file is supported`);
      uniformType = type.trim();
    }
  }
  const uniformFields: UniformField[] = [];
  if (uniformType) {
    const struct = new RegExp(`struct\\s+${uniformType}\\s*\\{([^}]*)\\}`).exec(source);
    if (!struct) throw new Error(`${family}.wgsl: uniform struct ${uniformType} not found`);
    for (const field of struct[1].replace(/\/\/[^\n]*/g, '').split(',')) {
      const f = field.trim();
      if (!f) continue;
      const fm = /^(\w+)\s*:\s*(u32|i32|f32)$/.exec(f);
      if (!fm) throw new Error(`${family}.wgsl: uniform field '${f}' must be a u32, i32 or f32 scalar`);
      uniformFields.push({ name: fm[1], type: fm[2] as UniformField['type'] });
    }
  }
  const entryPoints = new Set<string>();
  for (const m of source.matchAll(entryPattern)) entryPoints.add(m[1]);
  return { family, source, bindings, uniformFields, entryPoints };
}
