/**
 * A small reader for (already gunzipped) tar archives: ustar headers, with GNU long names ('L') and pax extended
 * headers ('x', for `path`), which is what the official CIFAR-10 archive and npm tarballs use. Entries are views
 * into the input, not copies. Only regular files are returned; directories and links are skipped.
 */

export interface TarEntry {
  /** The path inside the archive, e.g. `cifar-10-batches-bin/data_batch_1.bin` or `package/test_batch.png`. */
  name: string;
  data: Uint8Array;
}

const BLOCK = 512;

export function readTar(bytes: Uint8Array, archiveName = 'tar archive'): TarEntry[] {
  const entries: TarEntry[] = [];
  let longName: string | undefined;
  let paxPath: string | undefined;
  for (let at = 0; at + BLOCK <= bytes.length; ) {
    const header = bytes.subarray(at, at + BLOCK);
    if (header.every((b) => b === 0)) break; // end of archive: zero blocks
    const stored = octal(header, 148, 8);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i];
    if (stored !== sum) throw new Error(`${archiveName}: bad tar header checksum at byte ${at} (not a tar file, or corrupt)`);
    const size = octal(header, 124, 12);
    if (!Number.isSafeInteger(size) || size < 0) throw new Error(`${archiveName}: entry at byte ${at} has an unreadable size field (corrupt tar header)`);
    const type = String.fromCharCode(header[156]);
    const dataStart = at + BLOCK;
    if (dataStart + size > bytes.length) throw new Error(`${archiveName}: entry at byte ${at} is truncated`);
    const data = bytes.subarray(dataStart, dataStart + size);
    at = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'L') {
      longName = text(data, 0, data.length);
      continue;
    }
    if (type === 'x') {
      paxPath = paxValue(data, 'path') ?? paxPath;
      continue;
    }
    if (type === 'g') continue;
    let name = text(header, 0, 100);
    const prefix = isUstar(header) ? text(header, 345, 155) : '';
    if (prefix) name = `${prefix}/${name}`;
    name = paxPath ?? longName ?? name;
    longName = undefined;
    paxPath = undefined;
    if (type === '0' || type === '\0' || type === '7') entries.push({ name, data });
  }
  return entries;
}

function isUstar(header: Uint8Array): boolean {
  return text(header, 257, 5) === 'ustar';
}

function text(bytes: Uint8Array, start: number, length: number): string {
  let end = start;
  while (end < start + length && bytes[end] !== 0) end++;
  return new TextDecoder().decode(bytes.subarray(start, end));
}

function octal(bytes: Uint8Array, start: number, length: number): number {
  if (bytes[start] & 0x80) {
    // GNU base-256 for sizes ≥ 8 GiB; the rest of the field is a big-endian number.
    let v = 0;
    for (let i = start + 1; i < start + length; i++) v = v * 256 + bytes[i];
    return v;
  }
  const s = text(bytes, start, length).trim();
  if (s === '') return 0;
  // parseInt would read the digits before a stray character and ignore the rest.
  return /^[0-7]+$/.test(s) ? parseInt(s, 8) : NaN;
}

/** A pax record list is lines "<len> <key>=<value>\n". */
function paxValue(data: Uint8Array, key: string): string | undefined {
  const s = new TextDecoder().decode(data);
  for (const line of s.split('\n')) {
    const space = line.indexOf(' ');
    const eq = line.indexOf('=');
    if (space >= 0 && eq > space && line.slice(space + 1, eq) === key) return line.slice(eq + 1);
  }
  return undefined;
}
