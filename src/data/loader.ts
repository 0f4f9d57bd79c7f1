/**
 * The epoch iterator that feeds the trainer host batches: seeded shuffling (Fisher–Yates), batching, augmentation on
 * the CPU (augment.ts) and normalisation to float32, giving `{ x: [B,3,32,32] f32, y: [B] u32 }` for `gpu.upload`.
 * It can stop and resume anywhere: the order of epoch e is a pure function of (permutationSeed, e), and the
 * augmentation draws come from one Rng whose state is saved, so state() after batch k and setState() in a fresh
 * loader continue with exactly the batch k+1 the first loader would have produced.
 */
import { Rng } from '../tensor/random.js';
import { applyAugmentation, drawAugmentation, type AugmentOptions } from './augment.js';
import { IMAGE_BYTES, IMAGE_CHANNELS, IMAGE_SIZE, type ImageDataset } from './cifar10.js';

/** Per-channel mean and std in [0,1] used by the SFP code (and most CIFAR ResNet code): 125.3/255 … and 63.0/255 …. */
export const CIFAR10_MEAN: readonly number[] = Object.freeze([125.3 / 255, 123.0 / 255, 113.9 / 255]);
export const CIFAR10_STD: readonly number[] = Object.freeze([63.0 / 255, 62.1 / 255, 66.7 / 255]);

const PIXELS = IMAGE_SIZE * IMAGE_SIZE;

export interface LoaderOptions {
  batchSize: number;
  /** A new random order every epoch (default false, as in PyTorch's DataLoader). */
  shuffle?: boolean;
  /** Random crop with zero padding and horizontal flip; true means padding 4 and flip (default false). */
  augment?: boolean | AugmentOptions;
  /** Drop the last batch when it is smaller than batchSize (default false: keep it). */
  dropLast?: boolean;
  /** Seeds the order (as the permutation seed) and the augmentation draws. Default 0. */
  seed?: number;
  /** Normalisation: x = (v/255 − mean[c]) / std[c]. Defaults CIFAR10_MEAN and CIFAR10_STD. */
  mean?: readonly number[];
  std?: readonly number[];
}

export interface Batch {
  /** [size, 3, 32, 32], normalised. */
  x: Float32Array;
  /** [size] class indices. */
  y: Uint32Array;
  size: number;
  /** The epoch this batch belongs to, and its index within the epoch. */
  epoch: number;
  index: number;
  /** Which dataset images, in batch order. */
  indices: Uint32Array;
}

/**
 * Everything needed to continue exactly where a loader stopped. Plain numbers, so it goes into a checkpoint as JSON.
 * `count`, `batchSize`, `shuffle` and `dropLast` are there to refuse a state from a differently configured loader.
 */
export interface LoaderState {
  epoch: number;
  /** Samples of this epoch's order already produced. */
  position: number;
  /** The augmentation generator's state (Rng.state()). */
  rng: number[];
  permutationSeed: number;
  count: number;
  batchSize: number;
  shuffle: boolean;
  dropLast: boolean;
}

export class DataLoader {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  private readonly augment: AugmentOptions | null;
  private readonly lut: Float32Array;
  private readonly rng: Rng;
  private readonly scratch = new Uint8Array(IMAGE_BYTES);
  private permutationSeed: number;
  private epochNumber = 0;
  private cursor = 0;
  private order: Uint32Array;

  constructor(readonly dataset: ImageDataset, options: LoaderOptions) {
    const { batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`DataLoader: batchSize must be a whole number ≥ 1, got ${batchSize}`);
    this.batchSize = batchSize;
    this.shuffle = options.shuffle ?? false;
    this.dropLast = options.dropLast ?? false;
    if (this.dropLast && dataset.count < batchSize) {
      throw new Error(`DataLoader: ${dataset.count} images and dropLast with batchSize ${batchSize} leave no batch at all`);
    }
    if (dataset.count === 0) throw new Error('DataLoader: the dataset is empty');
    const a = options.augment ?? false;
    this.augment = a === false ? null : a === true ? { padding: 4, flip: true } : { padding: a.padding ?? 4, flip: a.flip ?? true };
    this.lut = normalizationTable(options.mean ?? CIFAR10_MEAN, options.std ?? CIFAR10_STD);
    const seed = (options.seed ?? 0) >>> 0;
    this.permutationSeed = seed;
    this.rng = new Rng(seed ^ 0x6a09e667); // a stream separate from the order's
    this.order = this.orderFor(0);
  }

  /** Samples produced per epoch (all of them, or the whole batches only with dropLast). */
  get samplesPerEpoch(): number {
    const n = this.dataset.count;
    return this.dropLast ? n - (n % this.batchSize) : n;
  }

  get batchesPerEpoch(): number {
    return Math.ceil(this.samplesPerEpoch / this.batchSize);
  }

  /** The epoch the next batch belongs to. */
  get epoch(): number {
    return this.epochNumber;
  }

  /** Samples of the current epoch already produced. */
  get position(): number {
    return this.cursor;
  }

  /**
   * The next batch. After the last batch of an epoch the loader is already at the start of the next one, so a state
   * saved then resumes with the new epoch rather than with an empty remainder.
   */
  next(): Batch {
    const end = this.samplesPerEpoch;
    const start = this.cursor;
    const size = Math.min(this.batchSize, end - start);
    const indices = this.order.slice(start, start + size);
    const x = new Float32Array(size * IMAGE_BYTES);
    const y = new Uint32Array(size);
    const { images, labels } = this.dataset;
    for (let b = 0; b < size; b++) {
      const i = indices[b];
      let src = images.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES);
      if (this.augment) {
        applyAugmentation(src, this.scratch, drawAugmentation(this.rng, this.augment), this.augment.padding);
        src = this.scratch;
      }
      normalizeInto(src, x, b * IMAGE_BYTES, this.lut);
      y[b] = labels[i];
    }
    const batch: Batch = { x, y, size, epoch: this.epochNumber, index: Math.floor(start / this.batchSize), indices };
    this.cursor = start + size;
    if (this.cursor >= end) {
      this.epochNumber++;
      this.cursor = 0;
      this.order = this.orderFor(this.epochNumber);
    }
    return batch;
  }

  /** The batches left in the current epoch (all of them when it has just begun); afterwards `epoch` is the next one. */
  *batches(): Generator<Batch, void, undefined> {
    const epoch = this.epochNumber;
    while (this.epochNumber === epoch) yield this.next();
  }

  state(): LoaderState {
    return {
      epoch: this.epochNumber,
      position: this.cursor,
      rng: this.rng.state(),
      permutationSeed: this.permutationSeed,
      count: this.dataset.count,
      batchSize: this.batchSize,
      shuffle: this.shuffle,
      dropLast: this.dropLast,
    };
  }

  /** Continues from a state() of a loader over the same dataset with the same batchSize, shuffle and dropLast. */
  setState(state: LoaderState): void {
    const mismatch = (['count', 'batchSize', 'shuffle', 'dropLast'] as const).filter(
      (k) => state[k] !== (k === 'count' ? this.dataset.count : this[k]),
    );
    if (mismatch.length > 0) {
      const saved = mismatch.map((k) => `${k} ${state[k]}`).join(', ');
      const here = mismatch.map((k) => `${k} ${k === 'count' ? this.dataset.count : this[k]}`).join(', ');
      throw new Error(`DataLoader.setState: the state is from a loader with ${saved}; this one has ${here}`);
    }
    if (!Number.isInteger(state.epoch) || state.epoch < 0) throw new Error(`DataLoader.setState: bad epoch ${state.epoch}`);
    if (!Number.isInteger(state.position) || state.position < 0 || state.position >= this.samplesPerEpoch) {
      throw new Error(`DataLoader.setState: position ${state.position} is outside 0..${this.samplesPerEpoch - 1}`);
    }
    if (!Number.isInteger(state.permutationSeed) || state.permutationSeed < 0 || state.permutationSeed >= 2 ** 32) {
      throw new Error(`DataLoader.setState: bad permutationSeed ${state.permutationSeed}`);
    }
    if (!Array.isArray(state.rng)) throw new Error(`DataLoader.setState: bad rng state ${JSON.stringify(state.rng)}`);
    // JSON turns the Rng's NaN ("no spare normal") into null; read it back as NaN.
    this.rng.setState(state.rng.map((v) => (v === null ? NaN : v)));
    this.permutationSeed = state.permutationSeed;
    this.epochNumber = state.epoch;
    this.cursor = state.position;
    this.order = this.orderFor(state.epoch);
  }

  /** Epoch e's order: the identity, or a Fisher–Yates shuffle by an Rng seeded from (permutationSeed, e). */
  private orderFor(epoch: number): Uint32Array {
    const order = new Uint32Array(this.dataset.count);
    for (let i = 0; i < order.length; i++) order[i] = i;
    if (this.shuffle) new Rng((this.permutationSeed ^ Math.imul(epoch + 1, 0x9e3779b9)) >>> 0).shuffle(order);
    return order;
  }
}

/** lut[c·256 + v] = (v/255 − mean[c]) / std[c], computed in float64 and rounded once to float32. */
export function normalizationTable(mean: readonly number[] = CIFAR10_MEAN, std: readonly number[] = CIFAR10_STD): Float32Array {
  if (mean.length !== IMAGE_CHANNELS || std.length !== IMAGE_CHANNELS) {
    throw new Error(`normalisation needs ${IMAGE_CHANNELS} means and stds, got ${mean.length} and ${std.length}`);
  }
  const lut = new Float32Array(IMAGE_CHANNELS * 256);
  for (let c = 0; c < IMAGE_CHANNELS; c++) {
    if (!(std[c] > 0)) throw new Error(`normalisation std[${c}] must be > 0, got ${std[c]}`);
    for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - mean[c]) / std[c];
  }
  return lut;
}

/** Normalises one CHW byte image into `out` at `offset` through a normalizationTable. */
export function normalizeInto(image: Uint8Array, out: Float32Array, offset: number, lut: Float32Array): void {
  for (let c = 0; c < IMAGE_CHANNELS; c++) {
    const plane = c * PIXELS;
    const table = c * 256;
    const o = offset + plane;
    for (let p = 0; p < PIXELS; p++) out[o + p] = lut[table + image[plane + p]];
  }
}

/** Normalises `count` images from `images` (e.g. a whole test set) into a new float32 array. */
export function normalizeImages(images: Uint8Array, count = images.length / IMAGE_BYTES, mean = CIFAR10_MEAN, std = CIFAR10_STD): Float32Array {
  const lut = normalizationTable(mean, std);
  const out = new Float32Array(count * IMAGE_BYTES);
  for (let i = 0; i < count; i++) normalizeInto(images.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES), out, i * IMAGE_BYTES, lut);
  return out;
}
