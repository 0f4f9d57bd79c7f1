/** Acquires the adapter and device, and turns WebGPU's asynchronous errors into exceptions. */
import type { Platform } from '../platform/platform.js';

export class GpuError extends Error {
  override name = 'GpuError';
}

/** Limits the engine asks for, capped by what the adapter offers. */
export const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxStorageBuffersPerShaderStage',
] as const;

export interface AcquiredDevice {
  adapter: GPUAdapter;
  device: GPUDevice;
  /**
   * The subgroup size when the device has subgroups of one fixed size (8 on lavapipe with 256-bit SIMD),
   * else 0. Kernels that exchange values across a subgroup are only used when it is fixed.
   */
  subgroupSize: number;
  adapterInfo: { vendor: string; architecture: string; description: string };
  /** Throws the first error WebGPU reported since the last call, naming what was running. */
  checkErrors(context: string): void;
}

export async function acquireDevice(platform: Platform): Promise<AcquiredDevice> {
  const adapter = await platform.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new GpuError(`no WebGPU adapter. ${platform.missingAdapterHelp}`);
  const info = adapter.info ?? ({} as GPUAdapterInfo);
  const adapterInfo = {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    description: info.description ?? '',
  };
  // Dawn's null backend returns an adapter whose shaders never run: results would be garbage.
  if (/null/i.test(adapterInfo.description) || /null/i.test(adapterInfo.vendor)) {
    throw new GpuError(`refusing Dawn's null backend (adapter '${adapterInfo.description}'). ${platform.missingAdapterHelp}`);
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) requiredLimits[name] = adapter.limits[name];
  const requiredFeatures: GPUFeatureName[] = [];
  const sizes = info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  const fixedSubgroup =
    adapter.features.has('subgroups') && sizes.subgroupMinSize !== undefined && sizes.subgroupMinSize === sizes.subgroupMaxSize
      ? sizes.subgroupMinSize
      : 0;
  if (fixedSubgroup) requiredFeatures.push('subgroups' as GPUFeatureName);
  // GPU-side timings of each dispatch, for the profiler and the layer benchmarks.
  if (adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures, label: 'sfp-gpu' });

  let pending: string | null = null;
  let lost: string | null = null;
  device.addEventListener('uncapturederror', (event) => {
    const error = (event as GPUUncapturedErrorEvent).error;
    pending ??= error.message;
  });
  void device.lost.then((info) => {
    lost = `${info.reason}: ${info.message}`;
  });
  return {
    adapter,
    device,
    subgroupSize: fixedSubgroup,
    adapterInfo,
    checkErrors(context) {
      if (lost) throw new GpuError(`GPU device lost (${lost}) while running ${context}`);
      if (pending) {
        const message = pending;
        pending = null;
        throw new GpuError(`WebGPU error while running ${context}: ${message}`);
      }
    },
  };
}
