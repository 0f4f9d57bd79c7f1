/** Memory checks against the runtime's counters: live bytes and buffers, createBuffer and createBindGroup calls. */
import { gpu } from '../../src/gpu/encoder.js';

export interface MemorySnapshot {
  liveBytes: number;
  liveBuffers: number;
  allocations: number;
  /** Lavapipe maps memory for every bind group, so these must stop growing too (src/gpu/encoder.ts). */
  bindGroups: number;
}

export function memorySnapshot(): MemorySnapshot {
  const { liveBytes, liveBuffers, allocations, bindGroups } = gpu().stats();
  return { liveBytes, liveBuffers, allocations, bindGroups };
}

/** Runs `fn` and throws if it leaves more (or fewer) live bytes or buffers than before. */
export async function assertNoLeak(label: string, fn: () => void | Promise<void>): Promise<void> {
  const before = memorySnapshot();
  await fn();
  const after = memorySnapshot();
  if (after.liveBytes !== before.liveBytes || after.liveBuffers !== before.liveBuffers) {
    throw new Error(
      `${label}: live memory went from ${before.liveBytes} bytes in ${before.liveBuffers} buffers ` +
        `to ${after.liveBytes} bytes in ${after.liveBuffers} buffers`,
    );
  }
}
