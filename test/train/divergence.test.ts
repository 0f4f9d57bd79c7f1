// A run whose loss stops being finite stops before it saves anything more, so the checkpoint on disk stays
// the last one written while training was sound.
import { describe, expect, it } from 'vitest';
import { CifarResNet } from '../../src/models/resnet.js';
import { SGD } from '../../src/optim/sgd.js';
import { LrSchedule } from '../../src/optim/schedule.js';
import { Trainer, type EpochRecord, type RunStore, type TrainerState } from '../../src/train/trainer.js';
import { LoaderSource } from '../../src/train/sources.js';
import { syntheticCifar10 } from '../../src/data/synthetic.js';
import { gpu } from '../../src/gpu/encoder.js';

const silent = { status: () => {}, line: () => {} };

class CountingStore implements RunStore {
  saves: number[] = [];
  records: EpochRecord[] = [];
  async appendMetrics(record: EpochRecord): Promise<void> {
    this.records.push(record);
  }
  async saveCheckpoint(state: TrainerState): Promise<void> {
    this.saves.push(state.step);
  }
}

describe('a diverging run', () => {
  it('stops with an error that says what to do, and saves no checkpoint once the loss is NaN', async () => {
    const model = new CifarResNet(20, 10, 1, [4, 8, 12]);
    const optimizer = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
    const train = new LoaderSource(syntheticCifar10(32, 3), { batchSize: 8, train: true, seed: 1 });
    const store = new CountingStore();
    // After two sound steps (both checkpointed), a NaN in the classifier makes every later loss NaN.
    const poison = {
      betweenSteps: (t: Trainer) => {
        if (t.step === 2) gpu().upload(model.fc.weight.buffer, new Float32Array(model.fc.weight.size).fill(NaN));
      },
    };
    const schedule = new LrSchedule({ kind: 'constant', lr: 0.05, epochs: 1 });
    const trainer = new Trainer(model, optimizer, train, null, { epochs: 1, schedule, checkpointEvery: 1, logEvery: 100 }, store, silent, poison);
    await expect(trainer.run()).rejects.toThrow(/training diverged: the loss of epoch 1 is NaN at step 3; nothing more is saved.*lower --lr/);
    expect(store.saves).toEqual([1, 2]);
    expect(store.records).toEqual([]);
    trainer.dispose();
  });
});
