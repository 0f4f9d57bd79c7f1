/** Entry point for a browser page: WebGPU through navigator.gpu, shaders fetched relative to the page. */
import { initGpu, shutdownGpu, type GpuRuntime } from './gpu/encoder.js';
import { browserPlatform } from './platform/browser.js';

export * from './index.js';
export { browserPlatform };

/**
 * Acquires the GPU (once) and fetches and compiles every shader from `shaderBase` (a URL relative to
 * the page, ending in '/'). Throws with the flag or the secure-context hint when there is no adapter.
 */
export async function init(shaderBase = './shaders/'): Promise<GpuRuntime> {
  return initGpu(browserPlatform(shaderBase));
}

/** Destroys the device (the page can init() again afterwards). */
export function shutdown(): void {
  shutdownGpu();
}
