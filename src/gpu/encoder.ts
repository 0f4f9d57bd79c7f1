/**
 * The GPU runtime: one open command encoder and compute pass that every dispatch is recorded into,
 * a per-flush uniform arena, the buffer pool and readbacks. Nothing outside src/gpu touches WebGPU.
 */
import type { Platform } from '../platform/platform.js';
import { acquireDevice, GpuError, type AcquiredDevice } from './device.js';
import { BufferPool, type PoolStats } from './pool.js';
import { buildKernel, kernelKey, UNIFORM_SLOT_BYTES, type Kernel, type KernelSpec } from './pipelines.js';
import { KERNEL_FAMILIES, SUBGROUP_FAMILIES, parseShader, type KernelFamily, type ShaderInfo } from './shaders.js';

/** Uniform slots per flush; a step with more dispatches flushes early. */
const ARENA_SLOTS = 2048;
/** Dispatches recorded before a submit, so the GPU starts while the CPU still encodes. */
const DISPATCHES_PER_SUBMIT = 256;

/** One dispatch's GPU time, from timestamp queries. */
export interface ProfileEntry {
  label: string;
  /** The `dims` uniforms of the dispatch, for telling layers apart. */
  params: Readonly<Record<string, number>> | null;
  ns: number;
}

/**
 * Bind groups kept for reuse. Lavapipe backs every bind group with its own memory mapping, freed only
 * once the JS wrapper is collected, and a process has at most 65,530 mappings (vm.max_map_count): a
 * bind group per dispatch crashed a loop that queued about 190 ResNet-20 steps without waiting for
 * the GPU. Pooled buffers recur from step to step, so a step's bind groups are the last step's.
 */
const BIND_GROUP_CACHE = 8192;

/** Workgroup size of the subgroup kernels' layout probe: that of the 3×3 convolutions (src/ops/conv2d.ts). */
const SUBGROUP_PROBE_WG = 64;

/** Timestamp pairs per query set; profiling flushes when one fills. */
const PROFILE_QUERIES = 512;

interface ProfileState {
  querySet: GPUQuerySet;
  used: number;
  labels: { label: string; params: Readonly<Record<string, number>> | null }[];
  /** Per flush: the resolve target (GPU-only) and its mappable copy, destroyed when read. */
  pending: { resolved: GPUBuffer; buffer: GPUBuffer; labels: ProfileState['labels'] }[];
}

export interface GpuStats extends PoolStats {
  dispatches: number;
  /** createBindGroup calls since start: flat across training steps when the cache works. */
  bindGroups: number;
  submits: number;
  readbacks: number;
  pipelines: number;
  /** Mappable buffers kept for readbacks (released by releasePooledMemory). */
  stagingBytes: number;
  stagingBuffers: number;
  /** Values the runtime holds that were made from a buffer's contents (gpu().derived): packed conv weights. */
  derivedValues: number;
}

/** What gpu().derived holds: anything that gives its GPU memory back on dispose (a kept Tensor). */
export interface DerivedValue {
  dispose(): void;
}

export class GpuRuntime {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  readonly adapterInfo: AcquiredDevice['adapterInfo'];
  readonly limits: GPUSupportedLimits;
  /** Fixed subgroup size, or 0 when the subgroup kernels cannot be used. */
  get subgroupSize(): number {
    return claimedSubgroupSize ?? this.subgroups;
  }
  private subgroups: number;
  private readonly shaders = new Map<string, ShaderInfo>();
  private readonly kernels = new Map<string, Kernel>();
  private readonly uniformBuffer: GPUBuffer;
  private readonly arena = new ArrayBuffer(ARENA_SLOTS * UNIFORM_SLOT_BYTES);
  private readonly arenaU32 = new Uint32Array(this.arena);
  private readonly arenaI32 = new Int32Array(this.arena);
  private readonly arenaF32 = new Float32Array(this.arena);
  private slotsUsed = 0;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private recorded = 0;
  private lastLabel = '(nothing yet)';
  /** Mappable buffers for readbacks, kept between them (a checkpoint's download uses one per tensor size class). */
  private readonly staging: BufferPool;
  private counters = { dispatches: 0, submits: 0, readbacks: 0, bindGroups: 0 };
  private readonly bindGroups = new Map<Kernel, Map<string, GPUBindGroup>>();
  private bindGroupCount = 0;
  private profiling: ProfileState | null = null;
  /** Each buffer's last write, numbered in recording order (see derived). */
  private readonly lastWrite = new WeakMap<GPUBuffer, number>();
  private writes = 0;
  private readonly derivedValues = new Map<GPUBuffer, Map<string, { stamp: number; value: DerivedValue }>>();

  private constructor(private readonly acquired: AcquiredDevice, private readonly platform: Platform) {
    this.device = acquired.device;
    this.adapterInfo = acquired.adapterInfo;
    this.limits = acquired.device.limits;
    this.subgroups = acquired.subgroupSize;
    this.pool = new BufferPool(this.device, Math.min(this.limits.maxStorageBufferBindingSize, this.limits.maxBufferSize));
    this.staging = new BufferPool(this.device, this.limits.maxBufferSize, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, 'staging');
    this.uniformBuffer = this.device.createBuffer({
      label: 'uniform-arena',
      size: this.arena.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
  }

  static async create(platform: Platform): Promise<GpuRuntime> {
    const runtime = new GpuRuntime(await acquireDevice(platform), platform);
    await runtime.loadShaders();
    if (runtime.subgroups && !(await runtime.subgroupsLaidOut())) runtime.dropSubgroupKernels();
    return runtime;
  }

  /**
   * Whether subgroups are runs of SUBGROUP_PROBE_WG / SG consecutive invocations with lane = local index
   * mod SG, as the subgroup kernels assume (conv2d_subgroup.wgsl, subgroup_layout): a device where
   * they are not falls back to the portable kernels instead of computing wrong edge columns.
   */
  private async subgroupsLaidOut(): Promise<boolean> {
    // At least one whole subgroup per workgroup, so that a size above 64 is judged on its layout too.
    const wg = Math.max(SUBGROUP_PROBE_WG, this.subgroups);
    const count = 4 * wg;
    const out = this.pool.acquire(count * 4, 'subgroup probe');
    try {
      const kernel = this.kernel({ family: 'conv2d_subgroup', entry: 'subgroup_layout', bindings: ['y'], overrides: { WG: wg, SG: this.subgroups } });
      this.dispatch(kernel, { y: out }, null, [4]);
      const seen = new Float32Array(await this.download(out, count * 4));
      return seen.every((v) => v === 1);
    } finally {
      this.pool.release(out);
    }
  }

  private dropSubgroupKernels(): void {
    for (const family of SUBGROUP_FAMILIES) this.shaders.delete(family);
    this.subgroups = 0;
  }

  /** Loads and compiles every family in the manifest; a missing file or a WGSL error fails here. */
  private async loadShaders(): Promise<void> {
    const families: readonly KernelFamily[] = this.subgroupSize ? [...KERNEL_FAMILIES, ...SUBGROUP_FAMILIES] : KERNEL_FAMILIES;
    for (const family of families) {
      const source = await this.platform.loadShader(family);
      const parsed = parseShader(family, source);
      const module = this.device.createShaderModule({ label: `${family}.wgsl`, code: source });
      const info = await module.getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === 'error');
      if (errors.length) {
        throw new GpuError(
          `${family}.wgsl does not compile:\n` + errors.map((e) => `  line ${e.lineNum}:${e.linePos} ${e.message}`).join('\n'),
        );
      }
      this.shaders.set(family, { ...parsed, module });
    }
  }

  /** Whether a kernel family was loaded (subgroup families need a fixed subgroup size). */
  hasFamily(family: KernelFamily): boolean {
    return this.shaders.has(family);
  }

  shader(family: KernelFamily): ShaderInfo {
    const s = this.shaders.get(family);
    if (!s) throw new Error(`shader family '${family}' is not loaded`);
    return s;
  }

  /** A cached pipeline for the descriptor; built on first use. */
  kernel(spec: KernelSpec): Kernel {
    const key = kernelKey(spec);
    let k = this.kernels.get(key);
    if (!k) {
      k = buildKernel(this.device, this.shader(spec.family), spec);
      this.kernels.set(key, k);
    }
    return k;
  }

  /**
   * Records one dispatch. `buffers` maps binding names to buffers; `params` gives every field of the
   * uniform struct by name. Each dispatch gets its own uniform slot: queue.writeBuffer runs before
   * any command buffer submitted after it, so one shared uniform rewritten per dispatch would be
   * read with the last values by every dispatch.
   */
  dispatch(
    kernel: Kernel,
    buffers: Readonly<Record<string, GPUBuffer>>,
    params: Readonly<Record<string, number>> | null,
    workgroups: readonly [number, number?, number?],
  ): void {
    if (this.slotsUsed === ARENA_SLOTS || this.recorded >= DISPATCHES_PER_SUBMIT) this.flush();
    const bound: GPUBuffer[] = [];
    for (const slot of kernel.slots) {
      if (slot.kind === 'uniform') continue;
      const buffer = buffers[slot.name];
      if (!buffer) throw new Error(`${kernel.label}: no buffer given for binding '${slot.name}'`);
      if (slot.kind === 'read_write') this.wrote(buffer);
      bound.push(buffer);
    }
    const [x, y = 1, z = 1] = workgroups;
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max) {
      throw new Error(`${kernel.label}: grid [${x}, ${y}, ${z}] exceeds ${max} workgroups per dimension`);
    }
    const offset = kernel.uniform ? this.writeUniforms(kernel, params) : 0;
    if (x === 0 || y === 0 || z === 0) return;
    const bindGroup = this.bindGroup(kernel, bound);
    const pass = this.profiling ? this.openTimedPass(kernel.label, params) : this.openPass();
    pass.setPipeline(kernel.pipeline);
    if (kernel.uniform) pass.setBindGroup(0, bindGroup, [offset]);
    else pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (this.profiling) this.closePass();
    this.recorded++;
    this.counters.dispatches++;
    this.lastLabel = kernel.label;
  }

  /** The bind group of `kernel` over `bound` (its storage buffers in slot order), made once and reused. */
  private bindGroup(kernel: Kernel, bound: readonly GPUBuffer[]): GPUBindGroup {
    let byBuffers = this.bindGroups.get(kernel);
    if (!byBuffers) this.bindGroups.set(kernel, (byBuffers = new Map()));
    const key = bound.map((buffer) => this.pool.id(buffer)).join(',');
    let group = byBuffers.get(key);
    if (group) return group;
    if (this.bindGroupCount >= BIND_GROUP_CACHE) this.forgetBindGroups();
    let next = 0;
    const entries: GPUBindGroupEntry[] = kernel.slots.map((slot) =>
      slot.kind === 'uniform'
        ? { binding: slot.binding, resource: { buffer: this.uniformBuffer, size: UNIFORM_SLOT_BYTES } }
        : { binding: slot.binding, resource: { buffer: bound[next++] } },
    );
    group = this.device.createBindGroup({ label: kernel.label, layout: kernel.layout, entries });
    byBuffers.set(key, group);
    this.bindGroupCount++;
    this.counters.bindGroups++;
    return group;
  }

  /**
   * What `make` computes from the contents of `source` (a conv's packed weights), made once and reused until
   * `source` is written again: by a dispatch that binds it read_write, an upload, a copy or a clear, all
   * seen here in recording order, so a reused value is never stale. The runtime owns the value (callers do
   * not dispose it; make it kept so no scope does): it goes when `source` is released to the pool, when it
   * is remade, and at releasePooledMemory.
   */
  derived<T extends DerivedValue>(source: GPUBuffer, key: string, make: () => T): T {
    const stamp = this.lastWrite.get(source) ?? 0;
    let byKey = this.derivedValues.get(source);
    const held = byKey?.get(key);
    if (held?.stamp === stamp) return held.value as T;
    if (held) {
      byKey!.delete(key);
      held.value.dispose();
    }
    const value = make();
    if (!byKey) this.derivedValues.set(source, (byKey = new Map()));
    byKey.set(key, { stamp, value });
    return value;
  }

  /** Returns a buffer to the pool (a tensor's storage, when its last view is disposed), with what was derived from it. */
  releaseBuffer(buffer: GPUBuffer): void {
    this.dropDerived(buffer);
    this.pool.release(buffer);
  }

  private dropDerived(source: GPUBuffer): void {
    const byKey = this.derivedValues.get(source);
    if (!byKey) return;
    this.derivedValues.delete(source);
    for (const { value } of byKey.values()) value.dispose();
  }

  /** Counts a write of `buffer` (see derived). */
  private wrote(buffer: GPUBuffer): void {
    this.lastWrite.set(buffer, ++this.writes);
  }

  /**
   * Gives the pooled (released, unused) buffers back to the device, after submitting the recorded work: between
   * jobs of different shapes (the models of a benchmark), where the next one would not reuse them. Values held by
   * `derived` go first, so their buffers are given back too.
   */
  releasePooledMemory(): void {
    for (const source of [...this.derivedValues.keys()]) this.dropDerived(source);
    this.flush();
    this.forgetBindGroups();
    this.pool.trim();
    this.staging.trim();
  }

  /** Drops every cached bind group (the GPU keeps those it still needs until their work is done). */
  private forgetBindGroups(): void {
    this.bindGroups.clear();
    this.bindGroupCount = 0;
  }

  private writeUniforms(kernel: Kernel, params: Readonly<Record<string, number>> | null): number {
    const fields = kernel.shader.uniformFields;
    if (!params) throw new Error(`${kernel.label}: the kernel takes uniforms (${fields.map((f) => f.name).join(', ')})`);
    const base = this.slotsUsed * (UNIFORM_SLOT_BYTES / 4);
    let given = 0;
    for (let i = 0; i < fields.length; i++) {
      const { name, type } = fields[i];
      const value = params[name];
      // Fields an entry point does not use may be left out; they read as 0.
      if (value === undefined) {
        this.arenaU32[base + i] = 0;
        continue;
      }
      given++;
      if (type === 'f32') this.arenaF32[base + i] = value;
      else if (type === 'i32') {
        if (!Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31) throw new Error(`${kernel.label}: uniform '${name}' = ${value} is not an i32`);
        this.arenaI32[base + i] = value;
      } else {
        // A typed array would wrap 2^32 to 0 silently.
        if (!Number.isInteger(value) || value < 0 || value >= 2 ** 32) throw new Error(`${kernel.label}: uniform '${name}' = ${value} is not a u32`);
        this.arenaU32[base + i] = value;
      }
    }
    if (given !== Object.keys(params).length) {
      const unknown = Object.keys(params).filter((k) => !fields.some((f) => f.name === k));
      throw new Error(`${kernel.label}: unknown uniforms ${unknown.join(', ')} (the struct has ${fields.map((f) => f.name).join(', ')})`);
    }
    return this.slotsUsed++ * UNIFORM_SLOT_BYTES;
  }

  private openPass(): GPUComputePassEncoder {
    this.encoder ??= this.device.createCommandEncoder({ label: 'step' });
    this.pass ??= this.encoder.beginComputePass();
    return this.pass;
  }

  /** In profiling mode every dispatch gets its own pass with timestamps at its start and end. */
  private openTimedPass(label: string, params: Readonly<Record<string, number>> | null): GPUComputePassEncoder {
    const p = this.profiling!;
    if (p.used === PROFILE_QUERIES) this.flush();
    this.closePass();
    const index = p.used++;
    p.labels.push({ label, params: params ? { ...params } : null });
    this.pass = this.encoder!.beginComputePass({
      timestampWrites: { querySet: p.querySet, beginningOfPassWriteIndex: 2 * index, endOfPassWriteIndex: 2 * index + 1 },
    });
    return this.pass;
  }

  private resolveProfile(encoder: GPUCommandEncoder): void {
    const p = this.profiling;
    if (!p || p.used === 0) return;
    const bytes = p.used * 16;
    const resolved = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const readable = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    encoder.resolveQuerySet(p.querySet, 0, p.used * 2, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, readable, 0, bytes);
    p.pending.push({ resolved, buffer: readable, labels: p.labels });
    p.labels = [];
    p.used = 0;
  }

  /** Starts timing every dispatch on the GPU (needs the timestamp-query feature). */
  startProfiling(): void {
    if (!this.device.features.has('timestamp-query')) throw new Error('profiling needs the timestamp-query feature, which this device lacks');
    this.flush();
    this.profiling = {
      querySet: this.device.createQuerySet({ type: 'timestamp', count: 2 * PROFILE_QUERIES }),
      used: 0,
      labels: [],
      pending: [],
    };
  }

  /** Stops timing and returns one entry per dispatch since startProfiling(). */
  async stopProfiling(): Promise<ProfileEntry[]> {
    const p = this.profiling;
    if (!p) throw new Error('stopProfiling() without startProfiling()');
    this.flush();
    this.profiling = null;
    const entries: ProfileEntry[] = [];
    for (const { resolved, buffer, labels } of p.pending) {
      await buffer.mapAsync(GPUMapMode.READ);
      const times = new BigUint64Array(buffer.getMappedRange());
      labels.forEach((l, i) => entries.push({ ...l, ns: Number(times[2 * i + 1] - times[2 * i]) }));
      buffer.unmap();
      buffer.destroy();
      resolved.destroy();
    }
    p.querySet.destroy();
    return entries;
  }

  private closePass(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder({ label: 'step' });
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    return this.encoder;
  }

  /** Writes the uniform arena and submits everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    const encoder = this.closePass();
    this.resolveProfile(encoder);
    if (this.slotsUsed > 0) {
      this.device.queue.writeBuffer(this.uniformBuffer, 0, this.arena, 0, this.slotsUsed * UNIFORM_SLOT_BYTES);
    }
    this.device.queue.submit([encoder.finish()]);
    this.encoder = null;
    this.slotsUsed = 0;
    this.recorded = 0;
    this.counters.submits++;
    this.acquired.checkErrors(this.lastLabel);
  }

  /**
   * Copies host data into a buffer. Recorded work is submitted first: writeBuffer would otherwise
   * run before dispatches already recorded that still read the buffer's previous (pooled) contents.
   */
  upload(buffer: GPUBuffer, data: ArrayBufferView, byteOffset = 0): void {
    this.wrote(buffer);
    this.flush();
    this.device.queue.writeBuffer(buffer, byteOffset, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Copies `bytes` from a buffer back to the host (one submit and one map). */
  async download(buffer: GPUBuffer, bytes: number, byteOffset = 0): Promise<ArrayBuffer> {
    const [result] = await this.downloadMany([{ buffer, bytes, byteOffset }]);
    return result;
  }

  /** Several readbacks with one submit. */
  async downloadMany(items: readonly { buffer: GPUBuffer; bytes: number; byteOffset?: number }[]): Promise<ArrayBuffer[]> {
    const encoder = this.closePass();
    const stagings = items.map(({ buffer, bytes, byteOffset = 0 }) => {
      const padded = Math.ceil(bytes / 4) * 4;
      const staging = this.staging.acquire(padded, 'a readback');
      if (padded > 0) encoder.copyBufferToBuffer(buffer, byteOffset, staging, 0, padded);
      return staging;
    });
    this.lastLabel = 'readback';
    this.flush();
    this.counters.readbacks++;
    const results = await Promise.all(
      stagings.map(async (staging, i) => {
        await staging.mapAsync(GPUMapMode.READ);
        const copy = staging.getMappedRange(0, Math.ceil(items[i].bytes / 4) * 4).slice(0, items[i].bytes);
        staging.unmap();
        this.staging.release(staging);
        return copy;
      }),
    );
    this.acquired.checkErrors('readback');
    return results;
  }

  /** Copies between buffers in the recorded stream (ends the open compute pass). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    if (bytes === 0) return;
    this.wrote(dst);
    this.closePass().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /** Zero-fills a buffer range in the recorded stream. */
  clear(buffer: GPUBuffer, byteOffset = 0, bytes?: number): void {
    this.wrote(buffer);
    this.closePass().clearBuffer(buffer, byteOffset, bytes);
  }

  /** Submits and waits until the GPU has finished everything so far (for timing). */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.acquired.checkErrors(this.lastLabel);
  }

  stats(): GpuStats {
    const { pooledBytes: stagingBytes, pooledBuffers: stagingBuffers } = this.staging.stats();
    let derivedValues = 0;
    for (const byKey of this.derivedValues.values()) derivedValues += byKey.size;
    return { ...this.pool.stats(), ...this.counters, pipelines: this.kernels.size, stagingBytes, stagingBuffers, derivedValues };
  }

  destroy(): void {
    this.releasePooledMemory();
    this.device.destroy();
    this.platform.release?.();
  }
}

let current: GpuRuntime | null = null;

/** Starts the engine on a platform (src/node.ts and src/browser.ts do this for you). */
export async function initGpu(platform: Platform): Promise<GpuRuntime> {
  if (!current) current = await GpuRuntime.create(platform);
  return current;
}

export function gpu(): GpuRuntime {
  if (!current) throw new Error('the GPU is not initialised: call init() first');
  return current;
}

export function hasGpu(): boolean {
  return current !== null;
}

export function shutdownGpu(): void {
  current?.destroy();
  current = null;
}

/**
 * Workgroup grid for `count` invocations of `workgroupSize` each, folded into two dimensions when
 * it exceeds the 65,535-per-dimension limit (WebGPU's maxComputeWorkgroupsPerDimension default).
 * Shaders recover the linear index as `gid.x + gid.y * nwg.x * WORKGROUP_SIZE`.
 */
export function grid1d(count: number, workgroupSize: number): [number, number] {
  const groups = Math.ceil(count / workgroupSize);
  if (groups <= foldLimit) return [groups, 1];
  const y = Math.ceil(groups / foldLimit);
  return [Math.ceil(groups / y), y];
}

let foldLimit = 65535;

let claimedSubgroupSize: number | null = null;

/**
 * Runs `record` (which only records dispatches) with the subgroup kernels built for `size` lanes while the device
 * runs its own width, as on a driver that compiles a pipeline narrower or wider than the adapter reports; tests
 * check that every subgroup kernel then writes NaN rather than plausible numbers.
 */
export function withClaimedSubgroupSize<T>(size: number, record: () => T): T {
  if (!gpu().subgroupSize) throw new Error('withClaimedSubgroupSize: this device runs no subgroup kernels');
  if (!(Number.isInteger(size) && size >= 1)) throw new Error(`withClaimedSubgroupSize: size must be a positive integer, got ${size}`);
  const previous = claimedSubgroupSize;
  claimedSubgroupSize = size;
  try {
    return record();
  } finally {
    claimedSubgroupSize = previous;
  }
}

/**
 * Runs `record` (which only records dispatches) with grid1d folding above `limit` workgroups per row instead
 * of 65,535, so tests reach every kernel's folded indexing with small tensors.
 */
export function withGridFoldLimit<T>(limit: number, record: () => T): T {
  if (!(Number.isInteger(limit) && limit >= 1 && limit <= 65535)) throw new Error(`withGridFoldLimit: limit must be 1..65535, got ${limit}`);
  const previous = foldLimit;
  foldLimit = limit;
  try {
    return record();
  } finally {
    foldLimit = previous;
  }
}
