/**
 * Trainer hooks that run a FilterPruner as the SFP code does: masks computed and applied once before
 * training, then at the end of every `pruneEvery` epochs and after the last one; the epoch's record
 * gets the accuracy after masking, how many filters changed (regrowth) and the pruned FLOPs. Hard
 * pruning keeps the first masks and re-zeroes the pruned filters after every step. Optionally (beyond
 * the paper) BN statistics are re-estimated at each epoch end, after its masking, so the masked accuracy is not measured
 * with the statistics of filters that were just zeroed, and soft masks can also be recomputed every N
 * steps inside an epoch, so a pruned filter regrows for N steps, not a whole epoch, between maskings.
 */
import type { FilterPruner, FilterMasks } from '../prune/sfp.js';
import type { Trainer, TrainerHooks, BatchSource } from './trainer.js';
import { compactFlops, paperConvFlops, type ConvRates } from '../prune/flops.js';
import { CifarResNet } from '../models/resnet.js';
import { buildCompactionPlan } from '../prune/plan.js';
import { recalibrateBatchNorm } from './recalibrate.js';

export interface PruningSchedule {
  epochs: number;
  pruneEvery?: number;
  /** Soft pruning also masks every this many steps inside an epoch (0 or absent: only at epoch ends, as the paper). */
  pruneEverySteps?: number;
  /** Called with a printable summary each time masks change. */
  log?(text: string): void;
  /**
   * Re-estimate BN statistics from this many batches of `source` at every epoch end, after that epoch's masking
   * if it has one (0: never): epochs without masking (hard pruning, --prune-every > 1) are recalibrated alike.
   */
  recalibrate?: { source: BatchSource; batches: number };
}

export interface PruningState {
  masks: Record<string, number[]> | null;
}

export function pruningHooks(pruner: FilterPruner, schedule: PruningSchedule, test: BatchSource | null): TrainerHooks {
  const every = schedule.pruneEvery ?? 1;
  const everySteps = pruner.mode === 'soft' ? (schedule.pruneEverySteps ?? 0) : 0;
  const maskNow = async (trainer: Trainer, epoch: number): Promise<FilterMasks> => {
    const masks = await pruner.computeMasks(epoch, schedule.epochs);
    pruner.apply(masks, trainer.optimizer);
    trainer.extra.masks = masks.toJSON();
    // The rates these masks were chosen at (ASFP's grow), carried in checkpoints for the paper's FLOPs.
    trainer.extra.maskRates = pruner.convRates(epoch, schedule.epochs);
    return masks;
  };
  return {
    async beforeTraining(trainer) {
      const masks = await maskNow(trainer, 0);
      schedule.log?.(`initial masks (${pruner.mode}, ${pruner.criterion}):\n${masks.toString()}`);
    },
    afterStep(trainer) {
      if (pruner.mode === 'hard') pruner.zeroPruned(trainer.optimizer);
    },
    async betweenSteps(trainer) {
      const steps = trainer.train.stepsPerEpoch;
      // The epoch's last step is followed by the end-of-epoch masking.
      if (everySteps === 0 || trainer.step % everySteps !== 0 || trainer.step >= steps) return;
      const previous = pruner.masks;
      const masks = await maskNow(trainer, trainer.epoch + trainer.step / steps);
      // Kept in `extra`, so a checkpoint taken mid-epoch carries the sum.
      trainer.extra.regrownMidEpoch = Number(trainer.extra.regrownMidEpoch ?? 0) + masks.changesFrom(previous);
    },
    async afterEpoch(trainer, epoch, record) {
      const last = epoch === schedule.epochs - 1;
      const extra: Record<string, unknown> = {};
      if (everySteps > 0) {
        extra.regrownMidEpoch = Number(trainer.extra.regrownMidEpoch ?? 0);
        delete trainer.extra.regrownMidEpoch;
      }
      const masking = pruner.mode === 'soft' && (epoch % every === 0 || last);
      // Without a masking (hard pruning, or an epoch --prune-every skips) the model is the one the trainer has
      // just evaluated on the same test set: its record holds that evaluation, so it is not run again.
      const evaluated = !masking && trainer.test === test && Number.isFinite(record.testAccuracy);
      const evaluate = async (source: BatchSource) =>
        evaluated ? { accuracy: record.testAccuracy, loss: record.testLoss } : trainer.evaluate(source);
      if (masking) {
        const previous = pruner.masks;
        const masks = await maskNow(trainer, epoch + 1);
        extra.regrown = masks.changesFrom(previous);
      } else {
        extra.regrown = 0;
      }
      const recalibrate = schedule.recalibrate;
      if (recalibrate && recalibrate.batches > 0) {
        if (test) {
          const stale = await evaluate(test);
          extra.testAccuracyMaskedStaleBN = stale.accuracy;
          extra.testLossMaskedStaleBN = stale.loss;
        }
        extra.bnRecalibrationBatches = recalibrateBatchNorm(trainer.model, recalibrate.source, recalibrate.batches);
      }
      if (test) {
        const evaluation = recalibrate && recalibrate.batches > 0 ? await trainer.evaluate(test) : await evaluate(test);
        extra.testAccuracyMasked = evaluation.accuracy;
        extra.testLossMasked = evaluation.loss;
      }
      const model = trainer.model;
      if (model instanceof CifarResNet && pruner.masks) {
        // The exact FLOPs of the model compaction would build now (streams narrow where channels are constant).
        const masks = pruner.masks.byName();
        const plan = await buildCompactionPlan(model, masks);
        const kept = plan.keptCounts();
        const full = compactFlops(model).total;
        const pruned = compactFlops(model, kept, plan.streamWidths()).total;
        extra.flops = pruned;
        extra.flopsReduction = 1 - pruned / full;
        const rates = (trainer.extra.maskRates as ConvRates | undefined) ?? pruner.convRates(schedule.epochs, schedule.epochs);
        extra.paperConvFlops = paperConvFlops(model.depth, rates, model.widths);
      }
      return extra;
    },
  };
}
