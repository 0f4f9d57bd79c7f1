/**
 * Which filters to prune: in each layer the floor(C_out · P) filters with the smallest score (ties
 * broken by the lower index first, like a stable ascending sort), recomputed from the current weights;
 * and the rate each layer is pruned at.
 */
import type { PruneOptions } from './sfp.js';
import type { ConvRates } from './flops.js';

/** The options that decide a conv's rate. */
export type RateOptions = Pick<PruneOptions, 'rate' | 'skipStem' | 'skipLast' | 'asymptotic'>;

/** How many of `filters` filters rate P prunes: floor(C·P), as the SFP code's int(C·(1 − keep)). */
export function prunedCount(filters: number, rate: number): number {
  if (!(rate >= 0 && rate < 1)) throw new Error(`pruning rate must be in [0, 1), got ${rate}`);
  // The epsilon keeps exact products such as 10 · 0.3 from rounding down to 2.
  return Math.floor(filters * rate + 1e-9);
}

/** A 0/1 mask (1 = kept) pruning the `count` lowest scores; ties go to the lower index. */
export function maskFromScores(scores: ArrayLike<number>, count: number): Uint32Array {
  const order = Array.from({ length: scores.length }, (_, i) => i);
  order.sort((a, b) => scores[a] - scores[b] || a - b);
  const mask = new Uint32Array(scores.length).fill(1);
  for (let i = 0; i < count; i++) mask[order[i]] = 0;
  return mask;
}

/** Number of filters whose kept/pruned state differs between two masks (SFP's "regrowth"). */
export function maskChanges(previous: Uint32Array, next: Uint32Array): number {
  let changed = 0;
  for (let i = 0; i < next.length; i++) if (previous[i] !== next[i]) changed++;
  return changed;
}

/**
 * The asymptotic schedule of ASFP: the rate rises from 0 towards P as 1 − e^(−k·t), t = epoch / epochs,
 * normalised to reach P at the last epoch. ASFP fits an exponential a·e^(−k·t) + b through three points
 * whose constants sfp-reference.md does not have; k = 4 gives 64 % of P at a quarter of training and
 * 97 % at three quarters.
 */
export function asymptoticRate(finalRate: number, epoch: number, epochs: number, k = 4): number {
  const t = Math.min(1, Math.max(0, epoch / Math.max(epochs, 1)));
  return (finalRate * (1 - Math.exp(-k * t))) / (1 - Math.exp(-k));
}

/** A stage's pruning rate at a point of training (ASFP grows it; otherwise constant). */
export function stageRate(options: RateOptions, stage: number, epoch: number, epochs: number): number {
  const base = typeof options.rate === 'number' ? options.rate : options.rate[stage];
  return options.asymptotic ? asymptoticRate(base, epoch, epochs) : base;
}

/** The rate each conv role gets from `options` per stage (0 where a skip option leaves it unpruned). */
export function convRatesOf(options: RateOptions, stages: number, epoch = 1, epochs = 1): ConvRates {
  const rates = Array.from({ length: stages }, (_, stage) => stageRate(options, stage, epoch, epochs));
  return {
    stem: options.skipStem ? 0 : rates[0],
    first: rates,
    last: options.skipLast ? rates.map(() => 0) : rates,
  };
}
