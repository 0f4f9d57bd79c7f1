// ResNet-20 really learns: a few hundred steps on a real CIFAR-10 subset take test accuracy far above
// chance (10 %).
import { describe, expect, it } from 'vitest';
import { CifarResNet } from '../../src/models/resnet.js';
import { SGD } from '../../src/optim/sgd.js';
import { LrSchedule } from '../../src/optim/schedule.js';
import { Trainer } from '../../src/train/trainer.js';
import { LoaderSource } from '../../src/train/sources.js';
import { loadCifar10 } from '../../src/data/node-files.js';
import { sliceDataset } from '../../src/data/cifar10.js';
import { CIFAR10_TEST_DIR } from '../support/data.js';

describe('learning', () => {
  it('ResNet-20, 250 steps of batch 32 on 8,000 real CIFAR-10 images: test accuracy on 1,000 images ≥ 35 %', async () => {
    const train = sliceDataset(await loadCifar10(CIFAR10_TEST_DIR, 'train'), 0, 8000);
    const test = sliceDataset(await loadCifar10(CIFAR10_TEST_DIR, 'test'), 0, 1000);
    const model = new CifarResNet(20, 10, 1);
    const optimizer = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 5e-4, nesterov: true });
    const source = new LoaderSource(train, { batchSize: 32, train: true, seed: 1 });
    const schedule = new LrSchedule({ kind: 'onecycle', lr: 0.1, epochs: 1 });
    const quiet = { status: () => {}, line: () => {} };
    const trainer = new Trainer(model, optimizer, source, new LoaderSource(test, { batchSize: 500, train: false }), { epochs: 1, schedule }, null, quiet);
    const [record] = await trainer.run();
    expect(record.trainLoss).toBeLessThan(2.0);
    expect(record.testAccuracy).toBeGreaterThanOrEqual(0.35);
  }, 600_000);
});
