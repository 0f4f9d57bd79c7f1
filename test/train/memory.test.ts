// Memory stays flat: 50 SGD steps of a CIFAR ResNet-20 leave the pool's live bytes, live buffers,
// createBuffer count and createBindGroup count where they were after the first few steps, and evaluation (noGrad, eval mode) leaves
// nothing behind and leaves the running statistics alone.
//
// The step is the body of Trainer.trainStep (src/train/trainer.ts), with the loss counters shaped like the
// summed loss (rank 0). It is copied rather than called because at commit bd73aa5 Trainer.trainStep
// accumulates the rank-0 sum into [1] counters and accumulate_ rejects that ("accumulate: [1] f32 += [] f32:
// shapes differ"); once the Trainer's counters are rank 0, trainStep can replace the copy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CifarResNet } from '../../src/models/resnet.js';
import { SGD } from '../../src/optim/sgd.js';
import { Tensor, scope } from '../../src/tensor/tensor.js';
import { noGrad } from '../../src/autograd/mode.js';
import { softmaxCrossEntropy, correctCount } from '../../src/ops/loss.js';
import { accumulate_, zeros } from '../../src/ops/elementwise.js';
import type { HostBatch } from '../../src/train/trainer.js';
import { Rng } from '../../src/tensor/random.js';
import { assertNoLeak, memorySnapshot } from '../support/memory.js';
import { readAll } from '../support/allclose.js';
import { randomArray, randomLabels, seedFor } from '../support/random.js';

const BATCH = 4;
const IMAGE = [3, 8, 8] as const;

/** A tiny in-memory data set: `count` batches of random images and labels. */
function batches(rng: Rng, count: number): HostBatch[] {
  return Array.from({ length: count }, () => ({
    x: randomArray(rng, BATCH * IMAGE[0] * IMAGE[1] * IMAGE[2], -2, 2),
    y: randomLabels(rng, BATCH, 10),
    size: BATCH,
  }));
}

describe('memory over training and evaluation of a CIFAR ResNet-20', () => {
  const data = batches(new Rng(seedFor('memory')), 8);
  let model: CifarResNet;
  let optimizer: SGD;
  let lossSum: Tensor;
  let correctSum: Tensor;

  beforeAll(() => {
    model = new CifarResNet(20, 10, 3);
    optimizer = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 5e-4, nesterov: true });
    lossSum = zeros([]).keep();
    correctSum = zeros([]).keep();
  });

  afterAll(() => {
    optimizer.zeroGrad();
    for (const v of optimizer.velocity.values()) v.dispose();
    for (const p of model.parameters()) p.dispose();
    for (const [, b] of model.namedBuffers()) b.dispose();
    lossSum.dispose();
    correctSum.dispose();
  });

  function trainStep(batch: HostBatch): void {
    scope(() => {
      const x = Tensor.fromArray(batch.x, [batch.size, ...IMAGE]);
      const y = Tensor.fromArray(batch.y, [batch.size], 'u32');
      const logits = model.forward(x);
      const loss = softmaxCrossEntropy(logits, y, 'sum');
      noGrad(() => {
        accumulate_(lossSum, loss);
        accumulate_(correctSum, correctCount(logits, y));
      });
      loss.backward(Tensor.fromArray([1 / batch.size], []));
      optimizer.step();
      optimizer.zeroGrad();
    });
  }

  it('50 SGD steps: live bytes, live buffers, buffer and bind-group creations after step 3 stay the same through step 50', async () => {
    model.train();
    for (let step = 0; step < 3; step++) trainStep(data[step % data.length]);
    const warm = memorySnapshot();
    // Parameters, BN buffers, momentum buffers and the two counters are all that may stay alive.
    const expectedLive = [...model.parameters(), ...optimizer.velocity.values(), ...model.namedBuffers().map(([, b]) => b), lossSum, correctSum];
    expect(warm.liveBuffers).toBe(expectedLive.length);
    for (let step = 3; step < 50; step++) trainStep(data[step % data.length]);
    const after = memorySnapshot();
    expect(after).toEqual(warm);
    const [loss, correct] = await readAll([lossSum, correctSum]);
    expect(Number.isFinite(loss[0])).toBe(true);
    expect(correct[0]).toBeGreaterThanOrEqual(0);
    expect(correct[0]).toBeLessThanOrEqual(50 * BATCH);
    expect(model.bn1.numBatchesTracked).toBe(50);
  });

  it('evaluation (noGrad, eval mode) leaks nothing, allocates nothing after its first batch, and leaves the running statistics alone', async () => {
    model.eval();
    const evalSum = zeros([]).keep();
    const evaluate = (batch: HostBatch) =>
      noGrad(() =>
        scope(() => {
          const logits = model.forward(Tensor.fromArray(batch.x, [batch.size, ...IMAGE]));
          accumulate_(evalSum, softmaxCrossEntropy(logits, Tensor.fromArray(batch.y, [batch.size], 'u32'), 'sum'));
        }),
      );
    const running = () => readAll([model.bn1.runningMean, model.stages[2].blocks[2].bn2.runningVar]);
    const before = await running();
    const tracked = model.bn1.numBatchesTracked;
    await assertNoLeak('first evaluation batch', () => evaluate(data[0]));
    const warm = memorySnapshot();
    await assertNoLeak('evaluation', () => data.forEach(evaluate));
    expect(memorySnapshot()).toEqual(warm);
    const after = await running();
    expect(after).toEqual(before);
    expect(model.bn1.numBatchesTracked).toBe(tracked);
    const [total] = await readAll([evalSum]);
    expect(Number.isFinite(total[0])).toBe(true);
    evalSum.dispose();
    model.train();
  });
});
