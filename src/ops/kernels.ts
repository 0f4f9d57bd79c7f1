/** Helpers shared by the op families: the standard 1-D dispatch. */
import { gpu, grid1d } from '../gpu/encoder.js';
import type { KernelSpec } from '../gpu/pipelines.js';

export const WG = 256;

/** Dispatches `count` invocations of a kernel whose workgroup size is the override WG (default 256). */
export function run1d(
  spec: KernelSpec,
  buffers: Record<string, GPUBuffer>,
  params: Record<string, number> | null,
  count: number,
): void {
  const g = gpu();
  g.dispatch(g.kernel(spec), buffers, params, grid1d(count, WG));
}
