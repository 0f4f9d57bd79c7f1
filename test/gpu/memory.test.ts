// Memory stays flat across training steps (style guide §2.6, principle 9): a small MLP trained for
// 1,000 steps, each inside scope(), leaves the pool's live bytes, live buffers and createBuffer count
// exactly where they were after the first few steps, and the loss goes down meanwhile.
import { expect, it } from 'vitest';
import { add, relu } from '../../src/ops/elementwise.js';
import { matmul } from '../../src/ops/matmul.js';
import { softmaxCrossEntropy } from '../../src/ops/loss.js';
import { SGD } from '../../src/optim/sgd.js';
import { Tensor, scope } from '../../src/tensor/tensor.js';
import { normal, tensor } from '../../src/tensor/create.js';
import { Rng } from '../../src/tensor/random.js';
import { memorySnapshot, type MemorySnapshot } from '../support/memory.js';
import { randomArray, randomLabels, seedFor } from '../support/random.js';

it('1,000 training steps of a 2-layer MLP (matmul, add, relu, cross-entropy, SGD with momentum) leave memory flat', async () => {
  const seed = seedFor('memory mlp');
  const rng = new Rng(seed);
  const [batch, inputs, hidden, classes] = [32, 20, 33, 10];
  const param = (shape: number[], std: number) => {
    const p = normal(shape, rng, 0, std).keep();
    p.requiresGrad = true;
    return p;
  };
  const w1 = param([inputs, hidden], Math.sqrt(2 / inputs));
  const b1 = param([hidden], 0.01);
  const w2 = param([hidden, classes], Math.sqrt(2 / hidden));
  const b2 = param([classes], 0.01);
  const optimizer = new SGD([w1, b1, w2, b2], { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 });
  // Four fixed batches on the host, uploaded each step as a data loader would.
  const batches = Array.from({ length: 4 }, () => ({ x: randomArray(rng, batch * inputs), y: randomLabels(rng, batch, classes) }));

  const step = (i: number): Tensor =>
    scope(() => {
      const { x, y } = batches[i % batches.length];
      optimizer.zeroGrad();
      const h = relu(add(matmul(tensor(x, [batch, inputs]), w1), b1));
      const logits = add(matmul(h, w2), b2);
      const loss = softmaxCrossEntropy(logits, tensor(y, [batch], 'u32'));
      loss.backward();
      optimizer.step();
      return loss;
    });

  const losses: number[] = [];
  let warm: MemorySnapshot | null = null;
  for (let i = 0; i < 1000; i++) {
    const loss = step(i);
    // Read back rarely: every readback waits for the GPU.
    if (i % 250 === 0 || i === 999) losses.push(await loss.item());
    loss.dispose();
    if (i === 4) warm = memorySnapshot();
  }
  const end = memorySnapshot();
  expect(end, `memory after step 5 vs after step 1000 (seed ${seed})`).toEqual(warm);
  // Parameters, gradients and momentum are all that stays live: 4 tensors × 3.
  expect(end.liveBuffers).toBe(12);
  // It did train: the loss on these four batches fell well below its starting value.
  expect(losses.at(-1)!, `losses ${losses.join(', ')}`).toBeLessThan(0.5 * losses[0]);
  for (const p of [w1, b1, w2, b2]) {
    p.grad?.dispose();
    optimizer.velocity.get(p)?.dispose();
    p.dispose();
  }
});
