// The epoch iterator: every epoch visits each image once in a seeded order, batches have the right shapes and values,
// and a loader restored from state() mid-epoch produces exactly what the original would have.
import { describe, expect, test } from 'vitest';
import { applyAugmentation, type Augmentation } from '../../src/data/augment.js';
import { CIFAR10_CLASSES, IMAGE_BYTES, type ImageDataset } from '../../src/data/cifar10.js';
import {
  CIFAR10_MEAN, CIFAR10_STD, DataLoader, normalizationTable, normalizeImages, type Batch, type LoaderOptions,
} from '../../src/data/loader.js';
import { Rng } from '../../src/tensor/random.js';

/** n images whose bytes are random, labels i mod 10. */
function dataset(n: number, seed = 5): ImageDataset {
  const rng = new Rng(seed);
  const images = new Uint8Array(n * IMAGE_BYTES);
  for (let i = 0; i < images.length; i++) images[i] = rng.nextU32() & 0xff;
  return { images, labels: Uint8Array.from({ length: n }, (_, i) => i % 10), count: n, classNames: CIFAR10_CLASSES };
}

/** −1 when the two arrays hold the same bytes, else the first differing element (cheaper than toEqual on big arrays). */
function firstDifference(a: ArrayLike<number> & ArrayBufferView, b: ArrayLike<number> & ArrayBufferView): number {
  const bytesOf = (v: ArrayBufferView) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (a.length === b.length && bytesOf(a).equals(bytesOf(b))) return -1;
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return Math.min(a.length, b.length);
}

function take(loader: DataLoader, k: number): Batch[] {
  return Array.from({ length: k }, () => loader.next());
}

const train: LoaderOptions = { batchSize: 8, shuffle: true, augment: true, seed: 42 };

describe('normalisation', () => {
  test('mean and std are the SFP values: 125.3, 123.0, 113.9 and 63.0, 62.1, 66.7 over 255', () => {
    expect(CIFAR10_MEAN.map((m) => m * 255)).toEqual([125.3, 123.0, 113.9].map((v) => expect.closeTo(v, 10)));
    expect(CIFAR10_STD.map((s) => s * 255)).toEqual([63.0, 62.1, 66.7].map((v) => expect.closeTo(v, 10)));
  });

  test('x = (v/255 − mean[c]) / std[c], rounded once to float32; byte 0 maps to −mean/std', () => {
    const lut = normalizationTable();
    const means = [125.3, 123.0, 113.9];
    const stds = [63.0, 62.1, 66.7];
    for (let c = 0; c < 3; c++) {
      for (const v of [0, 1, 125, 128, 254, 255]) {
        expect(lut[c * 256 + v]).toBe(Math.fround((v - means[c]) / stds[c]));
      }
    }
    expect(lut[0]).toBeCloseTo(-125.3 / 63.0, 6); // ≈ −1.9889
    expect(lut[2 * 256 + 255]).toBeCloseTo((255 - 113.9) / 66.7, 6); // ≈ 2.1154
  });

  test('without shuffling or augmentation, a batch is the first images normalised, labels as u32', () => {
    const d = dataset(10);
    const batch = new DataLoader(d, { batchSize: 4 }).next();
    expect(batch.x).toBeInstanceOf(Float32Array);
    expect(batch.y).toBeInstanceOf(Uint32Array);
    expect(batch.x.length).toBe(4 * 3 * 32 * 32);
    expect([...batch.y]).toEqual([0, 1, 2, 3]);
    expect(firstDifference(batch.x, normalizeImages(d.images.subarray(0, 4 * IMAGE_BYTES)))).toBe(-1);
    // The green plane of image 1, pixel (2, 3):
    const v = d.images[IMAGE_BYTES + 1024 + 2 * 32 + 3];
    expect(batch.x[IMAGE_BYTES + 1024 + 2 * 32 + 3]).toBe(Math.fround((v - 123.0) / 62.1));
  });
});

describe('epochs and batches', () => {
  test('each epoch is a permutation of all images, different every epoch, the same for the same seed', () => {
    const d = dataset(37);
    const a = new DataLoader(d, train);
    const b = new DataLoader(d, train);
    const orders: number[][] = [];
    for (let e = 0; e < 3; e++) {
      const batches = [...a.batches()];
      expect(batches.map((x) => x.size)).toEqual([8, 8, 8, 8, 5]); // the last partial batch is kept
      expect(batches.every((x) => x.epoch === e)).toBe(true);
      expect(batches.map((x) => x.index)).toEqual([0, 1, 2, 3, 4]);
      const order = batches.flatMap((x) => [...x.indices]);
      expect([...order].sort((p, q) => p - q)).toEqual(Array.from({ length: 37 }, (_, i) => i));
      expect(batches.flatMap((x) => [...x.y])).toEqual(order.map((i) => d.labels[i]));
      orders.push(order);
      const other = [...b.batches()];
      expect(other.flatMap((x) => [...x.indices])).toEqual(order);
      other.forEach((x, k) => expect(firstDifference(x.x, batches[k].x)).toBe(-1));
    }
    expect(orders[1]).not.toEqual(orders[0]);
    expect(orders[2]).not.toEqual(orders[1]);
    expect(a.epoch).toBe(3);
    const c = new DataLoader(d, { ...train, seed: 43 });
    expect([...c.batches()].flatMap((x) => [...x.indices])).not.toEqual(orders[0]);
  });

  test('dropLast drops the partial batch; without shuffle the order is the identity', () => {
    const d = dataset(37);
    const loader = new DataLoader(d, { batchSize: 8, dropLast: true });
    expect(loader.batchesPerEpoch).toBe(4);
    const batches = [...loader.batches()];
    expect(batches.map((x) => x.size)).toEqual([8, 8, 8, 8]);
    expect(batches.flatMap((x) => [...x.indices])).toEqual(Array.from({ length: 32 }, (_, i) => i));
    expect(loader.epoch).toBe(1);
    expect(() => new DataLoader(dataset(5), { batchSize: 8, dropLast: true })).toThrow(/leave no batch/);
  });

  test('augmented images are crops and flips of the originals, drawn by the loader\'s Rng', () => {
    // Replay the draws with a second Rng in the same stream: the loader draws (dy, dx, flip) per image, in batch order.
    const d = dataset(12);
    const loader = new DataLoader(d, { batchSize: 12, augment: true, seed: 3 });
    const rng = new Rng(0);
    rng.setState(loader.state().rng);
    const batch = loader.next();
    const lut = normalizationTable();
    const out = new Uint8Array(IMAGE_BYTES);
    let flips = 0;
    for (let b = 0; b < 12; b++) {
      const a: Augmentation = { dy: rng.int(9), dx: rng.int(9), flip: rng.uniform() < 0.5 };
      if (a.flip) flips++;
      applyAugmentation(d.images.subarray(b * IMAGE_BYTES, (b + 1) * IMAGE_BYTES), out, a, 4);
      const expected = Float32Array.from(out, (v, i) => lut[Math.floor(i / 1024) * 256 + v]);
      expect(firstDifference(batch.x.subarray(b * IMAGE_BYTES, (b + 1) * IMAGE_BYTES), expected), `image ${b}`).toBe(-1);
    }
    expect(flips).toBeGreaterThan(0);
  });
});

describe('resuming', () => {
  test('a loader restored mid-epoch from a JSON round trip of state() produces the same batches, across epochs', () => {
    const d = dataset(29);
    for (const stopAfter of [1, 2, 3, 4, 5, 7]) {
      const original = new DataLoader(d, train); // 4 batches per epoch: 8, 8, 8, 5
      take(original, stopAfter);
      const saved = JSON.parse(JSON.stringify(original.state()));
      const expected = take(original, 6);
      const resumed = new DataLoader(d, { ...train, seed: 999 }); // the seed comes from the state
      resumed.setState(saved);
      const got = take(resumed, 6);
      expect(got.map((b) => [b.epoch, b.index]), `stopped after ${stopAfter}`).toEqual(expected.map((b) => [b.epoch, b.index]));
      expect(got.map((b) => [...b.indices])).toEqual(expected.map((b) => [...b.indices]));
      got.forEach((b, k) => expect(firstDifference(b.x, expected[k].x), `stopped after ${stopAfter}, batch ${k}`).toBe(-1));
      expect(got.map((b) => [...b.y])).toEqual(expected.map((b) => [...b.y]));
    }
  });

  test('after the last batch of an epoch the state points at the start of the next', () => {
    const loader = new DataLoader(dataset(20), train);
    take(loader, 2);
    expect(loader.state()).toMatchObject({ epoch: 0, position: 16 });
    take(loader, 1);
    expect(loader.state()).toMatchObject({ epoch: 1, position: 0, permutationSeed: 42, count: 20, batchSize: 8 });
  });

  test('a state from a differently configured loader is refused, naming the difference', () => {
    const state = new DataLoader(dataset(20), train).state();
    expect(() => new DataLoader(dataset(20), { ...train, batchSize: 4 }).setState(state)).toThrow(
      'DataLoader.setState: the state is from a loader with batchSize 8; this one has batchSize 4',
    );
    expect(() => new DataLoader(dataset(21), train).setState(state)).toThrow(/count 20; this one has count 21/);
    expect(() => new DataLoader(dataset(20), train).setState({ ...state, position: 20 })).toThrow(/position 20 is outside 0..19/);
  });

  test('a corrupt random state is refused: an all-zero generator would crop every image at the corner and never flip', () => {
    const state = new DataLoader(dataset(20), train).state();
    const load = (patch: object) => () => new DataLoader(dataset(20), train).setState({ ...state, ...patch } as typeof state);
    expect(load({ rng: [null, null, null, null, null] })).toThrow(/Rng state must start with 4 integers in \[0, 2\^32\), not all zero/);
    expect(load({ rng: [0, 0, 0, 0, null] })).toThrow(/not all zero/);
    expect(load({ rng: [1, 2, 3] })).toThrow('Rng state must have 5 numbers');
    expect(load({ rng: undefined })).toThrow('DataLoader.setState: bad rng state');
    expect(load({ permutationSeed: 1.5 })).toThrow('DataLoader.setState: bad permutationSeed 1.5');
    expect(load({})).not.toThrow();
  });
});
