// A run whose loss or weights stop being finite stops before it saves anything more, so the checkpoint on disk
// stays the last one written while training was sound.
import { describe, expect, it } from 'vitest';
import { CifarResNet } from '../../src/models/resnet.js';
import { SGD } from '../../src/optim/sgd.js';
import { LrSchedule } from '../../src/optim/schedule.js';
import { Trainer, type EpochRecord, type RunStore, type TrainerHooks, type TrainerState } from '../../src/train/trainer.js';
import { LoaderSource } from '../../src/train/sources.js';
import { syntheticCifar10 } from '../../src/data/synthetic.js';
import { gpu } from '../../src/gpu/encoder.js';

const silent = { status: () => {}, line: () => {} };

/** Records each save's step and whether every weight it would write is finite. */
class CountingStore implements RunStore {
  saves: { step: number; finite: boolean }[] = [];
  records: EpochRecord[] = [];
  async appendMetrics(record: EpochRecord): Promise<void> {
    this.records.push(record);
  }
  async saveCheckpoint(state: TrainerState): Promise<void> {
    const weights = [...state.stateDict.values(), ...state.momentum.values()].map((t) => t.data);
    this.saves.push({ step: state.step, finite: weights.every((w) => w.every((x) => Number.isFinite(Number(x)))) });
  }
}

const run = (model: CifarResNet, store: CountingStore, poison: TrainerHooks) => {
  const optimizer = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
  const train = new LoaderSource(syntheticCifar10(32, 3), { batchSize: 8, train: true, seed: 1 });
  const schedule = new LrSchedule({ kind: 'constant', lr: 0.05, epochs: 1 });
  return new Trainer(model, optimizer, train, null, { epochs: 1, schedule, checkpointEvery: 1, logEvery: 100 }, store, silent, poison);
};

describe('a diverging run', () => {
  it('stops with an error that says what to do, and saves no checkpoint once the loss is NaN', async () => {
    const model = new CifarResNet(20, 10, 1, [4, 8, 12]);
    const store = new CountingStore();
    // After two sound steps (both checkpointed), a NaN in the classifier (put there before step 3) makes every later loss NaN.
    const trainer = run(model, store, {
      betweenSteps: (t: Trainer) => {
        if (t.step === 2) gpu().upload(model.fc.weight.buffer, new Float32Array(model.fc.weight.size).fill(NaN));
      },
    });
    await expect(trainer.run()).rejects.toThrow(/training diverged: fc.weight holds NaN or infinite values at epoch 1, step 2; nothing more is saved.*lower --lr/);
    expect(store.saves).toEqual([{ step: 1, finite: true }]);
    expect(store.records).toEqual([]);
    trainer.dispose();
  });

  it('saves no checkpoint whose weights a step made infinite while the loss before it was finite', async () => {
    const model = new CifarResNet(20, 10, 1, [4, 8, 12]);
    const store = new CountingStore();
    // The weight goes bad after step 2's loss was computed and before its checkpoint: the loss never shows it.
    const trainer = run(model, store, {
      betweenSteps: (t: Trainer) => {
        if (t.step === 2) gpu().upload(model.conv1.weight.buffer, Float32Array.of(Infinity));
      },
    });
    await expect(trainer.run()).rejects.toThrow(/training diverged: conv1.weight holds NaN or infinite values at epoch 1, step 2/);
    expect(store.saves).toEqual([{ step: 1, finite: true }]);
    trainer.dispose();
  });

  it("an epoch end that leaves a weight infinite writes neither the epoch's record nor its checkpoint", async () => {
    const model = new CifarResNet(20, 10, 1, [4, 8, 12]);
    const store = new CountingStore();
    const trainer = run(model, store, {
      afterEpoch: async () => {
        gpu().upload(model.fc.bias!.buffer, Float32Array.of(NaN));
        return {};
      },
    });
    await expect(trainer.run()).rejects.toThrow(/training diverged: fc.bias holds NaN or infinite values at epoch 1, step 4/);
    expect(store.records).toEqual([]);
    expect(store.saves.every((s) => s.finite)).toBe(true);
    trainer.dispose();
  });
});
