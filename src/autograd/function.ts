/**
 * defineOp: an op is defined once with its forward and its backward. The wrapper finds the tensor
 * arguments, decides whether to record, and links the output to a GradNode.
 */
import { Tensor } from '../tensor/tensor.js';
import { isGradEnabled } from './mode.js';
import { GradNode, OpContext, type BackwardFn } from './node.js';

export interface OpDefinition<Args extends unknown[]> {
  /** Computes the output; may ctx.save() inputs or outputs and ctx.own() temporaries. */
  forward(ctx: OpContext, ...args: Args): Tensor;
  /** One gradient per tensor argument (in order), or null where ctx.needsGrad is false. 'none' for ops that are not differentiable. */
  backward: BackwardFn | 'none';
}

export function defineOp<Args extends unknown[]>(name: string, def: OpDefinition<Args>): (...args: Args) => Tensor {
  return (...args: Args): Tensor => {
    const inputs = args.filter((a): a is Tensor => a instanceof Tensor);
    const record = def.backward !== 'none' && isGradEnabled() && inputs.some((t) => t.requiresGrad);
    const ctx = new OpContext(inputs.map((t) => record && t.requiresGrad));
    const out = def.forward(ctx, ...args);
    if (record) {
      out.requiresGrad = true;
      out.node = new GradNode(name, inputs, ctx, def.backward as BackwardFn, out);
    } else {
      ctx.release();
    }
    return out;
  };
}
