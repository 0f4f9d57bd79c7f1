/** BatchSources over the data loader: shuffled and augmented for training, in order for evaluation. */
import { DataLoader, type LoaderState } from '../data/loader.js';
import type { ImageDataset } from '../data/cifar10.js';
import type { BatchSource, HostBatch } from './trainer.js';

export class LoaderSource implements BatchSource {
  readonly imageShape = [3, 32, 32] as const;
  private readonly loader: DataLoader;

  constructor(dataset: ImageDataset, options: { batchSize: number; train: boolean; seed?: number }) {
    this.loader = new DataLoader(dataset, {
      batchSize: options.batchSize,
      shuffle: options.train,
      augment: options.train,
      dropLast: false,
      seed: options.seed ?? 0,
    });
  }

  get batchSize(): number {
    return this.loader.batchSize;
  }

  get stepsPerEpoch(): number {
    return this.loader.batchesPerEpoch;
  }

  *batches(): Iterable<HostBatch> {
    for (const b of this.loader.batches()) yield { x: b.x, y: b.y, size: b.size };
  }

  restart(): void {
    const s = this.loader.state();
    this.loader.setState({ ...s, epoch: 0, position: 0 });
  }

  state(): LoaderState {
    return this.loader.state();
  }

  setState(state: unknown): void {
    this.loader.setState(state as LoaderState);
  }
}
