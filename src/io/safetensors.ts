/**
 * The safetensors format (https://huggingface.co/docs/safetensors), as pure bytes ↔ objects so that it runs
 * in Node and in a browser alike. Layout:
 *
 *   [8 bytes: N, u64 little-endian] [N bytes: JSON header, space-padded] [data: the tensors' bytes, back to back]
 *
 * The header maps each tensor name to { dtype, shape, data_offsets: [begin, end] } (offsets relative to the start
 * of the data) and may hold "__metadata__", a string → string map. We write F32, U32 and I32, with tensors sorted by
 * name, so the same tensors always give the same bytes. We also read F16, BF16 (→ f32), F64 (→ f32) and I64 (→ i32),
 * and refuse values that f32 or i32 cannot hold rather than silently turning them into Infinity or wrapping.
 */
import type { DType } from '../tensor/tensor.js';

export type HostArray = Float32Array | Uint32Array | Int32Array;

/** A tensor on the host: what the format stores, and what checkpoints are made of. */
export interface HostTensor {
  dtype: DType;
  shape: readonly number[];
  data: HostArray;
}

export interface DecodedSafetensors {
  tensors: Map<string, HostTensor>;
  metadata: Record<string, string>;
}

/** A file that breaks the format, or a tensor that cannot be written. The message names the tensor and the numbers. */
export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** How each stored dtype is written and read: bytes per element, and the engine dtype it becomes. */
const storedDtypes = {
  F32: { bytes: 4, dtype: 'f32' },
  U32: { bytes: 4, dtype: 'u32' },
  I32: { bytes: 4, dtype: 'i32' },
  F16: { bytes: 2, dtype: 'f32' },
  BF16: { bytes: 2, dtype: 'f32' },
  F64: { bytes: 8, dtype: 'f32' },
  I64: { bytes: 8, dtype: 'i32' },
} as const satisfies Record<string, { bytes: number; dtype: DType }>;
type StoredDtype = keyof typeof storedDtypes;

const writtenAs = { f32: 'F32', u32: 'U32', i32: 'I32' } as const satisfies Record<DType, StoredDtype>;
const arrayTypes = { f32: Float32Array, u32: Uint32Array, i32: Int32Array } as const satisfies Record<DType, unknown>;

/** The reference implementation refuses larger headers; so do we, before parsing them. */
const maxHeaderBytes = 100_000_000;
const metadataKey = '__metadata__';
const f32Max = 3.4028234663852886e38;

// Typed arrays use the host's byte order and the format is little-endian. Every host WebGPU runs on is little-endian.
const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Serialises tensors (sorted by name) and optional string metadata into one safetensors file. */
export function encodeSafetensors(entries: Record<string, HostTensor>, metadata?: Record<string, string>): Uint8Array {
  checkLittleEndian();
  const names = Object.keys(entries).sort();
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') {
        throw new SafetensorsError(`metadata "${key}" must be a string, got ${typeof value}`);
      }
    }
    header[metadataKey] = metadata;
  }
  let offset = 0;
  for (const name of names) {
    if (name === metadataKey) throw new SafetensorsError(`"${metadataKey}" is reserved and cannot name a tensor`);
    const { dtype, shape, data } = entries[name];
    checkEntry(name, entries[name]);
    header[name] = { dtype: writtenAs[dtype], shape: [...shape], data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // Pad with spaces so the data starts 8-byte aligned (8 + headerBytes ≡ 0 mod 8).
  const headerBytes = json.length + ((8 - (json.length % 8)) % 8);
  const out = new Uint8Array(8 + headerBytes + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerBytes);
  let at = 8 + headerBytes;
  for (const name of names) {
    const { data } = entries[name];
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    at += data.byteLength;
  }
  return out;
}

/** The first bytes of a file for an error message: as text when they are printable ASCII, else in hex. */
function preview(bytes: Uint8Array): string {
  const head = bytes.subarray(0, 16);
  const printable = head.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x0d || b === 0x09);
  return printable ? JSON.stringify(new TextDecoder().decode(head)) + ' (text)' : [...head].map((b) => b.toString(16).padStart(2, '0')).join(' ');
}

/**
 * The JSON header's length, from the 8 bytes that start a safetensors file, so a reader can fetch the header
 * alone. Refuses a length over the reference implementation's limit before anything that large is read.
 */
export function safetensorsHeaderLength(first8: Uint8Array): number {
  if (first8.length < 8) throw new SafetensorsError(`${first8.length} bytes are fewer than the 8-byte header length that starts every safetensors file`);
  return checkHeaderLimit(declaredHeaderLength(first8));
}

function declaredHeaderLength(bytes: Uint8Array): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
}

function checkHeaderLimit(declared: bigint): number {
  if (declared > BigInt(maxHeaderBytes)) throw new SafetensorsError(`header length ${declared} exceeds the limit of ${maxHeaderBytes} bytes`);
  return Number(declared);
}

/** The "__metadata__" of a safetensors file from its JSON header bytes alone (what follows the 8-byte length), tensors not read. */
export function decodeSafetensorsMetadata(headerBytes: Uint8Array): Record<string, string> {
  return readMetadata(parseHeader(headerBytes)[metadataKey]);
}

/** Parses and validates a safetensors file. The tensors' data are copies, independent of `bytes`. */
export function decodeSafetensors(bytes: Uint8Array): DecodedSafetensors {
  checkLittleEndian();
  if (bytes.length < 8) {
    throw new SafetensorsError(`file is ${bytes.length} bytes, shorter than the 8-byte header length that starts every safetensors file`);
  }
  const declared = declaredHeaderLength(bytes);
  if (declared > BigInt(bytes.length - 8)) {
    // The JSON header opens with '{' right after the length: without it, the file is not safetensors at all.
    const why = bytes.length > 8 && bytes[8] !== 0x7b ? `not a safetensors file? It begins with ${preview(bytes)}` : 'truncated file?';
    throw new SafetensorsError(`header length ${declared} exceeds the ${bytes.length - 8} bytes that follow it (${why})`);
  }
  const headerBytes = checkHeaderLimit(declared);
  const header = parseHeader(bytes.subarray(8, 8 + headerBytes));
  const data = bytes.subarray(8 + headerBytes);

  const metadata = readMetadata(header[metadataKey]);
  const infos: { name: string; stored: StoredDtype; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === metadataKey) continue;
    infos.push({ name, ...readInfo(name, info) });
  }

  // Sorted by offset, the tensors must tile the data exactly: each starts where the previous ended, and the last
  // ends at the end of the file (the spec forbids holes, so a file cannot hide a second format inside it).
  const byOffset = [...infos].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let previous = '';
  for (const t of byOffset) {
    const range = `[${t.begin}, ${t.end})`;
    if (t.end > data.length) {
      throw new SafetensorsError(`tensor "${t.name}": data_offsets ${range} run past the end of the data (${data.length} bytes; truncated file?)`);
    }
    if (t.begin < expected) {
      throw new SafetensorsError(`tensor "${t.name}": data_offsets ${range} overlap tensor "${previous}", which ends at ${expected}`);
    }
    if (t.begin > expected) {
      throw new SafetensorsError(`tensor "${t.name}": data_offsets ${range} leave a gap of ${t.begin - expected} bytes after ${previous ? `tensor "${previous}"` : 'the header'}, at ${expected}`);
    }
    const elementBytes = storedDtypes[t.stored].bytes;
    const count = t.shape.reduce((n, d) => n * d, 1);
    if (t.end - t.begin !== count * elementBytes) {
      throw new SafetensorsError(`tensor "${t.name}": ${t.end - t.begin} bytes at ${range}, but shape [${t.shape.join(', ')}] of ${t.stored} needs ${count} × ${elementBytes} = ${count * elementBytes}`);
    }
    expected = t.end;
    previous = t.name;
  }
  if (expected !== data.length) {
    throw new SafetensorsError(`the tensors cover ${expected} bytes of data, but the file holds ${data.length} after the header (${data.length - expected} bytes unaccounted for)`);
  }

  const tensors = new Map<string, HostTensor>();
  for (const t of infos.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    // A copy of exactly the tensor's bytes, also when `bytes` is a Node Buffer (whose slice() is a view of the whole file).
    const raw = Uint8Array.prototype.slice.call(data, t.begin, t.end).buffer;
    tensors.set(t.name, { dtype: storedDtypes[t.stored].dtype, shape: t.shape, data: convert(t.name, t.stored, raw) });
  }
  return { tensors, metadata };
}

function checkEntry(name: string, { dtype, shape, data }: HostTensor): void {
  const ArrayType = arrayTypes[dtype];
  if (ArrayType === undefined) {
    throw new SafetensorsError(`tensor "${name}": dtype must be one of ${Object.keys(arrayTypes).join(', ')}, got ${String(dtype)}`);
  }
  if (!(data instanceof ArrayType)) {
    throw new SafetensorsError(`tensor "${name}": dtype ${dtype} needs a ${ArrayType.name}, got ${data?.constructor?.name ?? typeof data}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(`tensor "${name}": invalid shape ${JSON.stringify(shape)} (sizes must be integers ≥ 0)`);
  }
  const count = shape.reduce((n, d) => n * d, 1);
  if (count !== data.length) {
    throw new SafetensorsError(`tensor "${name}": ${data.length} values do not fill shape [${shape.join(', ')}] (${count} values)`);
  }
}

function parseHeader(headerBytes: Uint8Array): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError(`header (${headerBytes.length} bytes) is not valid UTF-8`);
  }
  if (!text.startsWith('{')) {
    throw new SafetensorsError(`header must be a JSON object starting with '{', got ${JSON.stringify(text.slice(0, 20))}`);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    throw new SafetensorsError(`header is not valid JSON (${(error as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new SafetensorsError('header must be a JSON object');
  }
  return header as Record<string, unknown>;
}

function readMetadata(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError(`"${metadataKey}" must be an object of strings, got ${JSON.stringify(value)}`);
  }
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new SafetensorsError(`"${metadataKey}"."${key}" must be a string, got ${JSON.stringify(v)}`);
  }
  return { ...(value as Record<string, string>) };
}

function readInfo(name: string, info: unknown): { stored: StoredDtype; shape: number[]; begin: number; end: number } {
  if (info === null || typeof info !== 'object') {
    throw new SafetensorsError(`tensor "${name}": header entry must be an object with dtype, shape and data_offsets, got ${JSON.stringify(info)}`);
  }
  const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
  if (typeof dtype !== 'string' || !Object.hasOwn(storedDtypes, dtype)) {
    throw new SafetensorsError(`tensor "${name}": dtype ${JSON.stringify(dtype)} is not supported (supported: ${Object.keys(storedDtypes).join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(`tensor "${name}": shape must be a list of integers ≥ 0, got ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw new SafetensorsError(`tensor "${name}": data_offsets must be [begin, end] with integers ≥ 0, got ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw new SafetensorsError(`tensor "${name}": data_offsets [${begin}, ${end}) end before they begin`);
  return { stored: dtype as StoredDtype, shape: shape as number[], begin, end };
}

/** Reinterprets (and where needed narrows) one tensor's little-endian bytes. */
function convert(name: string, stored: StoredDtype, raw: ArrayBuffer): HostArray {
  switch (stored) {
    case 'F32':
      return new Float32Array(raw);
    case 'U32':
      return new Uint32Array(raw);
    case 'I32':
      return new Int32Array(raw);
    case 'F16': {
      const half = new Uint16Array(raw);
      const out = new Float32Array(half.length);
      for (let i = 0; i < half.length; i++) out[i] = halfToFloat(half[i]);
      return out;
    }
    case 'BF16': {
      // bfloat16 is the top half of a float32.
      const half = new Uint16Array(raw);
      const out = new Uint32Array(half.length);
      for (let i = 0; i < half.length; i++) out[i] = half[i] << 16;
      return new Float32Array(out.buffer);
    }
    case 'F64': {
      const wide = new Float64Array(raw);
      for (let i = 0; i < wide.length; i++) {
        if (Number.isFinite(wide[i]) && !Number.isFinite(Math.fround(wide[i]))) {
          throw new SafetensorsError(`tensor "${name}" (F64): value ${wide[i]} at index ${i} is outside the float32 range ±${f32Max}`);
        }
      }
      return Float32Array.from(wide);
    }
    case 'I64': {
      // A 64-bit value fits in 32 bits exactly when its high word is the sign extension of its low word.
      const words = new Int32Array(raw);
      const out = new Int32Array(words.length / 2);
      for (let i = 0; i < out.length; i++) {
        const lo = words[2 * i];
        if (words[2 * i + 1] !== lo >> 31) {
          const value = new BigInt64Array(raw, 8 * i, 1)[0];
          throw new SafetensorsError(`tensor "${name}" (I64): value ${value} at index ${i} is outside the int32 range [-2147483648, 2147483647]`);
        }
        out[i] = lo;
      }
      return out;
    }
  }
}

/** IEEE 754 binary16 → number: sign, 5-bit exponent (bias 15), 10-bit fraction. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // subnormal: 0.fraction · 2^-14
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

function checkLittleEndian(): void {
  if (!littleEndian) throw new SafetensorsError('this host is big-endian; safetensors I/O here assumes a little-endian host');
}
