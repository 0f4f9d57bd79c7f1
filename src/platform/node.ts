/** Node host: Dawn through the `webgpu` package, shaders read from the repository's shaders/ folder. */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { create, globals } from 'webgpu';
import type { Platform } from './platform.js';

const shaderDir = fileURLToPath(new URL('../../shaders/', import.meta.url));

/**
 * Worker threads for lavapipe (Mesa's software Vulkan driver; ignored by real GPUs) unless the user set
 * LP_NUM_THREADS. Its default, one per core, leaves a dispatch waiting on whichever worker the OS has
 * descheduled for our own thread; four per core measured 30 % faster training and 40 % faster matmul
 * on 2 cores (bench/train.bench.ts, bench/matmul.bench.ts). Read when the Vulkan device is created.
 */
function lavapipeThreads(cores = availableParallelism()): number {
  return Math.min(32, 4 * Math.max(1, cores));
}

export function nodePlatform(): Platform {
  Object.assign(globalThis, globals);
  if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = '/tmp';
  if (!process.env.LP_NUM_THREADS) process.env.LP_NUM_THREADS = String(lavapipeThreads());
  let instance: GPU | null = create([]);
  return {
    name: 'node',
    async requestAdapter(options) {
      if (!instance) instance = create([]);
      return instance.requestAdapter(options);
    },
    async loadShader(family) {
      return readFile(`${shaderDir}${family}.wgsl`, 'utf8');
    },
    missingAdapterHelp:
      'Dawn found no WebGPU adapter. On a machine without a GPU, install Mesa\'s software Vulkan driver ' +
      '(lavapipe): run `bash scripts/setup-system.sh` (Debian 12 needs mesa-vulkan-drivers from ' +
      'bookworm-backports; Ubuntu 24.04 and Debian 13 need libvulkan1 and mesa-vulkan-drivers).',
    release() {
      instance = null;
    },
  };
}
