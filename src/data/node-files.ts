/**
 * Node-only: reads CIFAR-10 binary batches from a folder (the parsing itself is in `cifar10.ts`) and chooses between
 * real data and the synthetic set. A browser build fetches the same files and calls parseCifar10Batch directly.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import {
  BATCHES_FOLDER, CIFAR10_CLASSES, META_FILE, OFFICIAL_BATCH_RECORDS, TEST_FILES, TRAIN_FILES, concatDatasets, describeDataDir, howToGetCifar10,
  parseCifar10Batch, parseClassNames, resolveDataDir,
  type DataDirSource, type ImageDataset, type Split,
} from './cifar10.js';
import { syntheticCifar10 } from './synthetic.js';

/** Thrown when batch files are missing; `missing` lists them, the message says how to get them. */
export class Cifar10NotFoundError extends Error {
  /** `inside`: a subfolder that holds every batch file (the folder named was its parent). */
  constructor(readonly dir: string, readonly missing: readonly string[], source: DataDirSource = 'flag', inside?: string) {
    super(
      `CIFAR-10 not found in ${describeDataDir(dir, source)}: missing ${missing.join(', ')}. ` +
        (inside ? `They are in ${inside}: point --data (or CIFAR10_DIR) there.` : howToGetCifar10()),
    );
    this.name = 'Cifar10NotFoundError';
  }
}

/** The batch files of `split` that are not in `dir` (absolute or relative to the working directory). */
export async function missingCifar10Files(dir: string, splits: readonly Split[] = ['train', 'test']): Promise<string[]> {
  const names = splits.flatMap((s) => (s === 'train' ? TRAIN_FILES : TEST_FILES));
  const found = await Promise.all(names.map((n) => stat(join(dir, n)).then((s) => s.isFile(), () => false)));
  return names.filter((_, i) => !found[i]);
}

/**
 * Loads one split from `dir`: the five `data_batch_k.bin` in order for 'train', `test_batch.bin` for 'test'. Class
 * names come from `batches.meta.txt` when it is there. Missing files give a Cifar10NotFoundError listing all of them.
 * `recordsPerFile`: the count each file must hold (a file cut at a record boundary parses, but is not the official set).
 */
export async function loadCifar10(dir: string, split: Split, source: DataDirSource = 'flag', recordsPerFile?: number): Promise<ImageDataset> {
  const missing = await missingCifar10Files(dir, [split]);
  if (missing.length > 0) throw new Cifar10NotFoundError(dir, missing, source);
  const classNames = await readClassNames(dir);
  const names = split === 'train' ? TRAIN_FILES : TEST_FILES;
  const parts: ImageDataset[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const buffer = await readFile(path);
    try {
      const part = parseCifar10Batch(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength), path, classNames);
      if (recordsPerFile !== undefined && part.count !== recordsPerFile) {
        throw new Error(`${path}: ${part.count} records where the official CIFAR-10 batch holds ${recordsPerFile}; the file is truncated or not from the official set.`);
      }
      parts.push(part);
    } catch (error) {
      const fix =
        basename(dir) === BATCHES_FOLDER
          ? `Download it again with \`npx tsx src/cli/main.ts data --dir ${dirname(dir)} --force\`, or point --data (or CIFAR10_DIR) at a good copy.`
          : 'Replace it with a good copy, or point --data (or CIFAR10_DIR) at one (`npx tsx src/cli/main.ts data --force` downloads one into data/).';
      throw new Error(`${(error as Error).message} ${fix}`, { cause: error });
    }
  }
  return parts.length === 1 ? parts[0] : concatDatasets(parts);
}

export interface DataSplits {
  train: ImageDataset;
  test: ImageDataset;
  /** 'cifar10' when read from `dir`, 'synthetic' when generated. */
  kind: 'cifar10' | 'synthetic';
  /** The folder read (absolute), or the one looked in before falling back. */
  dir: string;
  /** One line for the log: what was loaded, or why the synthetic set is used. */
  description: string;
}

export interface LoadDataOptions {
  /** `--data DIR`. */
  data?: string;
  /** Defaults to process.env (for CIFAR10_DIR). */
  env?: Record<string, string | undefined>;
  /**
   * Use the synthetic set when the default folder has no data (default true). A folder named with --data or
   * CIFAR10_DIR must hold the data: a typo there is an error, never a silent fallback.
   */
  allowSynthetic?: boolean;
  /** The folder used when neither is set (default ./data/cifar-10-batches-bin, relative to the working directory). */
  defaultDir?: string;
  /** Seed and sizes of the synthetic fallback. */
  synthetic?: { seed?: number; trainCount?: number; testCount?: number };
  /** Read only the test split (eval and compact use no training image): `train` is empty, its batch files need not be there. */
  testOnly?: boolean;
}

/**
 * Where loadDataSplits will read, and whether it will fall back to the synthetic set, checked without reading a
 * batch: the commands call it before they start the GPU, so a wrong --data is reported first.
 */
export async function checkDataSplits(options: LoadDataOptions = {}): Promise<{ absolute: string; source: DataDirSource; synthetic: boolean }> {
  const { dir, source } = resolveDataDir({ data: options.data, env: options.env ?? process.env });
  const absolute = resolve(source === 'default' && options.defaultDir ? options.defaultDir : dir);
  const splits: Split[] = options.testOnly ? ['test'] : ['train', 'test'];
  const missing = await missingCifar10Files(absolute, splits);
  if (missing.length === 0) return { absolute, source, synthetic: false };
  const all = missing.length === (options.testOnly ? 0 : TRAIN_FILES.length) + TEST_FILES.length;
  if (source !== 'default' || options.allowSynthetic === false || !all) {
    const inside = join(absolute, BATCHES_FOLDER);
    const complete = all && (await missingCifar10Files(inside, splits)).length === 0;
    throw new Cifar10NotFoundError(absolute, missing, source, complete ? inside : undefined);
  }
  return { absolute, source, synthetic: true };
}

/** Loads train and test from the resolved folder (flag, then CIFAR10_DIR, then the default), or falls back. */
export async function loadDataSplits(options: LoadDataOptions = {}): Promise<DataSplits> {
  const { absolute, source, synthetic } = await checkDataSplits(options);
  if (synthetic) {
    const seed = options.synthetic?.seed ?? 0;
    const trainCount = options.synthetic?.trainCount ?? 10_000;
    const testCount = options.synthetic?.testCount ?? 2_000;
    return {
      train: syntheticCifar10(trainCount, seed),
      test: syntheticCifar10(testCount, seed + 1),
      kind: 'synthetic',
      dir: absolute,
      description:
        `no CIFAR-10 in ${describeDataDir(absolute, source)}; using the synthetic 10-class set ` +
        `(${trainCount} train, ${testCount} test, seed ${seed}). ${howToGetCifar10()}`,
    };
  }
  const train = options.testOnly ? null : await loadCifar10(absolute, 'train', source, OFFICIAL_BATCH_RECORDS);
  const test = await loadCifar10(absolute, 'test', source, OFFICIAL_BATCH_RECORDS);
  if (!train) {
    const none = { images: new Uint8Array(0), labels: new Uint8Array(0), count: 0, classNames: test.classNames };
    return { train: none, test, kind: 'cifar10', dir: absolute, description: `CIFAR-10 from ${describeDataDir(absolute, source)}: ${test.count} test images` };
  }
  return {
    train, test, kind: 'cifar10', dir: absolute,
    description: `CIFAR-10 from ${describeDataDir(absolute, source)}: ${train.count} train, ${test.count} test images`,
  };
}

async function readClassNames(dir: string): Promise<readonly string[]> {
  const path = join(dir, META_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return CIFAR10_CLASSES;
  }
  return parseClassNames(text, path);
}
