// A run stopped mid-epoch and resumed from its checkpoint ends with exactly the weights of a run that
// was never stopped (same seed): every kernel is deterministic (no float atomics) and the checkpoint
// holds weights, momentum, masks, position and the loader's RNG state, all bit-exact.
import { describe, expect, it } from 'vitest';
import { CifarResNet } from '../../src/models/resnet.js';
import { SGD } from '../../src/optim/sgd.js';
import { LrSchedule } from '../../src/optim/schedule.js';
import { Trainer, type RunStore, type TrainerState } from '../../src/train/trainer.js';
import { LoaderSource } from '../../src/train/sources.js';
import { pruningHooks } from '../../src/train/pruning.js';
import { FilterPruner } from '../../src/prune/sfp.js';
import { syntheticCifar10 } from '../../src/data/synthetic.js';
import { encodeCheckpoint, decodeCheckpoint, type LoadedCheckpoint } from '../../src/io/checkpoint.js';
import { restore } from '../../src/cli/train.js';
import { consoleSink } from '../../src/train/progress.js';
import { filterNorms } from '../reference/mask.js';

const silent = { status: () => {}, line: () => {} } satisfies typeof consoleSink;

/** Keeps the last checkpoint in memory, encoded exactly as on disk. */
class MemoryStore implements RunStore {
  last: LoadedCheckpoint | null = null;
  constructor(private readonly pruner: FilterPruner) {}
  async appendMetrics(): Promise<void> {}
  async saveCheckpoint(state: TrainerState): Promise<void> {
    const host = {
      model: state.stateDict,
      optimizer: state.momentum,
      masks: this.pruner.masks?.byName() ?? new Map(),
      meta: { epoch: state.epoch, step: state.step, optimizerSteps: state.optimizerSteps, ...state.extra, masks: undefined },
    };
    this.last = decodeCheckpoint(encodeCheckpoint({ ...host, meta: JSON.parse(JSON.stringify(host.meta)) }));
  }
}

function setup(maxSteps?: number, pruneEverySteps = 0) {
  const data = syntheticCifar10(40, 3);
  const model = new CifarResNet(20, 10, 5, [4, 8, 8]);
  const optimizer = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 5e-4, nesterov: true });
  const train = new LoaderSource(data, { batchSize: 8, train: true, seed: 9 });
  const pruner = new FilterPruner(model, { rate: 0.3 });
  const store = new MemoryStore(pruner);
  const schedule = new LrSchedule({ kind: 'onecycle', lr: 0.05, epochs: 2 });
  const trainer = new Trainer(model, optimizer, train, null, { epochs: 2, schedule, maxSteps }, store, silent, pruningHooks(pruner, { epochs: 2, pruneEverySteps }, null));
  return { model, optimizer, trainer, pruner, store };
}

async function weights(model: CifarResNet): Promise<Float32Array[]> {
  return Promise.all([...model.namedParameters(), ...model.namedBuffers()].map(([, t]) => t.toArray() as Promise<Float32Array>));
}

/** The largest L2 norm among the filters the pruner's current masks zero. */
async function largestMasked(pruner: FilterPruner): Promise<number> {
  let largest = 0;
  for (const t of pruner.targets) {
    const norms = filterNorms(await t.conv.weight.toArray(), t.conv.outChannels, 2);
    pruner.masks!.get(t.name)!.forEach((keep, f) => {
      if (!keep) largest = Math.max(largest, norms[f]);
    });
  }
  return largest;
}

describe('resume', () => {
  it.each([
    ['masks at epoch ends', 0],
    ['masks also every 2 steps', 2],
  ])('stopping mid-epoch and resuming gives bit-identical final weights and epoch record (SFP on, 2 epochs of 5 steps, %s)', async (_, every) => {
    const straight = setup(undefined, every);
    const straightRecords = await straight.trainer.run();
    const expected = await weights(straight.model);

    const first = setup(7, every); // stops in the middle of epoch 2
    await first.trainer.run();
    expect(first.trainer.epoch).toBe(1);
    expect(first.trainer.step).toBe(2);
    const checkpoint = first.store.last!;

    const second = setup(undefined, every);
    restore(checkpoint, second.model, second.optimizer, second.trainer, second.pruner);
    const resumedRecords = await second.trainer.run();
    const actual = await weights(second.model);
    expect(actual.length).toBe(expected.length);
    actual.forEach((a, i) => expect([...a]).toEqual([...expected[i]]));
    // The resumed epoch's record covers all of its steps: the loss and accuracy sums before the stop travel in the checkpoint.
    expect(resumedRecords.map((r) => r.epoch)).toEqual([2]);
    expect(resumedRecords[0].trainLoss).toBe(straightRecords[1].trainLoss);
    expect(resumedRecords[0].trainAccuracy).toBe(straightRecords[1].trainAccuracy);
    expect(resumedRecords[0].regrownMidEpoch).toBe(straightRecords[1].regrownMidEpoch);
    expect(straightRecords[1].regrownMidEpoch).toEqual(every > 0 ? expect.any(Number) : undefined);
  });

  it('with pruneEverySteps, soft masks are re-chosen inside the epoch: right after step 2 the pruned filters are zero', async () => {
    const epochEnds = setup(2); // stops after step 2 of 5
    await epochEnds.trainer.run();
    // Without mid-epoch masking, two SGD steps regrow the zeroed filters (the property the option changes).
    expect(await largestMasked(epochEnds.pruner)).toBeGreaterThan(0);

    const everyTwo = setup(2, 2);
    await everyTwo.trainer.run();
    expect(await largestMasked(everyTwo.pruner)).toBe(0);
    expect(everyTwo.trainer.extra.masks).toEqual(everyTwo.pruner.masks!.toJSON());
    expect(typeof everyTwo.trainer.extra.regrownMidEpoch).toBe('number');
  });
});
