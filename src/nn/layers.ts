/** The layers the ResNets are built from: Conv2d, BatchNorm2d (optionally fused with ReLU), Linear. */
import { Module, type HostTensor } from './module.js';
import { Tensor } from '../tensor/tensor.js';
import { Rng, normal } from '../tensor/create.js';
import { conv2d, conv2dBatchNormEval } from '../ops/conv2d.js';
import { isGradEnabled } from '../autograd/mode.js';
import { batchNorm2d } from '../ops/batchnorm.js';
import { matmul } from '../ops/matmul.js';
import { add, fill } from '../ops/elementwise.js';
import { fans } from '../tensor/create.js';

export interface Conv2dModuleOptions {
  stride?: number;
  padding?: number;
  bias?: boolean;
}

export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly stride: number;
  readonly padding: number;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    options: Conv2dModuleOptions = {},
    rng = new Rng(0),
  ) {
    super();
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
    // The SFP code's init: N(0, sqrt(2 / (k·k·out))), i.e. Kaiming normal in fan-out mode.
    const shape = [outChannels, inChannels, kernelSize, kernelSize];
    this.weight = this.registerParameter('weight', normal(shape, rng, 0, Math.sqrt(2 / fans(shape).fanOut)));
    this.bias = options.bias ? this.registerParameter('bias', fill([outChannels], 0)) : null;
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding });
  }

  /** A map [out, out_h, out_w] this conv adds to every output sample for input x (compacted convs), or null. */
  outputBias(_x: Tensor): Tensor | null {
    return null;
  }
}

export class BatchNorm2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  numBatchesTracked = 0;

  constructor(
    readonly numFeatures: number,
    readonly options: { eps?: number; momentum?: number; relu?: boolean } = {},
  ) {
    super();
    this.weight = this.registerParameter('weight', fill([numFeatures], 1));
    this.bias = this.registerParameter('bias', fill([numFeatures], 0));
    this.runningMean = this.registerBuffer('running_mean', fill([numFeatures], 0));
    this.runningVar = this.registerBuffer('running_var', fill([numFeatures], 1));
  }

  forward(x: Tensor): Tensor {
    if (this.training) this.numBatchesTracked++;
    return batchNorm2d(x, this.weight, this.bias, this.runningMean, this.runningVar, {
      training: this.training,
      eps: this.options.eps ?? 1e-5,
      momentum: this.options.momentum ?? 0.1,
      relu: this.options.relu ?? false,
    });
  }

  protected override extraState(): Map<string, HostTensor> {
    return new Map([['num_batches_tracked', { dtype: 'i32', shape: [], data: Int32Array.of(this.numBatchesTracked) }]]);
  }

  protected override loadExtraState(name: string, value: HostTensor): boolean {
    if (name !== 'num_batches_tracked') return false;
    this.numBatchesTracked = Number(value.data[0]);
    return true;
  }
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, options: { bias?: boolean } = {}, rng = new Rng(0)) {
    super();
    // Kaiming normal (fan-in) with a zero bias, as the SFP CIFAR ResNet initialises its classifier.
    const shape = [outFeatures, inFeatures];
    this.weight = this.registerParameter('weight', normal(shape, rng, 0, Math.sqrt(2 / inFeatures)));
    this.bias = options.bias === false ? null : this.registerParameter('bias', fill([outFeatures], 0));
  }

  forward(x: Tensor): Tensor {
    const y = matmul(x, this.weight, { transposeB: true });
    return this.bias ? add(y, this.bias) : y;
  }
}

/**
 * bn(conv(x)), BN's ReLU included. In evaluation mode without gradients, one pass where the 3×3 kernels
 * apply (ops/conv2d.ts conv2dBatchNormEval: the same values, without writing the conv's output and reading
 * it back); otherwise the two modules in turn.
 */
export function convBatchNorm(conv: Conv2d, bn: BatchNorm2d, x: Tensor): Tensor {
  if (!bn.training && !isGradEnabled() && !conv.bias) {
    const y = conv2dBatchNormEval(x, conv.weight, { stride: conv.stride, padding: conv.padding }, conv.outputBias(x), {
      runningMean: bn.runningMean,
      runningVar: bn.runningVar,
      gamma: bn.weight,
      beta: bn.bias,
      eps: bn.options.eps ?? 1e-5,
      relu: bn.options.relu ?? false,
    });
    if (y) return y;
  }
  return bn.forward(conv.forward(x));
}
