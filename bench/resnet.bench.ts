/**
 * Inference speed of pruning: the eval-mode forward of ResNet-20 at batch 128, dense (the masked model at full
 * width) and compact (prune/compact.ts at the kept widths), with random weights and a random 30 % SFP mask,
 * built by the same code as the `bench` command (src/bench/models.ts). FLOPs count a multiply-add as 2.
 * The per-layer table with the real vs theoretical speedup is `npm run cli -- bench`.
 */
import type { RegisterBenches } from './run.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/tensor/random.js';
import { noGrad } from '../src/autograd/mode.js';
import { randomCifarPair, type BenchPair } from '../src/bench/models.js';
import type { BenchNetwork } from '../src/bench/networks.js';

export const register: RegisterBenches = (add, { quick }) => {
  const batch = quick ? 32 : 128;
  for (const which of ['dense', 'compact'] as const) {
    let pair: BenchPair | null = null;
    let network: BenchNetwork | null = null;
    let x: Tensor | null = null;
    // The counts are known only once the pair is built; the runner reads `flops` after setup.
    const entry = {
      name: `resnet20.forward.${which}`,
      shape: `batch ${batch}, 3×32×32`,
      note: which === 'dense' ? 'masked model, full width' : 'compact model, random 30 % SFP mask',
      flops: 0,
      items: batch,
      async setup() {
        pair = await randomCifarPair(20, 0.3, 0);
        network = pair[which];
        entry.flops = batch * network.layers.reduce((s, l) => s + l.flops.total + l.flops.macs, 0);
        const rng = new Rng(1);
        x = Tensor.fromArray(Float32Array.from({ length: batch * 3 * 32 * 32 }, () => rng.normal()), [batch, 3, 32, 32]).keep();
      },
      run() {
        noGrad(() => network!.forward(x!));
      },
      teardown() {
        x!.dispose();
        pair!.dispose();
      },
    };
    add(entry);
  }
};
