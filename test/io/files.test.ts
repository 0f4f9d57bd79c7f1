import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { outputFileProblem, outputFolderProblem, readFileChecked, writeFileAtomic } from '../../src/io/files.js';

// Faults injected into node:fs/promises as files.ts sees it: a rename that fails, or a write that stops halfway
// (what a crash or a full disk does). Running as root defeats read-only directories, so we inject instead.
const faults = vi.hoisted(() => ({ rename: false, writeHalfThenFail: false }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...fs,
    rename: async (from: string, to: string) => {
      if (faults.rename) throw Object.assign(new Error(`EIO: i/o error, rename '${from}' -> '${to}'`), { code: 'EIO' });
      return fs.rename(from, to);
    },
    open: async (...args: Parameters<typeof fs.open>) => {
      const handle = await fs.open(...args);
      if (!faults.writeHalfThenFail) return handle;
      const write = async (bytes: Uint8Array, offset: number, length: number, position: number) => {
        await handle.write(bytes, offset, Math.floor(length / 2), position);
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      };
      return { write, sync: () => handle.sync(), close: () => handle.close() };
    },
  };
});

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sfp-files-'));
});
afterEach(() => {
  faults.rename = false;
  faults.writeHalfThenFail = false;
});

const bytes = (...values: number[]) => new Uint8Array(values);

describe('writeFileAtomic', () => {
  it('writes a new file and replaces an existing one, leaving no temporary files', async () => {
    const path = join(dir, 'ckpt.safetensors');
    await writeFileAtomic(path, bytes(1, 2, 3));
    expect([...(await readFile(path))]).toEqual([1, 2, 3]);
    await writeFileAtomic(path, bytes(4, 5));
    expect([...(await readFile(path))]).toEqual([4, 5]);
    expect(await readdir(dir)).toEqual(['ckpt.safetensors']);
  });

  it('keeps the old file intact and removes the temporary file when the rename fails', async () => {
    const path = join(dir, 'ckpt.safetensors');
    await writeFile(path, bytes(1, 2, 3));
    faults.rename = true;
    await expect(writeFileAtomic(path, bytes(9, 9, 9, 9))).rejects.toThrow(
      `cannot write ${path}: EIO: i/o error, rename`,
    );
    expect([...(await readFile(path))]).toEqual([1, 2, 3]);
    expect(await readdir(dir)).toEqual(['ckpt.safetensors']);
  });

  it('keeps the old file intact when the write stops halfway', async () => {
    const path = join(dir, 'ckpt.safetensors');
    await writeFile(path, bytes(1, 2, 3));
    faults.writeHalfThenFail = true;
    await expect(writeFileAtomic(path, new Uint8Array(1000).fill(7))).rejects.toThrow(
      /cannot write .*ckpt\.safetensors: ENOSPC.*\(the previous file, if any, is unchanged\)/,
    );
    expect([...(await readFile(path))]).toEqual([1, 2, 3]);
    expect(await readdir(dir)).toEqual(['ckpt.safetensors']);
  });

  it('cleans up when the destination is a directory (a real rename failure)', async () => {
    const path = join(dir, 'taken');
    await mkdir(path);
    await writeFile(join(path, 'inside'), bytes(1));
    await expect(writeFileAtomic(path, bytes(1))).rejects.toThrow(`cannot write ${path}:`);
    expect((await readdir(dir)).sort()).toEqual(['taken']);
  });

  it('removes the temporary files of writers killed mid-write, and only those', async () => {
    const path = join(dir, 'ckpt.safetensors');
    const deadPid = spawnSync('true').pid;
    const twoMinutesAgo = new Date(Date.now() - 120_000);
    const abandoned = `.ckpt.safetensors.${deadPid}.k1ll3d.tmp`;
    const aliveWriter = `.ckpt.safetensors.${process.pid}.wr1t1ng.tmp`;
    const justWritten = `.ckpt.safetensors.${deadPid}.r3c3nt.tmp`;
    const otherFile = `.other.safetensors.${deadPid}.k1ll3d.tmp`;
    for (const name of [abandoned, aliveWriter, justWritten, otherFile]) await writeFile(join(dir, name), bytes(1));
    for (const name of [abandoned, aliveWriter, otherFile]) await utimes(join(dir, name), twoMinutesAgo, twoMinutesAgo);
    await writeFileAtomic(path, bytes(1, 2));
    expect((await readdir(dir)).sort()).toEqual([otherFile, justWritten, aliveWriter, 'ckpt.safetensors'].sort());
  });

  it('says which directory is missing', async () => {
    const path = join(dir, 'no', 'such', 'ckpt.safetensors');
    await expect(writeFileAtomic(path, bytes(1))).rejects.toThrow(`cannot write ${path}: directory ${join(dir, 'no', 'such')} does not exist`);
  });
});

describe('readFileChecked', () => {
  it('reads the bytes', async () => {
    const path = join(dir, 'f.bin');
    await writeFile(path, bytes(5, 6));
    expect([...(await readFileChecked(path))]).toEqual([5, 6]);
  });

  it('names the missing file and what it was for', async () => {
    const path = join(dir, 'missing.safetensors');
    await expect(readFileChecked(path, 'checkpoint')).rejects.toThrow(`checkpoint not found: ${path}`);
    await expect(readFileChecked(dir, 'checkpoint')).rejects.toThrow(`checkpoint ${dir} is a directory, not a file`);
  });
});

describe('output paths, checked before a command works', () => {
  it('a file path needs an existing folder and must not itself be a folder', async () => {
    await writeFile(join(dir, 'file.txt'), bytes(1));
    expect(await outputFileProblem(join(dir, 'new.onnx'))).toBeNull();
    expect(await outputFileProblem(join(dir, 'file.txt'))).toBeNull(); // replaced, atomically
    expect(await outputFileProblem(dir)).toBe(`${dir} is a folder; name a file in it`);
    expect(await outputFileProblem(join(dir, 'no', 'x.onnx'))).toBe(`the folder ${join(dir, 'no')} does not exist`);
    expect(await outputFileProblem(join(dir, 'file.txt', 'x.onnx'))).toBe(`${join(dir, 'file.txt')} is a file, not a folder`);
  });

  it('a folder path may be missing (it is created) but must not be a file', async () => {
    await writeFile(join(dir, 'file.txt'), bytes(1));
    expect(await outputFolderProblem(dir)).toBeNull();
    expect(await outputFolderProblem(join(dir, 'new', 'run'))).toBeNull();
    expect(await outputFolderProblem(join(dir, 'file.txt'))).toBe(`${join(dir, 'file.txt')} is a file; it names a folder`);
  });
});
