/**
 * Learning-rate schedules as pure functions of training progress, so a resumed run gets exactly the
 * rate it would have had: multi-step (the SFP paper's), cosine and one-cycle, the first two with an optional
 * warm-up (a ramp, or a constant low rate). Progress is measured in epochs as a real number (epoch + step / stepsPerEpoch).
 */

export type ScheduleKind = 'multistep' | 'cosine' | 'onecycle' | 'constant';

export interface ScheduleOptions {
  kind: ScheduleKind;
  /** Base learning rate (the peak of cosine and onecycle; multistep gammas may raise it, as SFP's 10 at epoch 1). */
  lr: number;
  epochs: number;
  /** multistep: epochs at which the rate is multiplied by gamma (cumulatively). */
  milestones?: readonly number[];
  /** multistep: one factor for every milestone, or one per milestone (SFP: 0.2 at 60, 120, 160). */
  gamma?: number | readonly number[];
  /** Warm-up epochs at the start (may be fractional; onecycle has its own rise). */
  warmupEpochs?: number;
  /** The warm-up's rate as a fraction of lr (default 0.1). */
  warmupStart?: number;
  /** linear (default): a ramp from lr·warmupStart to lr; constant: lr·warmupStart throughout, as the SFP code runs its epoch 0. */
  warmupShape?: 'linear' | 'constant';
  /** cosine / onecycle: final rate as a fraction of lr. */
  finalFraction?: number;
  /** onecycle: fraction of training spent rising to the peak. */
  peakAt?: number;
  /** onecycle: starting rate as a fraction of lr. */
  startFraction?: number;
}

export class LrSchedule {
  constructor(readonly options: ScheduleOptions) {
    const { lr, epochs } = options;
    if (!(lr > 0)) throw new Error(`learning rate must be > 0, got ${lr}`);
    if (!(epochs > 0)) throw new Error(`epochs must be > 0, got ${epochs}`);
    const gamma = options.gamma;
    if (Array.isArray(gamma) && gamma.length !== (options.milestones ?? []).length) {
      throw new Error(`multistep: ${gamma.length} gammas for ${(options.milestones ?? []).length} milestones`);
    }
    if (!((options.warmupEpochs ?? 0) >= 0)) throw new Error(`warmupEpochs must be ≥ 0, got ${options.warmupEpochs}`);
    const peakAt = options.peakAt ?? 0.25;
    if (options.kind === 'onecycle' && !(peakAt > 0 && peakAt < 1)) throw new Error(`onecycle: peakAt must be in (0, 1), got ${peakAt}`);
  }

  /** The rate at `progress` epochs into training. */
  at(progress: number): number {
    const o = this.options;
    const warmup = o.warmupEpochs ?? 0;
    if (warmup > 0 && progress < warmup && o.kind !== 'onecycle') {
      const start = o.warmupStart ?? 0.1;
      if (o.warmupShape === 'constant') return o.lr * start;
      return o.lr * (start + (1 - start) * (progress / warmup));
    }
    switch (o.kind) {
      case 'constant':
        return o.lr;
      case 'multistep': {
        let rate = o.lr;
        (o.milestones ?? []).forEach((m, i) => {
          if (progress >= m) rate *= typeof o.gamma === 'number' || o.gamma === undefined ? (o.gamma ?? 0.1) : o.gamma[i];
        });
        return rate;
      }
      case 'cosine': {
        const final = o.lr * (o.finalFraction ?? 0);
        const t = Math.min(1, Math.max(0, (progress - warmup) / Math.max(o.epochs - warmup, 1e-9)));
        return final + 0.5 * (o.lr - final) * (1 + Math.cos(Math.PI * t));
      }
      case 'onecycle': {
        // Linear rise to the peak, then cosine annealing down. Not torch's OneCycleLR as such: its 'cos'
        // strategy also rises along a cosine, its 'linear' one also falls along a line, and its defaults
        // differ (peak at 30 %, start at 1/25 of the peak, end at 1/10⁴ of the start).
        const peakAt = o.peakAt ?? 0.25;
        const start = o.lr * (o.startFraction ?? 0.04);
        const final = o.lr * (o.finalFraction ?? 1e-3);
        const t = Math.min(1, Math.max(0, progress / o.epochs));
        if (t < peakAt) return start + (o.lr - start) * (t / peakAt);
        const u = (t - peakAt) / (1 - peakAt);
        return final + 0.5 * (o.lr - final) * (1 + Math.cos(Math.PI * u));
      }
    }
  }
}

/**
 * The SFP paper's CIFAR schedule, as scripts/cifar10_resnet.sh runs it (`--learning_rate 0.01 --schedule 1 60
 * 120 160 --gammas 10 0.2 0.2 0.2`, cumulative): 0.01 for the whole first epoch, then 0.1, ×0.2 at epochs 60,
 * 120 and 160. The first epoch is a constant warm-up, not a ramp.
 */
export function sfpPaperSchedule(epochs = 200): LrSchedule {
  const steps = ([[1, 10], [60, 0.2], [120, 0.2], [160, 0.2]] as const).filter(([m]) => m < epochs);
  return new LrSchedule({
    kind: 'multistep',
    lr: 0.01,
    epochs,
    milestones: steps.map(([m]) => m),
    gamma: steps.map(([, g]) => g),
  });
}
