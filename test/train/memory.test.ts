// Memory stays flat: 50 SGD steps of a CIFAR ResNet-20 through Trainer.trainStep leave the pool's live
// bytes, live buffers, createBuffer count and createBindGroup count where they were after the first few
// steps, and evaluation (noGrad, eval mode) leaves nothing behind and leaves the running statistics alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CifarResNet } from '../../src/models/resnet.js';
import { SGD } from '../../src/optim/sgd.js';
import { Tensor, scope } from '../../src/tensor/tensor.js';
import { noGrad } from '../../src/autograd/mode.js';
import { softmaxCrossEntropy } from '../../src/ops/loss.js';
import { accumulate_, zeros } from '../../src/ops/elementwise.js';
import { Trainer, type BatchSource, type HostBatch } from '../../src/train/trainer.js';
import { LrSchedule } from '../../src/optim/schedule.js';
import { Rng } from '../../src/tensor/random.js';
import { assertNoLeak, memorySnapshot } from '../support/memory.js';
import { readAll } from '../support/allclose.js';
import { randomArray, randomLabels, seedFor } from '../support/random.js';
import { FilterPruner } from '../../src/prune/sfp.js';
import { buildCompactionPlan } from '../../src/prune/plan.js';
import { compactModel, zeroMaskedFilters } from '../../src/prune/compact.js';
import { recalibrateBatchNorm } from '../../src/train/recalibrate.js';
import { gpu } from '../../src/gpu/encoder.js';
import { conv2dUsesSubgroups } from '../../src/ops/conv2d.js';

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
  let trainer: Trainer;
  let source: BatchSource;

  beforeAll(() => {
    model = new CifarResNet(20, 10, 3);
    optimizer = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 5e-4, nesterov: true });
    source = {
      stepsPerEpoch: data.length,
      batchSize: BATCH,
      imageShape: IMAGE,
      batches: () => data,
      restart: () => {},
      state: () => null,
      setState: () => {},
    };
    const schedule = new LrSchedule({ kind: 'cosine', lr: 0.1, epochs: 1 });
    trainer = new Trainer(model, optimizer, source, null, { epochs: 1, schedule }, null, { status: () => {}, line: () => {} });
  });

  afterAll(() => {
    optimizer.zeroGrad();
    for (const v of optimizer.velocity.values()) v.dispose();
    for (const p of model.parameters()) p.dispose();
    for (const [, b] of model.namedBuffers()) b.dispose();
    trainer.dispose();
  });

  const trainStep = (batch: HostBatch) => trainer.trainStep(batch, 0.1);

  it('50 SGD steps: live bytes, live buffers, buffer and bind-group creations after step 3 stay the same through step 50', async () => {
    model.train();
    for (let step = 0; step < 3; step++) trainStep(data[step % data.length]);
    const warm = memorySnapshot();
    // Parameters, BN buffers, momentum buffers and the trainer's two counters are all that may stay alive.
    const expectedLive = [...model.parameters(), ...optimizer.velocity.values(), ...model.namedBuffers().map(([, b]) => b)].length + 2;
    expect(warm.liveBuffers).toBe(expectedLive);
    const [before] = await readAll([model.fc.weight]);
    for (let step = 3; step < 50; step++) trainStep(data[step % data.length]);
    const after = memorySnapshot();
    expect(after).toEqual(warm);
    const [trained] = await readAll([model.fc.weight]);
    expect(trained.every(Number.isFinite)).toBe(true);
    expect(trained).not.toEqual(before);
    expect(model.bn1.numBatchesTracked).toBe(50);
  });

  it('evaluation (noGrad, eval mode) keeps only its packed weights from its first batch, allocates nothing after it, and leaves the running statistics alone', async () => {
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
    // The first batch packs the weights of each conv that runs fused with its BN, once: the runtime holds them
    // for the next batches (gpu().derived). Nothing else stays.
    const first = memorySnapshot();
    const derivedBefore = gpu().stats().derivedValues;
    evaluate(data[0]);
    const packed = gpu().stats().derivedValues - derivedBefore;
    expect(memorySnapshot().liveBuffers - first.liveBuffers).toBe(packed);
    if (conv2dUsesSubgroups()) expect(packed).toBeGreaterThan(0);
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

  it('masking (L2 and FPGM), BN recalibration and a compact model\'s forward allocate nothing after their first runs', async () => {
    const steady = async (label: string, run: () => void | Promise<void>) => {
      // Twice first: pipelines and bind groups are made once, and the first masking keeps its masks in the
      // buffers its scores had just freed, so the second allocates its scores anew.
      await run();
      await run();
      const warm = memorySnapshot();
      await assertNoLeak(label, async () => {
        for (let i = 0; i < 3; i++) await run();
      });
      expect(memorySnapshot(), label).toEqual(warm);
    };
    for (const criterion of ['l2', 'fpgm'] as const) {
      const pruner = new FilterPruner(model, { rate: 0.3, criterion });
      await steady(`masking by ${criterion}`, async () => pruner.apply(await pruner.computeMasks(), optimizer));
      pruner.dispose();
    }
    await steady('BN recalibration', () => void recalibrateBatchNorm(model, source, 3));
    const pruner = new FilterPruner(model, { rate: 0.3 });
    const masks = (await pruner.computeMasks()).byName();
    pruner.dispose();
    await zeroMaskedFilters(model, masks);
    const compact = await compactModel(model, await buildCompactionPlan(model, masks), { inputSize: [IMAGE[1], IMAGE[2]] });
    await steady('compact model forward', () =>
      noGrad(() => scope(() => void compact.forward(Tensor.fromArray(data[0].x, [BATCH, ...IMAGE])))),
    );
    for (const p of compact.parameters()) p.dispose();
    for (const [, b] of compact.namedBuffers()) b.dispose();
    model.train();
  });
});
