/**
 * Soft Filter Pruning (He et al., IJCAI 2018) and hard pruning, as masks over the conv filters of a
 * ResNet. Soft (the paper's and official code's behaviour): masks are recomputed from the current
 * weights before training and at the end of every `pruneEvery` epochs (and after the last), and only
 * the weights are zeroed — gradients, momentum and BN are untouched, so zeroed filters keep training
 * and can come back. Hard: masks are chosen once and pruned filters are re-zeroed (weights and
 * momentum) after every optimizer step, so they never come back.
 */
import { Tensor, scope } from '../tensor/tensor.js';
import { gpu } from '../gpu/encoder.js';
import { noGrad } from '../autograd/mode.js';
import { applyFilterMask, filterScores, type NormCriterion } from '../ops/mask.js';
import type { SGD } from '../optim/sgd.js';
import { describeConvs, type CifarResNet, type ConvInfo, type ImageNetResNet } from '../models/resnet.js';
import { convRatesOf, maskChanges, maskFromScores, prunedCount, stageRate } from './criteria.js';
import type { ConvRates } from './flops.js';

export interface PruneOptions {
  /** The fraction P of filters pruned in each pruned layer, or one rate per stage. */
  rate: number | readonly number[];
  mode?: 'soft' | 'hard';
  criterion?: NormCriterion;
  /** Leave the stem conv unpruned. */
  skipStem?: boolean;
  /** Leave each block's last conv (the one that writes the residual stream) unpruned. */
  skipLast?: boolean;
  /** Leave projection shortcuts unpruned (the ImageNet default of the SFP code). */
  skipProjection?: boolean;
  /**
   * Convs writing into the same residual stream share one mask, ranked by their summed scores. Where
   * option-A shortcuts carry the previous stage's stream into the next (CIFAR ResNets), a stage's group
   * prunes only channels the shortcut leaves constant (its zero channels and the channels the previous
   * group pruned), so every stage's stream narrows, not only the first.
   */
  coupled?: boolean;
  /** ASFP: the rate grows from 0 to P over training. */
  asymptotic?: boolean;
}

export interface LayerMask {
  name: string;
  /** 1 = kept, 0 = pruned; one entry per output filter. */
  mask: Uint32Array;
  /** The largest pruned score (the threshold), or NaN when nothing is pruned. */
  threshold: number;
}

/** The masks of every pruned conv; prints as one line per layer. */
export class FilterMasks {
  constructor(readonly layers: Map<string, LayerMask>) {}

  /** Masks as a checkpoint stores them (conv name → mask), without the thresholds they were chosen at. */
  static fromByName(masks: ReadonlyMap<string, Uint32Array>): FilterMasks {
    return new FilterMasks(new Map([...masks].map(([name, mask]) => [name, { name, mask, threshold: NaN }])));
  }

  get(name: string): Uint32Array | undefined {
    return this.layers.get(name)?.mask;
  }

  /** Filters whose state differs from `previous` in total (soft pruning's regrowth). */
  changesFrom(previous: FilterMasks | null): number {
    if (!previous) return 0;
    let changed = 0;
    for (const [name, layer] of this.layers) {
      const before = previous.get(name);
      if (before) changed += maskChanges(before, layer.mask);
    }
    return changed;
  }

  kept(name: string): number {
    const m = this.get(name);
    return m ? m.reduce((a, b) => a + b, 0) : 0;
  }

  toString(): string {
    return [...this.layers.values()]
      .map((l) => `${l.name.padEnd(20)} kept ${this.kept(l.name)}/${l.mask.length}  threshold ${Number.isNaN(l.threshold) ? '-' : l.threshold.toExponential(3)}`)
      .join('\n');
  }

  /** Each pruned conv's mask by name, as checkpoints store them. */
  byName(): Map<string, Uint32Array> {
    return new Map([...this.layers].map(([name, layer]) => [name, layer.mask]));
  }

  toJSON(): Record<string, number[]> {
    return Object.fromEntries([...this.layers].map(([n, l]) => [n, [...l.mask]]));
  }
}

export class FilterPruner {
  readonly targets: ConvInfo[];
  /** Every conv of the model, pruned or not. */
  private readonly convs: ConvInfo[];
  /** Stages are joined by option-A shortcuts (subsample, append zero channels), not projections. */
  private readonly optionA: boolean;
  /** The model's stages (the stem counts with the first). */
  private readonly stages: number;
  readonly mode: 'soft' | 'hard';
  readonly criterion: NormCriterion;
  masks: FilterMasks | null = null;
  private gpuMasks = new Map<string, Tensor>();

  constructor(
    model: CifarResNet | ImageNetResNet,
    readonly options: PruneOptions,
  ) {
    this.mode = options.mode ?? 'soft';
    this.criterion = options.criterion ?? 'l2';
    this.convs = describeConvs(model);
    this.optionA = !this.convs.some((c) => c.role === 'projection');
    this.targets = this.convs.filter(
      (c) =>
        !(options.skipStem && c.role === 'stem') &&
        !(options.skipLast && c.role === 'last') &&
        !((options.skipProjection ?? true) && c.role === 'projection'),
    );
    this.stages = Math.max(...this.convs.map((c) => c.stage)) + 1;
    if (Array.isArray(options.rate) && options.rate.length !== this.stages) {
      throw new Error(`one pruning rate per stage: ${this.stages} needed, got ${options.rate.length}`);
    }
  }

  /** The rate for a layer at a point of training (ASFP grows it; otherwise constant). */
  rateFor(target: ConvInfo, epoch: number, epochs: number): number {
    return stageRate(this.options, target.stage, epoch, epochs);
  }

  /** The rate of every conv role per stage at a point of training, for the paper's FLOP formula. */
  convRates(epoch: number, epochs: number): ConvRates {
    return convRatesOf(this.options, this.stages, epoch, epochs);
  }

  /**
   * Scores every target on the GPU (one readback for all layers) and picks the masks at the rate of
   * `epoch` of `epochs` (ASFP's grows; by default the final rate, as convRates gives).
   */
  async computeMasks(epoch = 1, epochs = 1): Promise<FilterMasks> {
    const scoreTensors = scope(() => this.targets.map((t) => filterScores(t.conv.weight, this.criterion)));
    const raw = await gpu().downloadMany(scoreTensors.map((s) => ({ buffer: s.buffer, bytes: s.size * 4 })));
    scoreTensors.forEach((s) => s.dispose());
    const scores = new Map(this.targets.map((t, i) => [t.name, new Float32Array(raw[i])]));
    const layers = new Map<string, LayerMask>();
    const groups = this.options.coupled ? this.couplingGroups() : this.targets.map((t) => [t]);
    const streamMasks = new Map<number, Uint32Array>();
    for (const group of groups) {
      // A group shares one ranking: the sum of its members' scores per filter.
      const width = group[0].conv.outChannels;
      const summed = new Float64Array(width);
      for (const t of group) scores.get(t.name)!.forEach((v, i) => (summed[i] += v));
      const count = prunedCount(width, this.rateFor(group[0], epoch, epochs));
      const stream = group[0].stream;
      const fedByShortcutA = this.options.coupled === true && this.optionA && stream !== null && stream > 0;
      const previous = fedByShortcutA ? { mask: streamMasks.get(stream - 1) ?? null, width: this.streamWidth(stream - 1) } : null;
      const mask = previous ? maskFromScores(rankShortcutLiveLast(summed, previous.mask, previous.width), count) : maskFromScores(summed, count);
      // The stream narrows only where every conv writing it drops a channel (an unpruned stem keeps it whole)
      // and, past an option-A shortcut, only where that shortcut carries a constant too.
      if (stream !== null && group.length === this.convs.filter((c) => c.stream === stream).length) {
        streamMasks.set(stream, previous ? liveInStream(mask, previous.mask, previous.width) : mask);
      }
      let threshold = NaN;
      for (let i = 0; i < width; i++) if (!mask[i]) threshold = Number.isNaN(threshold) ? summed[i] : Math.max(threshold, summed[i]);
      for (const t of group) layers.set(t.name, { name: t.name, mask, threshold });
    }
    return new FilterMasks(layers);
  }

  /** Channels of a residual stream (the output width of the convs that write it). */
  private streamWidth(stream: number): number {
    return this.convs.find((c) => c.stream === stream)!.conv.outChannels;
  }

  /** Convs that write the same residual stream form one group; the others are groups of one. */
  couplingGroups(): ConvInfo[][] {
    const byStream = new Map<number, ConvInfo[]>();
    const groups: ConvInfo[][] = [];
    for (const t of this.targets) {
      if (t.stream === null) {
        groups.push([t]);
        continue;
      }
      let g = byStream.get(t.stream);
      if (!g) {
        byStream.set(t.stream, (g = []));
        groups.push(g);
      }
      g.push(t);
    }
    return groups;
  }

  /** Zeroes the pruned filters' weights in place (and, for hard pruning, their momentum). */
  apply(masks: FilterMasks, optimizer?: SGD): void {
    this.masks = masks;
    for (const t of this.targets) {
      const mask = masks.get(t.name);
      if (!mask) continue;
      let m = this.gpuMasks.get(t.name);
      if (!m) {
        m = Tensor.fromArray(mask, [mask.length], 'u32').keep();
        this.gpuMasks.set(t.name, m);
      } else {
        gpu().upload(m.buffer, mask);
      }
    }
    this.zeroPruned(optimizer);
  }

  /** Takes masks from a checkpoint without touching the weights (a resumed soft run must not re-zero mid-epoch). */
  restore(masks: FilterMasks): void {
    this.masks = masks;
    for (const t of this.targets) {
      const mask = masks.get(t.name);
      if (!mask) throw new Error(`the checkpoint has no mask for ${t.name}`);
      this.gpuMasks.get(t.name)?.dispose();
      this.gpuMasks.set(t.name, Tensor.fromArray(mask, [mask.length], 'u32').keep());
    }
  }

  /** Hard pruning calls this after every optimizer step; soft pruning only when masks change. */
  zeroPruned(optimizer?: SGD): void {
    noGrad(() => {
      for (const t of this.targets) {
        const m = this.gpuMasks.get(t.name);
        if (!m) continue;
        applyFilterMask(t.conv.weight, m);
        const velocity = optimizer?.velocity.get(t.conv.weight);
        if (velocity && this.mode === 'hard') applyFilterMask(velocity, m);
      }
    });
  }

  dispose(): void {
    for (const m of this.gpuMasks.values()) m.dispose();
    this.gpuMasks.clear();
  }
}

/**
 * The live channels (1) of a stream fed by an option-A shortcut: a channel its writers prune stays live when
 * the shortcut carries a live channel of the previous stream into it (`previous` = null: all of them live).
 */
function liveInStream(mask: Uint32Array, previous: Uint32Array | null, previousWidth: number): Uint32Array {
  return mask.map((kept, j) => (kept === 0 && (j >= previousWidth || (previous !== null && previous[j] === 0)) ? 0 : 1));
}

/**
 * Scores reordered so that a coupled group of an option-A stage ranks first the channels its shortcut
 * leaves constant: the appended zero channels (index ≥ the previous stream's width) and the channels
 * constant in the previous stream (`previous`, its live channels as liveInStream gives them; null: that
 * stream is not pruned). A channel the
 * shortcut keeps live stays live in the stream whatever the group does, so pruning it would not narrow
 * the stream; those channels follow, in their own score order, only when the others run out.
 */
export function rankShortcutLiveLast(summed: Float64Array, previous: Uint32Array | null, previousWidth: number): Float64Array {
  let max = 0;
  for (const v of summed) max = Math.max(max, v);
  return summed.map((v, j) => (j < previousWidth && (previous === null || previous[j] === 1) ? v + max + 1 : v));
}
