/** A recorded op: its tensor inputs, what forward saved, and how to turn dy into input gradients. */
import type { Tensor } from '../tensor/tensor.js';

export type BackwardFn = (ctx: OpContext, dy: Tensor) => readonly (Tensor | null)[];

export class OpContext {
  /** Tensors forward kept for backward (inputs or outputs, owned by their scope). */
  saved: Tensor[] = [];
  /** Temporaries forward made only for backward; released as soon as the node has run. */
  private owned: Tensor[] = [];
  /** Op-specific values (shapes, options) forward hands to backward. */
  readonly info: Record<string, unknown> = {};

  constructor(readonly needsGrad: readonly boolean[]) {}

  save(...tensors: Tensor[]): void {
    this.saved.push(...tensors);
  }

  /** Saves a temporary that only backward needs: it is released once the node has run. */
  own(tensor: Tensor): Tensor {
    this.owned.push(tensor);
    return tensor;
  }

  get ownedTensors(): readonly Tensor[] {
    return this.owned;
  }

  release(): void {
    for (const t of this.owned) t.dispose();
    this.owned = [];
    this.saved = [];
  }
}

export class GradNode {
  constructor(
    readonly name: string,
    readonly inputs: readonly Tensor[],
    public ctx: OpContext | null,
    readonly backwardFn: BackwardFn,
    readonly output: Tensor,
  ) {}
}
