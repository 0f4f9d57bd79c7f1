/**
 * Training throughput: one SGD step (forward, backward, Nesterov update) of the CIFAR ResNets at batch
 * 128 on random images, reported as images/s next to the step's conv FLOPs (forward, and the input and
 * weight gradients: 3 × the forward's multiply-adds × 2). Four steps back to back per sample, as a
 * training loop runs them.
 */
import type { RegisterBenches } from './run.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/tensor/random.js';
import { CifarResNet } from '../src/models/resnet.js';
import { SGD } from '../src/optim/sgd.js';
import { softmaxCrossEntropy } from '../src/ops/loss.js';
import { paperConvFlops } from '../src/prune/flops.js';

export const register: RegisterBenches = (add, { quick }) => {
  const batch = quick ? 32 : 128;
  for (const depth of quick ? [20] : [20, 56]) {
    let model: CifarResNet | null = null;
    let optimizer: SGD | null = null;
    let x: Tensor | null = null;
    let y: Tensor | null = null;
    add({
      name: `train.resnet${depth}`,
      shape: `batch ${batch}, 3×32×32`,
      note: 'one SGD step',
      flops: 3 * 2 * paperConvFlops(depth, 0) * batch,
      items: batch,
      minRepeats: 4,
      setup() {
        const rng = new Rng(1);
        model = new CifarResNet(depth, 10, 1);
        optimizer = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 5e-4, nesterov: true });
        x = Tensor.fromArray(Float32Array.from({ length: batch * 3 * 32 * 32 }, () => rng.normal()), [batch, 3, 32, 32]).keep();
        y = Tensor.fromArray(Uint32Array.from({ length: batch }, () => rng.int(10)), [batch], 'u32').keep();
      },
      run() {
        softmaxCrossEntropy(model!.forward(x!), y!).backward();
        optimizer!.step();
        optimizer!.zeroGrad();
      },
      teardown() {
        for (const t of [...model!.parameters(), ...model!.namedBuffers().map(([, b]) => b), ...optimizer!.velocity.values(), x!, y!]) t.dispose();
      },
    });
  }
};
