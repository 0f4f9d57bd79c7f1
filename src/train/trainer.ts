/**
 * The training loop: epochs of SGD steps on host batches, evaluation on the test set, metrics per
 * epoch, checkpoints that resume exactly, and hooks where pruning acts (before training and at the end
 * of every epoch). Loss and accuracy accumulate on the GPU and are read back every `logEvery` steps.
 * File access goes through a RunStore, so the loop runs in Node and in a browser alike.
 */
import type { Module } from '../nn/module.js';
import { Tensor, scope } from '../tensor/tensor.js';
import { gpu } from '../gpu/encoder.js';
import { noGrad } from '../autograd/mode.js';
import { softmaxCrossEntropy, correctCount } from '../ops/loss.js';
import { accumulate_, zeros } from '../ops/elementwise.js';
import { tuneConv2d } from '../ops/conv2d.js';
import { SGD } from '../optim/sgd.js';
import { LrSchedule } from '../optim/schedule.js';
import { formatDuration, progressBar, type ProgressSink } from './progress.js';
import { checkpointToHost } from '../io/checkpoint.js';
import type { HostTensor } from '../io/safetensors.js';

/** One batch on the host: images [size, 3, 32, 32] normalised, labels [size]. */
export interface HostBatch {
  x: Float32Array;
  y: Uint32Array;
  size: number;
}

/**
 * Where batches come from: the rest of the current epoch on each call (a loader keeps its position),
 * with a state that a checkpoint stores so a resumed run sees exactly the batches it would have seen.
 */
export interface BatchSource {
  readonly stepsPerEpoch: number;
  /** Images in its largest batch (the last one of an epoch may hold fewer), the batch shape kernels are tuned for. */
  readonly batchSize: number;
  readonly imageShape: readonly [number, number, number];
  /** The remaining batches of the current epoch. */
  batches(): Iterable<HostBatch>;
  /** Back to the source's first batch, yielding the same batches each time (evaluation and BN recalibration restart). */
  restart(): void;
  state(): unknown;
  setState(state: unknown): void;
}

export interface EvalResult {
  loss: number;
  accuracy: number;
  count: number;
}

export interface EpochRecord {
  epoch: number;
  lr: number;
  trainLoss: number;
  trainAccuracy: number;
  testLoss: number;
  testAccuracy: number;
  seconds: number;
  imagesPerSecond: number;
  [extra: string]: unknown;
}

export interface RunStore {
  appendMetrics(record: EpochRecord): Promise<void>;
  saveCheckpoint(state: TrainerState): Promise<void>;
}

/** What a checkpoint holds: enough to continue as if never stopped. The tensors were read back once and checked finite. */
export interface TrainerState {
  /** The model's state dict (PyTorch's names and order). */
  stateDict: ReadonlyMap<string, HostTensor>;
  /** SGD momentum by parameter name. */
  momentum: ReadonlyMap<string, HostTensor>;
  optimizerSteps: number;
  /** Epoch and step of the next batch to train on. */
  epoch: number;
  step: number;
  extra: Record<string, unknown>;
}

export interface TrainerHooks {
  /** Before the first step of a fresh run (SFP masks the initial weights here). */
  beforeTraining?(trainer: Trainer): Promise<void>;
  /** After every optimizer step, inside the step's scope (hard pruning re-zeroes its filters here). */
  afterStep?(trainer: Trainer): void;
  /** After a step has been counted, where work may wait on the GPU (soft masks every N steps); `trainer.step` counts the epoch's steps done. */
  betweenSteps?(trainer: Trainer): Promise<void> | void;
  /** After an epoch's steps and its evaluation; returns extra metrics for the epoch's record. */
  afterEpoch?(trainer: Trainer, epoch: number, record: EpochRecord): Promise<Record<string, unknown>>;
}

export interface TrainerOptions {
  epochs: number;
  schedule: LrSchedule;
  logEvery?: number;
  /** Also checkpoint every this many steps inside an epoch (0: only at epoch ends). */
  checkpointEvery?: number;
  evalBatchSize?: number;
  /** Stop after this many steps in this call (smoke runs, time slices): a checkpoint then holds the position mid-epoch. */
  maxSteps?: number;
}

/** An epoch's sums up to a mid-epoch checkpoint. */
interface EpochProgress {
  lossSum: number;
  correct: number;
  images: number;
  seconds: number;
}

function takeEpochProgress(extra: Record<string, unknown>): EpochProgress | null {
  const p = extra.epochProgress as Partial<EpochProgress> | undefined;
  delete extra.epochProgress;
  if (!p || ![p.lossSum, p.correct, p.images, p.seconds].every((v) => typeof v === 'number' && Number.isFinite(v))) return null;
  return p as EpochProgress;
}

export class Trainer {
  epoch = 0;
  step = 0;
  extra: Record<string, unknown> = {};
  private readonly lossSum: Tensor;
  private readonly correctSum: Tensor;

  constructor(
    readonly model: Module,
    readonly optimizer: SGD,
    readonly train: BatchSource,
    readonly test: BatchSource | null,
    readonly options: TrainerOptions,
    readonly store: RunStore | null,
    readonly sink: ProgressSink,
    readonly hooks: TrainerHooks = {},
  ) {
    this.lossSum = zeros([]).keep();
    this.correctSum = zeros([]).keep();
  }

  /** Continues from a restored position (see io/checkpoint.ts). */
  resumeAt(epoch: number, step: number, extra: Record<string, unknown> = {}): void {
    this.epoch = epoch;
    this.step = step;
    this.extra = extra;
  }

  /** One SGD step on a host batch; loss and correct count are added up on the GPU. */
  trainStep(batch: HostBatch, lr: number): void {
    this.optimizer.lr = lr;
    scope(() => {
      const [c, h, w] = this.train.imageShape;
      const x = Tensor.fromArray(batch.x, [batch.size, c, h, w]);
      const y = Tensor.fromArray(batch.y, [batch.size], 'u32');
      const logits = this.model.forward(x);
      const loss = softmaxCrossEntropy(logits, y, 'sum');
      noGrad(() => {
        accumulate_(this.lossSum, loss);
        accumulate_(this.correctSum, correctCount(logits, y));
      });
      // The sum's gradient is scaled to the mean's by the seed.
      loss.backward(Tensor.fromArray([1 / batch.size], []));
      this.optimizer.step();
      this.optimizer.zeroGrad();
      this.hooks.afterStep?.(this);
    });
  }

  /** Mean loss and accuracy over a batch source, in evaluation mode. */
  async evaluate(source: BatchSource): Promise<EvalResult> {
    this.model.eval();
    const lossSum = zeros([]);
    const correct = zeros([]);
    try {
      let count = 0;
      source.restart();
      for (const batch of source.batches()) {
        noGrad(() =>
          scope(() => {
            const [c, h, w] = source.imageShape;
            const x = Tensor.fromArray(batch.x, [batch.size, c, h, w]);
            const y = Tensor.fromArray(batch.y, [batch.size], 'u32');
            const logits = this.model.forward(x);
            accumulate_(lossSum, softmaxCrossEntropy(logits, y, 'sum'));
            accumulate_(correct, correctCount(logits, y));
          }),
        );
        count += batch.size;
      }
      const [l, a] = await Promise.all([lossSum.item(), correct.item()]);
      return { loss: l / count, accuracy: a / count, count };
    } finally {
      lossSum.dispose();
      correct.dispose();
      this.model.train();
    }
  }

  /**
   * Picks the conv kernels' blocks for a batch shape, forward and input gradient when `training` (ops/conv2d.ts
   * tuneConv2d): an evaluation-mode forward of zeros, so no BN statistic moves and no result changes.
   */
  private async tuneKernels(batch: number, training: boolean): Promise<void> {
    const [c, h, w] = this.train.imageShape;
    this.model.eval();
    await tuneConv2d(() => noGrad(() => scope(() => void this.model.forward(zeros([batch, c, h, w])))), { training });
    this.model.train();
  }

  private testTuned = false;

  /** The test set's evaluation, its kernels tuned on the first one (a run stopped inside its first epoch never pays for it). */
  private async evaluateTest(test: BatchSource): Promise<EvalResult> {
    if (!this.testTuned) {
      await this.tuneKernels(test.batchSize, false);
      this.testTuned = true;
    }
    return this.evaluate(test);
  }

  /** Trains from the current position to the last epoch. */
  async run(): Promise<EpochRecord[]> {
    const { epochs, schedule } = this.options;
    const logEvery = this.options.logEvery ?? 20;
    const checkpointEvery = this.options.checkpointEvery ?? 0;
    const steps = this.train.stepsPerEpoch;
    const records: EpochRecord[] = [];
    if (this.epoch === 0 && this.step === 0) await this.hooks.beforeTraining?.(this);
    await this.tuneKernels(this.train.batchSize, true);
    this.model.train();
    let totalSteps = 0;
    while (this.epoch < epochs) {
      const epoch = this.epoch;
      // A run resumed mid-epoch carries the epoch's sums so far, so its record covers the whole epoch.
      const carried = this.step > 0 ? takeEpochProgress(this.extra) : null;
      const started = performance.now() - 1000 * (carried?.seconds ?? 0);
      let images = carried?.images ?? 0;
      let seen = images;
      await this.resetCounters(carried);
      let lr = schedule.at(epoch);
      let lastLog = performance.now();
      let imagesSinceLog = 0;
      const progress = async (): Promise<EpochProgress> => {
        const [lossSum, correct] = await this.readCounters();
        return { lossSum, correct, images, seconds: (performance.now() - started) / 1000 };
      };
      for (const batch of this.train.batches()) {
        lr = schedule.at(epoch + this.step / steps);
        this.trainStep(batch, lr);
        this.step++;
        totalSteps++;
        images += batch.size;
        imagesSinceLog += batch.size;
        seen += batch.size;
        await this.hooks.betweenSteps?.(this);
        if (this.step % logEvery === 0 || this.step === steps) {
          const [loss, correct] = await this.readCounters();
          this.checkFinite(loss, epoch);
          const now = performance.now();
          const rate = (imagesSinceLog / (now - lastLog)) * 1000;
          lastLog = now;
          imagesSinceLog = 0;
          const remaining = ((steps - this.step) * (images / this.step || 0)) / (rate || 1);
          this.sink.status(
            `epoch ${epoch + 1}/${epochs} ${progressBar(this.step, steps)} ${this.step}/${steps} ` +
              `loss ${(loss / seen).toFixed(4)} acc ${((100 * correct) / seen).toFixed(2)}% ` +
              `${rate.toFixed(1)} img/s lr ${lr.toPrecision(3)} ETA ${formatDuration(remaining)}`,
          );
        }
        if (checkpointEvery > 0 && this.step % checkpointEvery === 0 && this.step < steps) await this.checkpoint(await progress());
        if (this.options.maxSteps && totalSteps >= this.options.maxSteps && this.step < steps) {
          await this.checkpoint(await progress());
          this.sink.line(`stopped after ${totalSteps} steps at epoch ${epoch + 1}, step ${this.step}/${steps}`);
          return records;
        }
      }
      const [trainLossSum, trainCorrect] = await this.readCounters();
      this.checkFinite(trainLossSum, epoch);
      const seconds = (performance.now() - started) / 1000;
      const evaluation = this.test ? await this.evaluateTest(this.test) : { loss: NaN, accuracy: NaN, count: 0 };
      const record: EpochRecord = {
        epoch: epoch + 1,
        lr,
        trainLoss: trainLossSum / Math.max(seen, 1),
        trainAccuracy: trainCorrect / Math.max(seen, 1),
        testLoss: evaluation.loss,
        testAccuracy: evaluation.accuracy,
        seconds,
        imagesPerSecond: images / seconds,
      };
      Object.assign(record, await this.hooks.afterEpoch?.(this, epoch, record));
      // Before the epoch's record is written, so metrics.jsonl never gets an epoch whose checkpoint is refused.
      const state = await this.finiteState();
      this.epoch++;
      this.step = 0;
      records.push(record);
      this.sink.line(
        `epoch ${record.epoch}/${epochs}: train loss ${record.trainLoss.toFixed(4)} acc ${(100 * record.trainAccuracy).toFixed(2)}% | ` +
          `test loss ${record.testLoss.toFixed(4)} acc ${(100 * record.testAccuracy).toFixed(2)}% | ` +
          `${record.imagesPerSecond.toFixed(1)} img/s, ${formatDuration(seconds)}`,
      );
      await this.store?.appendMetrics(record);
      await this.save(state);
      if (this.options.maxSteps && totalSteps >= this.options.maxSteps) break;
    }
    return records;
  }

  /**
   * Stops a run whose loss is no longer finite, before it saves: the checkpoint on disk is the last one
   * written while training was sound, and a resume from it can take a lower learning rate.
   */
  private checkFinite(lossSum: number, epoch: number): void {
    if (Number.isFinite(lossSum)) return;
    throw new Error(
      `training diverged: the loss of epoch ${epoch + 1} is ${lossSum} at step ${this.step}; nothing more is saved, so the last checkpoint ` +
        '(if any) is from before it. Resume from it with a lower --lr (or a longer warm-up), or start again',
    );
  }

  /**
   * The state a checkpoint writes, read back in one batch. A step can leave NaN or ±∞ in the weights after the
   * loss that preceded it was finite; such a state is never saved (checked on the host, since WGSL does not
   * promise to propagate NaN).
   */
  private async finiteState(): Promise<Pick<TrainerState, 'stateDict' | 'momentum'>> {
    const host = await checkpointToHost({
      model: this.model.stateDict(),
      optimizer: this.optimizer.velocityByName(this.model.namedParameters()),
      meta: {},
    });
    const named = [...host.model, ...[...host.optimizer!].map(([name, v]): [string, HostTensor] => [`momentum of ${name}`, v])];
    const bad = named.find(([, t]) => t.dtype === 'f32' && !t.data.every(Number.isFinite));
    if (bad) {
      throw new Error(
        `training diverged: ${bad[0]} holds NaN or infinite values at epoch ${this.epoch + 1}, step ${this.step}; nothing more is saved, ` +
          'so the last checkpoint (if any) is from before it. Resume from it with a lower --lr (or a longer warm-up), or start again',
      );
    }
    return { stateDict: host.model, momentum: host.optimizer! };
  }

  /** Saves the position; mid-epoch, `progress` holds the epoch's sums so far for the resumed run. */
  async checkpoint(progress?: EpochProgress): Promise<void> {
    if (progress) this.checkFinite(progress.lossSum, this.epoch);
    await this.save(await this.finiteState(), progress);
  }

  private async save(tensors: Pick<TrainerState, 'stateDict' | 'momentum'>, progress?: EpochProgress): Promise<void> {
    this.extra.loader = this.train.state();
    if (progress) this.extra.epochProgress = progress;
    else delete this.extra.epochProgress;
    await this.store?.saveCheckpoint({ ...tensors, optimizerSteps: this.optimizer.stepCount, epoch: this.epoch, step: this.step, extra: this.extra });
  }

  private async resetCounters(start: EpochProgress | null): Promise<void> {
    if (start) {
      gpu().upload(this.lossSum.buffer, Float32Array.of(start.lossSum));
      gpu().upload(this.correctSum.buffer, Float32Array.of(start.correct));
      return;
    }
    gpu().clear(this.lossSum.buffer);
    gpu().clear(this.correctSum.buffer);
  }

  private async readCounters(): Promise<[number, number]> {
    const [l, c] = await gpu().downloadMany([
      { buffer: this.lossSum.buffer, bytes: 4 },
      { buffer: this.correctSum.buffer, bytes: 4 },
    ]);
    return [new Float32Array(l)[0], new Float32Array(c)[0]];
  }

  dispose(): void {
    this.lossSum.dispose();
    this.correctSum.dispose();
  }
}
