/** Entry point for Node: Dawn's WebGPU through the `webgpu` package. */
import { initGpu, shutdownGpu, type GpuRuntime } from './gpu/encoder.js';
import { nodePlatform } from './platform/node.js';

export * from './index.js';

/** Acquires the GPU (once) and loads every shader. Throws with install instructions when there is no adapter. */
export async function init(): Promise<GpuRuntime> {
  return initGpu(nodePlatform());
}

/** Releases the device so the process can exit. */
export function shutdown(): void {
  shutdownGpu();
}
