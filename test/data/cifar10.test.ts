// The CIFAR-10 binary reader: the real batches read back as the data README documents them, and broken inputs give
// errors that name the file and say what is wrong. The real data is read in place, where the other tests find it
// (test/support/data.ts).
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  CIFAR10_CLASSES, DEFAULT_DATA_DIR, IMAGE_BYTES, RECORD_BYTES, classCounts, concatDatasets, encodeCifar10Batch,
  TEST_FILES, TRAIN_FILES, parseCifar10Batch, parseClassNames, resolveDataDir, sliceDataset, type ImageDataset,
} from '../../src/data/cifar10.js';
import { Cifar10NotFoundError, loadCifar10, loadDataSplits, missingCifar10Files } from '../../src/data/node-files.js';
import { CIFAR10_TEST_DIR as REAL_DIR } from '../support/data.js';

/** Pixel (y, x) of image i as [R, G, B]. */
function rgb(d: ImageDataset, i: number, y: number, x: number): number[] {
  return [0, 1, 2].map((c) => d.images[i * IMAGE_BYTES + c * 1024 + y * 32 + x]);
}

describe('real CIFAR-10 batches', () => {
  let train: ImageDataset;
  let test_: ImageDataset;
  beforeAll(async () => {
    train = await loadCifar10(REAL_DIR, 'train');
    test_ = await loadCifar10(REAL_DIR, 'test');
  });

  test('the training set is the five batches in order: 50000 images, first labels 6 9 9 4 1 1 2 7 8 3', () => {
    expect(train.count).toBe(50_000);
    expect(train.images.length).toBe(50_000 * 3072);
    expect([...train.labels.subarray(0, 10)]).toEqual([6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
    expect(classCounts(train)).toEqual(new Array(10).fill(5000));
    expect(classCounts(sliceDataset(train, 0, 10_000))).toEqual([1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]);
    expect(classCounts(sliceDataset(train, 40_000))).toEqual([1014, 1014, 952, 1016, 997, 1025, 980, 977, 1003, 1022]);
  });

  test('the test set: 10000 images, first labels 3 8 8 0 6 6 1 6 3 1, 1000 per class', () => {
    expect(test_.count).toBe(10_000);
    expect([...test_.labels.subarray(0, 10)]).toEqual([3, 8, 8, 0, 6, 6, 1, 6, 3, 1]);
    expect(classCounts(test_)).toEqual(new Array(10).fill(1000));
  });

  test('known pixels: planes are R, G, B and rows are top first', () => {
    expect([...train.images.subarray(0, 8)]).toEqual([59, 43, 50, 68, 98, 119, 139, 145]); // red top row of image 0
    expect(rgb(train, 0, 31, 31)).toEqual([123, 92, 72]);
    expect(rgb(test_, 0, 0, 0)).toEqual([158, 112, 49]);
  });

  test('class names come from batches.meta.txt', async () => {
    expect(train.classNames).toEqual(CIFAR10_CLASSES);
    expect(train.classNames[train.labels[0]]).toBe('frog');
    // Names other than the built-in ones, so reading the file is what passes.
    const dir = await mkdtemp(join(tmpdir(), 'cifar-meta-'));
    try {
      const names = CIFAR10_CLASSES.map((n) => `${n}-renamed`);
      await writeFile(join(dir, 'batches.meta.txt'), names.join('\n') + '\n');
      await writeFile(join(dir, 'test_batch.bin'), encodeCifar10Batch({ images: new Uint8Array(IMAGE_BYTES), labels: Uint8Array.of(6), count: 1, classNames: names }));
      const renamed = await loadCifar10(dir, 'test');
      expect(renamed.classNames).toEqual(names);
      expect(renamed.classNames[renamed.labels[0]]).toBe('frog-renamed');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('loadDataSplits reads the folder named by --data and says so', async () => {
    const splits = await loadDataSplits({ data: REAL_DIR, env: {} });
    expect(splits.kind).toBe('cifar10');
    expect(splits.train.count).toBe(50_000);
    expect(splits.description).toContain('from --data');
  });

  test('testOnly (eval, compact) needs and reads only test_batch.bin; without it the training batches are missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cifar-test-only-'));
    try {
      await symlink(join(REAL_DIR, 'test_batch.bin'), join(dir, 'test_batch.bin'));
      const splits = await loadDataSplits({ data: dir, env: {}, testOnly: true });
      expect([splits.kind, splits.test.count, splits.train.count]).toEqual(['cifar10', 10_000, 0]);
      expect(splits.description).toContain(': 10000 test images');
      await expect(loadDataSplits({ data: dir, env: {} })).rejects.toThrow(/missing data_batch_1\.bin, .*data_batch_5\.bin\./);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('parsing and its errors', () => {
  const tiny: ImageDataset = {
    images: Uint8Array.from({ length: 3 * IMAGE_BYTES }, (_, i) => (i * 7) & 0xff),
    labels: Uint8Array.from([0, 9, 4]),
    count: 3,
    classNames: CIFAR10_CLASSES,
  };

  test('encode then parse gives the same images and labels', () => {
    const bytes = encodeCifar10Batch(tiny);
    expect(bytes.length).toBe(3 * RECORD_BYTES);
    expect(bytes[RECORD_BYTES]).toBe(9); // the second record starts with its label
    const back = parseCifar10Batch(bytes, 'tiny.bin');
    expect(back.count).toBe(3);
    expect([...back.labels]).toEqual([0, 9, 4]);
    expect(back.images).toEqual(tiny.images);
  });

  test('concatDatasets keeps the order of its parts', () => {
    const both = concatDatasets([tiny, sliceDataset(tiny, 1, 2)]);
    expect([...both.labels]).toEqual([0, 9, 4, 9]);
    expect(both.images.subarray(3 * IMAGE_BYTES)).toEqual(tiny.images.subarray(IMAGE_BYTES, 2 * IMAGE_BYTES));
  });

  test('a size that is not a multiple of 3073 names the file and the expected size', () => {
    const bytes = encodeCifar10Batch(tiny).subarray(0, 2 * RECORD_BYTES + 100);
    expect(() => parseCifar10Batch(bytes, 'data_batch_3.bin')).toThrow(
      /data_batch_3\.bin: 6246 bytes is not a whole number .* multiple of 3073, e\.g\. 6146 for 2 records/,
    );
    expect(() => parseCifar10Batch(new Uint8Array(0), 'empty.bin')).toThrow(/empty\.bin: 0 bytes/);
  });

  test('a label outside 0..9 names the file, the record and its byte offset', () => {
    const bytes = encodeCifar10Batch(tiny);
    bytes[2 * RECORD_BYTES] = 10;
    expect(() => parseCifar10Batch(bytes, 'test_batch.bin')).toThrow(
      'test_batch.bin: record 2 (byte offset 6146) has label 10; labels must be 0..9',
    );
  });

  test('batches.meta.txt must list 10 names', () => {
    expect(parseClassNames(CIFAR10_CLASSES.join('\r\n') + '\n\n')).toEqual(CIFAR10_CLASSES);
    expect(() => parseClassNames('a\nb\n', 'meta.txt')).toThrow('meta.txt: expected 10 class names, one per line, found 2');
  });
});

describe('finding the data folder', () => {
  let empty: string;
  let partial: string;
  beforeAll(async () => {
    empty = await mkdtemp(join(tmpdir(), 'cifar-empty-'));
    partial = await mkdtemp(join(tmpdir(), 'cifar-partial-'));
    const one = encodeCifar10Batch({ images: new Uint8Array(IMAGE_BYTES), labels: new Uint8Array(1), count: 1, classNames: CIFAR10_CLASSES });
    await writeFile(join(partial, 'data_batch_1.bin'), one);
    await writeFile(join(partial, 'test_batch.bin'), one);
  });
  afterAll(async () => {
    await rm(empty, { recursive: true, force: true });
    await rm(partial, { recursive: true, force: true });
  });

  test('order: --data, then CIFAR10_DIR, then ./data/cifar-10-batches-bin', () => {
    expect(resolveDataDir({ data: '/a', env: { CIFAR10_DIR: '/b' } })).toEqual({ dir: '/a', source: 'flag' });
    expect(resolveDataDir({ env: { CIFAR10_DIR: '/b' } })).toEqual({ dir: '/b', source: 'env' });
    expect(resolveDataDir({ env: {} })).toEqual({ dir: DEFAULT_DATA_DIR, source: 'default' });
    expect(DEFAULT_DATA_DIR).toBe('./data/cifar-10-batches-bin');
  });

  test('missing files are all listed, with how to get them', async () => {
    expect(await missingCifar10Files(partial)).toEqual(['data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin']);
    const error = await loadCifar10(partial, 'train').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Cifar10NotFoundError);
    const message = (error as Error).message;
    expect(message).toContain('missing data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin');
    expect(message).toMatch(/`npm run cli -- data`.*--data DIR.*CIFAR10_DIR/);
    // The test split is complete there, so it loads.
    expect((await loadCifar10(partial, 'test')).count).toBe(1);
  });

  test('an empty default folder falls back to the synthetic set, and says why', async () => {
    const splits = await loadDataSplits({ env: {}, defaultDir: empty, synthetic: { trainCount: 50, testCount: 20, seed: 3 } });
    expect(splits.kind).toBe('synthetic');
    expect([splits.train.count, splits.test.count]).toEqual([50, 20]);
    expect(splits.description).toMatch(/no CIFAR-10 in .*cifar-empty-.*using the synthetic 10-class set \(50 train, 20 test, seed 3\)/);
  });

  test('a folder named by --data or CIFAR10_DIR must hold the data: no silent fallback', async () => {
    await expect(loadDataSplits({ data: empty, env: {} })).rejects.toThrow(/CIFAR-10 not found in .*\(from --data\): missing data_batch_1\.bin/);
    await expect(loadDataSplits({ env: { CIFAR10_DIR: empty } })).rejects.toThrow(/\(from CIFAR10_DIR\)/);
    await expect(loadDataSplits({ env: {}, defaultDir: empty, allowSynthetic: false })).rejects.toThrow(Cifar10NotFoundError);
    // The parent of the download's folder: the error says where the files are.
    const parent = await mkdtemp(join(tmpdir(), 'cifar-parent-'));
    try {
      const inside = join(parent, 'cifar-10-batches-bin');
      await mkdir(inside);
      const one = encodeCifar10Batch({ images: new Uint8Array(IMAGE_BYTES), labels: new Uint8Array(1), count: 1, classNames: CIFAR10_CLASSES });
      for (const name of [...TRAIN_FILES, ...TEST_FILES]) await writeFile(join(inside, name), one);
      await expect(loadDataSplits({ data: parent, env: {} })).rejects.toThrow(`They are in ${inside}: point --data (or CIFAR10_DIR) there.`);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
    // A half-complete default folder is an error too: it is a broken download, not "no data".
    await expect(loadDataSplits({ env: {}, defaultDir: partial })).rejects.toThrow(/missing data_batch_2\.bin/);
  });

  test('a data folder whose batches hold fewer records than the official ones (cut at a record boundary) is refused, naming the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cifar-short-'));
    try {
      const one = encodeCifar10Batch({ images: new Uint8Array(IMAGE_BYTES), labels: new Uint8Array(1), count: 1, classNames: CIFAR10_CLASSES });
      for (const name of [...TRAIN_FILES, ...TEST_FILES]) await writeFile(join(dir, name), one);
      await expect(loadDataSplits({ data: dir, env: {} })).rejects.toThrow(
        `${join(dir, 'data_batch_1.bin')}: 1 records where the official CIFAR-10 batch holds 10000; the file is truncated or not from the official set. Replace it with a good copy`,
      );
      // Read as one split with no count asked for, the same file loads.
      expect((await loadCifar10(dir, 'test')).count).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a corrupt file in the folder gives the parse error with its path, and how to get a good copy', async () => {
    const root = await mkdtemp(join(tmpdir(), 'cifar-bad-'));
    try {
      // In a folder of another name: replace it; in the download layout: download it again into that folder.
      for (const dir of [root, join(root, 'cifar-10-batches-bin')]) {
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, 'test_batch.bin'), new Uint8Array(RECORD_BYTES + 1));
        await expect(loadCifar10(dir, 'test')).rejects.toThrow(`${join(dir, 'test_batch.bin')}: 3074 bytes is not a whole number`);
      }
      await expect(loadCifar10(root, 'test')).rejects.toThrow('Replace it with a good copy, or point --data (or CIFAR10_DIR) at one');
      await expect(loadCifar10(join(root, 'cifar-10-batches-bin'), 'test')).rejects.toThrow(`data --dir ${root} --force`);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
