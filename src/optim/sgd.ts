/**
 * SGD with momentum, dampening, Nesterov and weight decay, as torch.optim.SGD; one fused kernel per
 * parameter updates weight and momentum in place (shaders/optim.wgsl).
 */
import { gpu, grid1d } from '../gpu/encoder.js';
import { Tensor } from '../tensor/tensor.js';
import { WG } from '../ops/kernels.js';
import type { HostTensor } from '../io/safetensors.js';

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export class SGD {
  lr: number;
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  /** Momentum buffers, one per parameter (created on the first step, as PyTorch does). */
  readonly velocity = new Map<Tensor, Tensor>();
  stepCount = 0;

  /** The momentum buffers keyed by parameter name (checkpoints store them so), for `named` = model.namedParameters(). */
  velocityByName(named: readonly [string, Tensor][]): Map<string, Tensor> {
    const names = new Map(named.map(([name, t]) => [t, name]));
    return new Map([...this.velocity].map(([param, v]) => [names.get(param)!, v]));
  }

  /**
   * Replaces the momentum buffers with `byName`'s (a checkpoint's), for `named` = model.namedParameters(): the
   * previous buffers are released, and a parameter the map lacks starts again without one, as PyTorch's
   * optimizer.load_state_dict leaves it.
   */
  loadVelocity(named: readonly [string, Tensor][], byName: ReadonlyMap<string, HostTensor>): void {
    const params = new Map(named);
    for (const name of byName.keys()) {
      if (!params.has(name)) throw new Error(`momentum for '${name}', which the model does not have (another model's checkpoint?)`);
    }
    this.dispose();
    for (const [name, value] of byName) this.velocity.set(params.get(name)!, Tensor.fromArray(value.data, value.shape).keep());
  }

  /** Releases the momentum buffers; a later step starts them again, as after a fresh construction. */
  dispose(): void {
    for (const v of this.velocity.values()) v.dispose();
    this.velocity.clear();
  }

  constructor(readonly params: readonly Tensor[], options: SGDOptions) {
    if (!(options.lr >= 0)) throw new Error(`SGD: lr must be ≥ 0, got ${options.lr}`);
    this.lr = options.lr;
    this.momentum = options.momentum ?? 0;
    this.dampening = options.dampening ?? 0;
    this.weightDecay = options.weightDecay ?? 0;
    this.nesterov = options.nesterov ?? false;
    // torch.optim.SGD's checks.
    if (!(this.momentum >= 0)) throw new Error(`SGD: momentum must be ≥ 0, got ${this.momentum}`);
    if (!(this.weightDecay >= 0)) throw new Error(`SGD: weightDecay must be ≥ 0, got ${this.weightDecay}`);
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new Error('SGD: Nesterov momentum needs momentum > 0 and dampening 0');
    }
  }

  /** Applies one update to every parameter that has a gradient. */
  step(): void {
    const g = gpu();
    for (const p of this.params) {
      if (!p.grad) continue;
      const params = {
        n: p.size,
        lr: this.lr,
        momentum: this.momentum,
        dampening: this.dampening,
        weight_decay: this.weightDecay,
        nesterov: Number(this.nesterov),
        first_step: 0,
      };
      if (this.momentum === 0) {
        g.dispatch(g.kernel({ family: 'optim', entry: 'sgd', bindings: ['dims', 'param', 'grad'] }), { param: p.buffer, grad: p.grad.buffer }, params, grid1d(p.size, WG));
        continue;
      }
      let v = this.velocity.get(p);
      if (!v) {
        v = Tensor.empty(p.shape).keep();
        this.velocity.set(p, v);
        params.first_step = 1;
      }
      g.dispatch(
        g.kernel({ family: 'optim', entry: 'sgd_momentum', bindings: ['dims', 'param', 'grad', 'velocity'] }),
        { param: p.buffer, grad: p.grad.buffer, velocity: v.buffer },
        params,
        grid1d(p.size, WG),
      );
    }
    this.stepCount++;
  }

  /** Releases the gradients (the next backward creates fresh ones, from the pool). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }
}
