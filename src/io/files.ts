/**
 * Node-only file helpers for checkpoints: an atomic write (temporary file in the same directory, fsync, rename), so
 * a crash mid-write leaves the previous file intact rather than half a checkpoint, and a read whose errors say
 * which file and why. The core imports these lazily, so browser bundles never load `node:fs`.
 */
import { createHash } from 'node:crypto';
import { open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The file's SHA-256 in hex: which checkpoint a run started from, however its path was spelled or moved since. */
export async function fileSha256(path: string, what = 'file'): Promise<string> {
  return createHash('sha256').update(await readFileChecked(path, what)).digest('hex');
}

/**
 * Writes `bytes` to `path` so that readers see either the old file or the whole new one. rename() within one
 * directory is atomic on POSIX; the fsync before it makes sure the data is on disk before the name points to it,
 * and the fsync of the directory after it makes the rename itself durable.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const dir = dirname(path);
  const temporary = join(dir, `${temporaryPrefix(basename(path))}${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`);
  await removeAbandonedTemporaries(dir, basename(path));
  let handle;
  try {
    handle = await open(temporary, 'wx');
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code === 'ENOENT' ? `directory ${dir} does not exist` : reason(error);
    throw new Error(`cannot write ${path}: ${why}`, { cause: error });
  }
  try {
    for (let written = 0; written < bytes.length; ) {
      const { bytesWritten } = await handle.write(bytes, written, bytes.length - written, written);
      written += bytesWritten;
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temporary, path);
  } catch (error) {
    await handle?.close().catch(() => {});
    await unlink(temporary).catch(() => {});
    throw new Error(`cannot write ${path}: ${reason(error)} (the previous file, if any, is unchanged)`, { cause: error });
  }
  await syncDirectory(dir);
}

/** Reads a whole file; a missing file, a directory or a permission problem gives a one-line error naming `what` and the path. */
export async function readFileChecked(path: string, what = 'file'): Promise<Uint8Array> {
  try {
    const buffer = await readFile(path);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`${what} not found: ${path}`, { cause: error });
    if (code === 'EISDIR') throw new Error(`${what} ${path} is a directory, not a file`, { cause: error });
    throw new Error(`cannot read ${what} ${path}: ${reason(error)}`, { cause: error });
  }
}

/**
 * Why `path` cannot be written as a file, or null: its folder is missing or is a file, or `path` is a folder.
 * Commands ask before their work, so a typo in an output path costs nothing.
 */
export async function outputFileProblem(path: string): Promise<string | null> {
  const target = await stat(path).catch(() => null);
  if (target?.isDirectory()) return `${path} is a folder; name a file in it`;
  const dir = dirname(path);
  const folder = await stat(dir).catch(() => null);
  if (!folder) return `the folder ${dir} does not exist`;
  if (!folder.isDirectory()) return `${dir} is a file, not a folder`;
  return null;
}

/** Whether two paths name one existing file (however spelled: relative, absolute, through a link). */
export async function sameFile(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([stat(a).catch(() => null), stat(b).catch(() => null)]);
  return sa !== null && sb !== null && sa.dev === sb.dev && sa.ino === sb.ino;
}

/** Why `path` cannot be an output folder (something that is not a folder is there), or null; a missing one is created. */
export async function outputFolderProblem(path: string): Promise<string | null> {
  const target = await stat(path).catch(() => null);
  return target && !target.isDirectory() ? `${path} is a file; it names a folder` : null;
}

/** Temporary files of `name` are `.<name>.<pid>.<random>.tmp`, hidden, in the same folder (so rename() is atomic). */
function temporaryPrefix(name: string): string {
  return `.${name}.`;
}

/**
 * A process killed mid-write (kill -9, a lost machine) leaves its temporary file behind. Before writing `name`, remove
 * the ones for the same name whose writer is no longer running here and that nobody has touched for a minute (the
 * age guards against a writer on another machine sharing the folder, whose pid means nothing here).
 */
async function removeAbandonedTemporaries(dir: string, name: string): Promise<void> {
  const prefix = temporaryPrefix(name);
  const entries = await readdir(dir).catch(() => [] as string[]);
  for (const entry of entries) {
    if (!entry.startsWith(prefix) || !entry.endsWith('.tmp')) continue;
    const pid = Number(entry.slice(prefix.length).split('.')[0]);
    if (!pid || isRunning(pid)) continue;
    const file = join(dir, entry);
    const modified = await stat(file).then((s) => s.mtimeMs, () => Date.now());
    if (Date.now() - modified > 60_000) await unlink(file).catch(() => {});
  }
}

/** The file in a run folder that names the process writing into it. */
export const LOCK_FILE = '.lock';

/** The running process, other than this one, that holds `dir` (its .lock names it), or null. */
async function lockHolder(path: string): Promise<number | null> {
  const holder = Number((await readFile(path, 'utf8').catch(() => '')).trim());
  return Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && isRunning(holder) ? holder : null;
}

/** Why `dir` cannot be written by a run now (another running process holds it), or null. */
export async function folderHolder(dir: string): Promise<string | null> {
  const holder = await lockHolder(join(dir, LOCK_FILE));
  return holder === null ? null : heldMessage(dir, holder);
}

function heldMessage(dir: string, holder: number | null): string {
  return `${dir} is in use by process ${holder ?? '(another)'}, which is writing a run there; wait for it to end or stop it (if no such process is yours, delete ${join(dir, LOCK_FILE)})`;
}

/**
 * Claims `dir` for this process: refused while another running process holds it (two runs writing one folder
 * would interleave their checkpoints and metrics). The lock is created exclusively, so of two processes starting
 * together one wins; a lock left by a process that has ended (or by this one) is taken over. Returns the
 * release, which removes the lock if it is still this process's.
 */
export async function claimFolder(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    const handle = await open(path, 'wx').catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw new Error(`cannot create ${path}: ${reason(error)}`, { cause: error });
      return null;
    });
    if (handle) {
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      break;
    }
    const holder = await lockHolder(path);
    if (holder !== null || attempt > 0) throw new Error(heldMessage(dir, holder));
    await unlink(path).catch(() => {}); // stale: its process has ended
  }
  return async () => {
    const still = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (still === process.pid) await unlink(path).catch(() => {});
  };
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function syncDirectory(dir: string): Promise<void> {
  // Some platforms (Windows) and file systems refuse to open or fsync a directory; the rename has happened anyway.
  const handle = await open(dir, 'r').catch(() => undefined);
  await handle?.sync().catch(() => {});
  await handle?.close().catch(() => {});
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
