/**
 * Kernels: a (family, entry point, bindings, override constants) descriptor, checked against the
 * shader's declarations and compiled once into a cached pipeline with an explicit layout.
 */
import type { ShaderInfo, BindingInfo, KernelFamily } from './shaders.js';

export interface KernelSpec {
  family: KernelFamily;
  entry: string;
  /** The bindings this entry point uses, by name; the uniform (if any) included. */
  bindings: readonly string[];
  /** WGSL `override` constants: tile sizes, op codes, workgroup sizes. */
  overrides?: Readonly<Record<string, number>>;
}

export interface Kernel {
  readonly spec: KernelSpec;
  readonly label: string;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  /** Bindings in the order of `spec.bindings`, with their numbers and kinds. */
  readonly slots: readonly BindingInfo[];
  readonly uniform: BindingInfo | null;
  readonly shader: ShaderInfo;
}

export function kernelKey(spec: KernelSpec): string {
  const o = spec.overrides ? Object.entries(spec.overrides).sort().map(([k, v]) => `${k}=${v}`).join(',') : '';
  return `${spec.family}.${spec.entry}[${spec.bindings.join(',')}]{${o}}`;
}

export const UNIFORM_SLOT_BYTES = 256;

export function buildKernel(device: GPUDevice, shader: ShaderInfo, spec: KernelSpec): Kernel {
  const label = `${spec.family}.${spec.entry}`;
  if (!shader.entryPoints.has(spec.entry)) {
    throw new Error(`${spec.family}.wgsl has no compute entry point '${spec.entry}' (it has: ${[...shader.entryPoints].join(', ')})`);
  }
  const slots = spec.bindings.map((name) => {
    const info = shader.bindings.get(name);
    if (!info) {
      throw new Error(`${label}: binding '${name}' is not declared in ${spec.family}.wgsl (declared: ${[...shader.bindings.keys()].join(', ')})`);
    }
    return info;
  });
  const uniform = slots.find((s) => s.kind === 'uniform') ?? null;
  const layout = device.createBindGroupLayout({
    label,
    entries: slots.map((s) => ({
      binding: s.binding,
      visibility: GPUShaderStage.COMPUTE,
      buffer:
        s.kind === 'uniform'
          ? { type: 'uniform', hasDynamicOffset: true, minBindingSize: UNIFORM_SLOT_BYTES }
          : { type: s.kind === 'read' ? 'read-only-storage' : 'storage' },
    })),
  });
  const pipeline = device.createComputePipeline({
    label,
    layout: device.createPipelineLayout({ label, bindGroupLayouts: [layout] }),
    compute: { module: shader.module, entryPoint: spec.entry, constants: { ...spec.overrides } },
  });
  return { spec, label, pipeline, layout, slots, uniform, shader };
}
