/** BatchSources over the data loader: shuffled and augmented for training, in order for evaluation. */
import { DataLoader, type LoaderState } from '../data/loader.js';
import type { ImageDataset } from '../data/cifar10.js';
import type { BatchSource, HostBatch } from './trainer.js';

export class LoaderSource implements BatchSource {
  readonly imageShape = [3, 32, 32] as const;
  private readonly loader: DataLoader;
  private readonly initial: LoaderState;

  constructor(dataset: ImageDataset, options: { batchSize: number; train: boolean; seed?: number }) {
    this.loader = new DataLoader(dataset, {
      batchSize: options.batchSize,
      shuffle: options.train,
      augment: options.train,
      dropLast: false,
      seed: options.seed ?? 0,
    });
    this.initial = this.loader.state();
  }

  /** The largest batch it yields: the loader's batch size, or the whole set when that is smaller. */
  get batchSize(): number {
    return Math.min(this.loader.batchSize, this.loader.samplesPerEpoch);
  }

  get stepsPerEpoch(): number {
    return this.loader.batchesPerEpoch;
  }

  *batches(): Iterable<HostBatch> {
    for (const b of this.loader.batches()) yield { x: b.x, y: b.y, size: b.size };
  }

  /**
   * Back to the loader's first epoch as constructed, augmentation draws included: every restart yields
   * the same batches, so a BN recalibration depends on the weights alone and a resumed run repeats it
   * exactly.
   */
  restart(): void {
    this.loader.setState(this.initial);
  }

  state(): LoaderState {
    return this.loader.state();
  }

  setState(state: unknown): void {
    this.loader.setState(state as LoaderState);
  }
}
