/**
 * Storage buffers pooled by size class. Released buffers are reused at once: the queue runs
 * commands in submission order, so a later dispatch that writes a reused buffer runs after every
 * earlier dispatch that read it (the one hazard, queue.writeBuffer, is handled in encoder.ts).
 * An acquire takes the oldest free buffer of its class, so which buffer a tensor gets depends on
 * which buffers are free, not on the order they were released in: every training step then uses
 * the same buffers in the same places, and the runtime's bind groups can be reused.
 */

export interface PoolStats {
  /** Bytes in buffers currently held by tensors. */
  liveBytes: number;
  liveBuffers: number;
  /** Bytes in released buffers waiting for reuse. */
  pooledBytes: number;
  pooledBuffers: number;
  /** createBuffer calls since start: flat across training steps when the pool works. */
  allocations: number;
}

const MIN_BYTES = 256;

/** Rounds up to one of four sizes per power of two (1, 1.25, 1.5, 1.75 × 2^k), so waste stays under 25 %. */
export function sizeClass(bytes: number): number {
  if (bytes <= MIN_BYTES) return MIN_BYTES;
  const octave = 2 ** Math.floor(Math.log2(bytes));
  const step = Math.max(octave / 4, MIN_BYTES);
  return Math.ceil(bytes / step) * step;
}

export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private readonly live = new Set<GPUBuffer>();
  private liveBytes = 0;
  private pooledBytes = 0;
  private pooledBuffers = 0;
  private allocations = 0;
  private readonly ids = new WeakMap<GPUBuffer, number>();

  /**
   * `usage` and `name` default to tensor storage; the runtime keeps a second pool of mappable buffers for readbacks
   * (MAP_READ | COPY_DST, named "staging").
   */
  constructor(
    private readonly device: GPUDevice,
    private readonly maxBufferSize: number,
    private readonly usage: GPUBufferUsageFlags = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    private readonly name = 'pool',
  ) {}

  acquire(bytes: number, label = 'tensor'): GPUBuffer {
    const size = sizeClass(bytes);
    if (size > this.maxBufferSize) {
      throw new Error(
        `cannot allocate ${bytes} bytes for ${label}: the device's largest ${this.name} buffer is ${this.maxBufferSize} bytes`,
      );
    }
    let buffer = this.free.get(size)?.pop();
    if (buffer) {
      this.pooledBytes -= size;
      this.pooledBuffers--;
    } else {
      buffer = this.device.createBuffer({ size, usage: this.usage, label: `${this.name}/${size}` });
      this.ids.set(buffer, this.allocations++);
    }
    this.live.add(buffer);
    this.liveBytes += size;
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    if (!this.live.delete(buffer)) throw new Error(`buffer ${buffer.label} released twice or not from this pool`);
    const size = buffer.size;
    this.liveBytes -= size;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    // Newest first, so pop() gives the oldest.
    const id = this.id(buffer);
    let at = list.length;
    while (at > 0 && this.id(list[at - 1]) < id) at--;
    list.splice(at, 0, buffer);
    this.pooledBytes += size;
    this.pooledBuffers++;
  }

  /** The buffer's number, in order of creation. */
  id(buffer: GPUBuffer): number {
    const id = this.ids.get(buffer);
    if (id === undefined) throw new Error(`buffer ${buffer.label} is not from this pool`);
    return id;
  }

  /** Destroys the pooled (unused) buffers. */
  trim(): void {
    for (const list of this.free.values()) for (const buffer of list) buffer.destroy();
    this.free.clear();
    this.pooledBytes = 0;
    this.pooledBuffers = 0;
  }

  stats(): PoolStats {
    return {
      liveBytes: this.liveBytes,
      liveBuffers: this.live.size,
      pooledBytes: this.pooledBytes,
      pooledBuffers: this.pooledBuffers,
      allocations: this.allocations,
    };
  }
}
