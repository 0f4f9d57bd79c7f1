/**
 * Float64 reference for src/optim/sgd.ts: torch.optim.SGD's update (torch/optim/sgd.py, _single_tensor_sgd),
 * for one parameter at a time:
 *   d = g + weight_decay · p
 *   if momentum ≠ 0:  buf = d on the first step (no dampening), else buf = momentum · buf + (1 − dampening) · d
 *                     d = d + momentum · buf with Nesterov, else d = buf
 *   p = p − lr · d
 * A parameter whose gradient is None is skipped, and its buffer is not created.
 */
export interface SgdReferenceOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export class SgdReference {
  /** Momentum buffers, null until the parameter's first step with a gradient. */
  readonly buffers: (Float64Array | null)[];

  constructor(
    readonly params: Float64Array[],
    public options: SgdReferenceOptions,
  ) {
    this.buffers = params.map(() => null);
  }

  /** One step; grads[i] null skips parameter i. */
  step(grads: readonly (ArrayLike<number> | null)[]): void {
    const { lr, momentum = 0, dampening = 0, weightDecay = 0, nesterov = false } = this.options;
    this.params.forEach((p, k) => {
      const g = grads[k];
      if (!g) return;
      const d = Float64Array.from(p, (w, i) => g[i] + weightDecay * w);
      if (momentum !== 0) {
        let buf = this.buffers[k];
        if (!buf) {
          buf = this.buffers[k] = Float64Array.from(d);
        } else {
          for (let i = 0; i < d.length; i++) buf[i] = momentum * buf[i] + (1 - dampening) * d[i];
        }
        for (let i = 0; i < d.length; i++) d[i] = nesterov ? d[i] + momentum * buf[i] : buf[i];
      }
      for (let i = 0; i < p.length; i++) p[i] -= lr * d[i];
    });
  }
}
