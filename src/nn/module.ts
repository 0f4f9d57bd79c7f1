/**
 * Module: a tree of named parameters, buffers and children, with train/eval modes and a state dict
 * keyed by PyTorch's names (`layer1.0.conv1.weight`, `bn1.running_mean`).
 */
import { Tensor } from '../tensor/tensor.js';
import { formatShape, sameShape, type Shape } from '../tensor/shape.js';
import { gpu } from '../gpu/encoder.js';

/** A host-side tensor, as read from a checkpoint. */
export interface HostTensor {
  dtype: 'f32' | 'u32' | 'i32';
  shape: Shape;
  data: Float32Array | Uint32Array | Int32Array;
}

export abstract class Module {
  training = true;
  private readonly params = new Map<string, Tensor>();
  private readonly buffers = new Map<string, Tensor>();
  /** Buffers left out of the state dict (PyTorch's `persistent=False`): derived from the module's shape, not learned. */
  private readonly nonPersistent = new Set<string>();
  private readonly children = new Map<string, Module>();

  abstract forward(x: Tensor): Tensor;

  protected registerParameter(name: string, t: Tensor): Tensor {
    t.requiresGrad = true;
    t.keep();
    this.params.set(name, t);
    return t;
  }

  protected registerBuffer(name: string, t: Tensor, options: { persistent?: boolean } = {}): Tensor {
    t.keep();
    this.buffers.set(name, t);
    if (options.persistent === false) this.nonPersistent.add(name);
    return t;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }

  /** Extra state that is not a tensor on the GPU (BN's num_batches_tracked), as host tensors. */
  protected extraState(): Map<string, HostTensor> {
    return new Map();
  }

  protected loadExtraState(_name: string, _value: HostTensor): boolean {
    return false;
  }

  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this.children) out.push(...child.namedModules(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, t] of m.params) out.push([prefix ? `${prefix}.${name}` : name, t]);
    }
    return out;
  }

  namedBuffers(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, t] of m.buffers) out.push([prefix ? `${prefix}.${name}` : name, t]);
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Releases every parameter (with its gradient) and buffer; the module cannot run afterwards. */
  dispose(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.dispose();
    }
    for (const [, b] of this.namedBuffers()) b.dispose();
  }

  /** Names every parameter and buffer after its path, for error messages. */
  nameTensors(): this {
    for (const [name, t] of [...this.namedParameters(), ...this.namedBuffers()]) t.name = name;
    return this;
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Parameters and buffers in PyTorch's state_dict order (module by module, parameters first). */
  stateDict(): Map<string, Tensor | HostTensor> {
    const out = new Map<string, Tensor | HostTensor>();
    for (const [prefix, m] of this.namedModules()) {
      const key = (name: string) => (prefix ? `${prefix}.${name}` : name);
      for (const [name, t] of m.params) out.set(key(name), t);
      for (const [name, t] of m.buffers) if (!m.nonPersistent.has(name)) out.set(key(name), t);
      for (const [name, t] of m.extraState()) out.set(key(name), t);
    }
    return out;
  }

  /**
   * Copies values into the existing tensors. Strict: every key must match, shapes included, except that extra
   * state (BN's num_batches_tracked) may be missing and keeps its value, as PyTorch's BatchNorm loads older dicts.
   */
  loadStateDict(state: ReadonlyMap<string, HostTensor>, strict = true): void {
    const targets = new Map<string, { module: Module; name: string; tensor: Tensor | null }>();
    for (const [prefix, m] of this.namedModules()) {
      const key = (name: string) => (prefix ? `${prefix}.${name}` : name);
      for (const [name, t] of [...m.params, ...m.buffers]) if (!m.nonPersistent.has(name)) targets.set(key(name), { module: m, name, tensor: t });
      for (const name of m.extraState().keys()) targets.set(key(name), { module: m, name, tensor: null });
    }
    const missing = [...targets].filter(([k, target]) => !state.has(k) && target.tensor !== null).map(([k]) => k);
    const unexpected = [...state.keys()].filter((k) => !targets.has(k));
    if (strict && (missing.length || unexpected.length)) {
      throw new Error(
        `loadStateDict: keys do not match the model` +
          (missing.length ? `\n  missing: ${listSome(missing)}` : '') +
          (unexpected.length ? `\n  unexpected: ${listSome(unexpected)}` : ''),
      );
    }
    for (const [key, value] of state) {
      const target = targets.get(key);
      if (!target) continue;
      if (!target.tensor) {
        target.module.loadExtraState(target.name, value);
        continue;
      }
      if (!sameShape(target.tensor.shape, value.shape)) {
        throw new Error(`loadStateDict: ${key} has shape ${formatShape(value.shape)} in the state, ${formatShape(target.tensor.shape)} in the model`);
      }
      const data = target.tensor.dtype === 'f32' ? Float32Array.from(value.data) : value.data;
      gpu().upload(target.tensor.buffer, data);
    }
  }
}

/** Keys listed in a mismatch message; a whole other model's keys would fill a screen. */
const LISTED_KEYS = 8;

function listSome(keys: readonly string[]): string {
  const more = keys.length - LISTED_KEYS;
  return keys.slice(0, LISTED_KEYS).join(', ') + (more > 0 ? ` and ${more} more (${keys.length} in all)` : '');
}
