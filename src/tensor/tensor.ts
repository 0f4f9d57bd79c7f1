/**
 * Tensor: a contiguous n-d array in a pooled GPU buffer, with what autograd needs (requiresGrad,
 * grad, the node that produced it). Tensors made inside `scope()` are released when it ends unless
 * returned or kept; parameters and optimizer state are kept.
 */
import { gpu } from '../gpu/encoder.js';
import { checkShape, formatShape, numel, type Shape } from './shape.js';
import type { GradNode } from '../autograd/node.js';
import { backward } from '../autograd/backward.js';

export type DType = 'f32' | 'u32' | 'i32';
export type TypedArrayOf<D extends DType> = D extends 'f32' ? Float32Array : D extends 'u32' ? Uint32Array : Int32Array;

/** A GPU buffer shared by a tensor and its reshaped views. */
class Storage {
  refs = 1;
  constructor(public buffer: GPUBuffer | null, readonly bytes: number) {}
}

interface ScopeFrame {
  tensors: Set<Tensor>;
}
const scopes: ScopeFrame[] = [];

export class Tensor {
  readonly shape: Shape;
  readonly dtype: DType;
  readonly size: number;
  requiresGrad = false;
  grad: Tensor | null = null;
  /** The op that produced this tensor, when it is part of a graph that needs gradients. */
  node: GradNode | null = null;
  /** Kept tensors outlive every scope; they are released only by dispose(). */
  kept = false;
  /** Optional name, shown in errors (parameters get theirs from the module tree). */
  name = '';
  private storage: Storage | null;

  private constructor(shape: Shape, dtype: DType, storage: Storage) {
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = numel(shape);
    this.storage = storage;
    scopes.at(-1)?.tensors.add(this);
  }

  /** An uninitialised tensor in a pooled buffer. */
  static empty(shape: Shape, dtype: DType = 'f32'): Tensor {
    checkShape(shape);
    const bytes = Math.max(numel(shape), 1) * 4;
    return new Tensor(shape, dtype, new Storage(gpu().pool.acquire(bytes), bytes));
  }

  /** A tensor holding `data` (copied to the GPU). */
  static fromArray(data: ArrayLike<number>, shape: Shape, dtype: DType = 'f32'): Tensor {
    checkShape(shape);
    if (data.length !== numel(shape)) {
      throw new Error(`${data.length} values do not fill a tensor of shape ${formatShape(shape)} (${numel(shape)} values)`);
    }
    const t = Tensor.empty(shape, dtype);
    const typed = dtype === 'f32' ? Float32Array.from(data) : dtype === 'u32' ? Uint32Array.from(data) : Int32Array.from(data);
    if (typed.length > 0) gpu().upload(t.buffer, typed);
    return t;
  }

  get buffer(): GPUBuffer {
    const buffer = this.storage?.buffer;
    if (!buffer) throw new Error(`tensor ${this.describe()} was used after it was released (outside its scope, or disposed)`);
    return buffer;
  }

  get released(): boolean {
    return !this.storage?.buffer;
  }

  get rank(): number {
    return this.shape.length;
  }

  describe(): string {
    return `${this.name ? this.name + ' ' : ''}${formatShape(this.shape)} ${this.dtype}`;
  }

  /** A tensor of another shape over the same buffer (no copy, no gradient link: see ops/view.ts). */
  /** Whether another tensor views the same storage (so writing into this one would change it too). */
  get sharesStorage(): boolean {
    return (this.storage?.refs ?? 0) > 1;
  }

  viewAs(shape: Shape): Tensor {
    if (numel(shape) !== this.size) {
      throw new Error(`cannot view ${this.describe()} as ${formatShape(shape)}: sizes differ (${this.size} vs ${numel(shape)})`);
    }
    const storage = this.storage;
    if (!storage?.buffer) throw new Error(`cannot view ${this.describe()}: it was released`);
    storage.refs++;
    return new Tensor(shape, this.dtype, storage);
  }

  /** Copies the values to the host. */
  async toArray(): Promise<TypedArrayOf<this['dtype']>> {
    const bytes = this.size * 4;
    const data = bytes ? await gpu().download(this.buffer, bytes) : new ArrayBuffer(0);
    const array = this.dtype === 'f32' ? new Float32Array(data) : this.dtype === 'u32' ? new Uint32Array(data) : new Int32Array(data);
    return array as TypedArrayOf<this['dtype']>;
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item() needs a tensor with one element, got ${this.describe()}`);
    return (await this.toArray())[0];
  }

  /** Reverse-mode gradients of this scalar into every tensor with requiresGrad (accumulated in .grad). */
  backward(seed?: Tensor): void {
    backward(this, seed);
  }

  /** Marks the tensor as outliving every scope. */
  keep(): this {
    this.kept = true;
    return this;
  }

  /** Returns the buffer to the pool now (views keep it alive until they are released too). */
  dispose(): void {
    const storage = this.storage;
    if (!storage) return;
    this.storage = null;
    this.node = null;
    if (--storage.refs === 0 && storage.buffer) {
      gpu().releaseBuffer(storage.buffer);
      storage.buffer = null;
    }
  }
}

/** Runs `fn`; tensors it creates are released at the end unless they are returned or kept. */
export function scope<T>(fn: () => T): T {
  const frame: ScopeFrame = { tensors: new Set() };
  scopes.push(frame);
  let result: T;
  try {
    result = fn();
  } catch (error) {
    endScope(frame, undefined);
    throw error;
  }
  if (result instanceof Promise) {
    throw new Error('scope() takes a synchronous function; use scopeAsync() for async work');
  }
  endScope(frame, result);
  return result;
}

/** How many scopes are open now (0 outside any): a check that every scope ended. */
export function openScopeCount(): number {
  return scopes.length;
}

/** As scope(), for an async function. Do not interleave two async scopes. */
export async function scopeAsync<T>(fn: () => Promise<T>): Promise<T> {
  const frame: ScopeFrame = { tensors: new Set() };
  scopes.push(frame);
  let result: T;
  try {
    result = await fn();
  } catch (error) {
    endScope(frame, undefined);
    throw error;
  }
  endScope(frame, result);
  return result;
}

function endScope(frame: ScopeFrame, result: unknown): void {
  const index = scopes.lastIndexOf(frame);
  if (index !== scopes.length - 1) {
    // Take the frame out anyway: left on the stack, it would collect every later tensor made outside a scope.
    if (index >= 0) scopes.splice(index, 1);
    for (const t of frame.tensors) if (!t.kept && !t.released) t.dispose();
    throw new Error('scopes ended out of order (an async scope interleaved with another); its tensors were released');
  }
  scopes.pop();
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors, 0);
  const parent = scopes.at(-1);
  for (const t of frame.tensors) {
    if (t.kept || t.released) continue;
    if (survivors.has(t)) parent?.tensors.add(t);
    else t.dispose();
  }
}

function collectTensors(value: unknown, into: Set<Tensor>, depth: number): void {
  if (depth > 4 || value === null || typeof value !== 'object') return;
  if (value instanceof Tensor) {
    into.add(value);
    if (value.grad) into.add(value.grad);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collectTensors(v, into, depth + 1);
  else if (value instanceof Map) for (const v of value.values()) collectTensors(v, into, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectTensors(v, into, depth + 1);
  }
}

/** Removes a tensor from the scope it was made in, so it outlives it (the grad of a parameter, say). */
export function adopt(t: Tensor): Tensor {
  for (const frame of scopes) frame.tensors.delete(t);
  return t.keep();
}
