import { describe, expect, it } from 'vitest';
import { decodeSafetensors, decodeSafetensorsMetadata, encodeSafetensors, safetensorsHeaderLength, type HostTensor } from '../../src/io/safetensors.js';

/** A safetensors file from a header object and the raw data bytes, with the header padded to 8-byte alignment. */
function buildFile(header: unknown, data: number[] | Uint8Array = []): Uint8Array {
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += ' ';
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(new TextEncoder().encode(json), 8);
  out.set(data, 8 + json.length);
  return out;
}

function bytesOf(array: ArrayBufferView): number[] {
  return [...new Uint8Array(array.buffer, array.byteOffset, array.byteLength)];
}

describe('safetensors layout', () => {
  it('writes the exact bytes of a hand-built file: u64 length, sorted JSON header padded with spaces, data in name order', () => {
    const bytes = encodeSafetensors({
      b: { dtype: 'i32', shape: [1], data: new Int32Array([-1]) },
      a: { dtype: 'f32', shape: [2], data: new Float32Array([1, 2]) },
    });
    const json = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[1],"data_offsets":[8,12]}}';
    // 108 characters; 8 + 108 = 116, so 4 spaces bring the data to offset 120, and the stored length is 112.
    expect(json.length).toBe(108);
    const expected = [
      ...[112, 0, 0, 0, 0, 0, 0, 0],
      ...[...json].map((c) => c.charCodeAt(0)),
      ...[0x20, 0x20, 0x20, 0x20],
      ...[0x00, 0x00, 0x80, 0x3f], // 1.0f = 0x3f800000
      ...[0x00, 0x00, 0x00, 0x40], // 2.0f = 0x40000000
      ...[0xff, 0xff, 0xff, 0xff], // -1 as i32
    ];
    expect([...bytes]).toEqual(expected);
    expect(bytes.length).toBe(132);
  });

  it('puts __metadata__ first and keeps the data 8-byte aligned for any header length', () => {
    for (let n = 1; n <= 9; n++) {
      const name = 'x'.repeat(n);
      const bytes = encodeSafetensors({ [name]: { dtype: 'f32', shape: [1], data: new Float32Array([n]) } }, { note: 'hi' });
      const headerBytes = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      expect((8 + headerBytes) % 8).toBe(0);
      const header = new TextDecoder().decode(bytes.subarray(8, 8 + headerBytes));
      expect(header.startsWith('{"__metadata__":{"note":"hi"},')).toBe(true);
      expect(header.trimEnd().length).toBeGreaterThan(headerBytes - 8);
    }
  });

  it('gives the same bytes for the same tensors in any insertion order', () => {
    const a: HostTensor = { dtype: 'f32', shape: [1], data: new Float32Array([1]) };
    const b: HostTensor = { dtype: 'u32', shape: [1], data: new Uint32Array([2]) };
    expect(encodeSafetensors({ a, b })).toEqual(encodeSafetensors({ b, a }));
  });
});

describe('safetensors round trip', () => {
  it('returns every written dtype bit for bit, with shapes, empty tensors and metadata', () => {
    const entries: Record<string, HostTensor> = {
      'layer1.0.conv1.weight': { dtype: 'f32', shape: [2, 1, 1, 3], data: new Float32Array([1.5, -0, NaN, Infinity, -3.4e38, 1e-45]) },
      labels: { dtype: 'u32', shape: [3], data: new Uint32Array([0, 9, 4294967295]) },
      'bn1.num_batches_tracked': { dtype: 'i32', shape: [], data: new Int32Array([-2147483648]) },
      empty: { dtype: 'f32', shape: [0], data: new Float32Array(0) },
      'empty.2d': { dtype: 'i32', shape: [2, 0], data: new Int32Array(0) },
    };
    const metadata = { epoch: '3', note: 'ünïcode ✓' };
    const { tensors, metadata: readMetadata } = decodeSafetensors(encodeSafetensors(entries, metadata));
    expect(readMetadata).toEqual(metadata);
    expect([...tensors.keys()]).toEqual(Object.keys(entries).sort());
    for (const [name, expected] of Object.entries(entries)) {
      const actual = tensors.get(name)!;
      expect(actual.dtype).toBe(expected.dtype);
      expect(actual.shape).toEqual(expected.shape);
      expect(actual.data.constructor).toBe(expected.data.constructor);
      expect(bytesOf(actual.data)).toEqual(bytesOf(expected.data));
    }
  });

  it('reads a file with no tensors and no metadata', () => {
    const { tensors, metadata } = decodeSafetensors(encodeSafetensors({}));
    expect(tensors.size).toBe(0);
    expect(metadata).toEqual({});
  });

  it('copies the data, so a decoded tensor does not alias the file bytes', () => {
    const bytes = encodeSafetensors({ a: { dtype: 'f32', shape: [1], data: new Float32Array([7]) } });
    const { tensors } = decodeSafetensors(bytes);
    bytes.fill(0);
    expect([...tensors.get('a')!.data]).toEqual([7]);
  });

  it('decodes a Node Buffer (what readFile gives), whose slice() is a view, into the values of each tensor', () => {
    const bytes = encodeSafetensors({
      a: { dtype: 'f32', shape: [2], data: new Float32Array([1, 2]) },
      b: { dtype: 'i32', shape: [3], data: new Int32Array([3, 4, 5]) },
    });
    const { tensors } = decodeSafetensors(Buffer.from(bytes));
    expect([...tensors.get('a')!.data]).toEqual([1, 2]);
    expect([...tensors.get('b')!.data]).toEqual([3, 4, 5]);
  });

  it('encodes from a typed array that is a view into a larger buffer', () => {
    const big = new Float32Array([9, 1, 2, 9]);
    const { tensors } = decodeSafetensors(encodeSafetensors({ a: { dtype: 'f32', shape: [2], data: big.subarray(1, 3) } }));
    expect([...tensors.get('a')!.data]).toEqual([1, 2]);
  });
});

describe('safetensors conversions on read', () => {
  it('widens F16 and BF16 to f32 exactly', () => {
    // F16: 1, -2, 65504 (largest), 2^-24 (smallest subnormal), +inf; BF16: 1 (0x3f80), -3 (0xc040).
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00]);
    const bf16 = new Uint16Array([0x3f80, 0xc040]);
    const file = buildFile(
      {
        h: { dtype: 'F16', shape: [5], data_offsets: [0, 10] },
        b: { dtype: 'BF16', shape: [2], data_offsets: [10, 14] },
      },
      [...bytesOf(f16), ...bytesOf(bf16)],
    );
    const { tensors } = decodeSafetensors(file);
    expect(tensors.get('h')!.dtype).toBe('f32');
    expect([...tensors.get('h')!.data]).toEqual([1, -2, 65504, 2 ** -24, Infinity]);
    expect([...tensors.get('b')!.data]).toEqual([1, -3]);
  });

  it('narrows F64 to f32 and I64 to i32 when the values fit', () => {
    const f64 = new Float64Array([1.5, -1e30, NaN]);
    const i64 = new BigInt64Array([5n, -7n, 2147483647n, -2147483648n]);
    const file = buildFile(
      {
        d: { dtype: 'F64', shape: [3], data_offsets: [0, 24] },
        'bn1.num_batches_tracked': { dtype: 'I64', shape: [4], data_offsets: [24, 56] },
      },
      [...bytesOf(f64), ...bytesOf(i64)],
    );
    const { tensors } = decodeSafetensors(file);
    expect([...tensors.get('d')!.data]).toEqual([1.5, Math.fround(-1e30), NaN]);
    const counts = tensors.get('bn1.num_batches_tracked')!;
    expect(counts.dtype).toBe('i32');
    expect(counts.data).toBeInstanceOf(Int32Array);
    expect([...counts.data]).toEqual([5, -7, 2147483647, -2147483648]);
  });

  it('refuses an F64 value beyond the f32 range, naming the tensor, the value and the index', () => {
    const file = buildFile({ w: { dtype: 'F64', shape: [2], data_offsets: [0, 16] } }, bytesOf(new Float64Array([1, 1e300])));
    expect(() => decodeSafetensors(file)).toThrow('tensor "w" (F64): value 1e+300 at index 1 is outside the float32 range');
  });

  it('refuses an I64 value beyond the i32 range, naming the tensor, the value and the index', () => {
    const file = buildFile({ n: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, bytesOf(new BigInt64Array([0n, 2147483648n])));
    expect(() => decodeSafetensors(file)).toThrow('tensor "n" (I64): value 2147483648 at index 1 is outside the int32 range');
  });
});

describe('safetensors validation', () => {
  const good = () => encodeSafetensors({ a: { dtype: 'f32', shape: [2], data: new Float32Array([1, 2]) } });

  it('rejects a file shorter than the 8-byte length', () => {
    expect(() => decodeSafetensors(new Uint8Array(5))).toThrow('file is 5 bytes, shorter than the 8-byte header length');
  });

  it('says a file whose length field makes no sense and which does not open a JSON header is probably not safetensors, showing how it begins', () => {
    const text = new TextEncoder().encode('hello world, a text file\n');
    expect(() => decodeSafetensors(text)).toThrow(/exceeds the 17 bytes that follow it \(not a safetensors file\? It begins with "hello world, a t" \(text\)\)/);
    const zip = Uint8Array.of(0x50, 0x4b, 0x03, 0x04, 0x14, 0, 0, 0, 0x08, 0, 0x21, 0, 0xb7, 0xac, 0xce, 0x55, 1, 2);
    expect(() => decodeSafetensors(zip)).toThrow('not a safetensors file? It begins with 50 4b 03 04 14 00 00 00 08 00 21 00 b7 ac ce 55');
    // A real header cut short is still called truncated.
    const cut = good().subarray(0, 20);
    expect(() => decodeSafetensors(cut)).toThrow('(truncated file?)');
  });

  it('rejects a header length that runs past the end of the file', () => {
    const bytes = good();
    new DataView(bytes.buffer).setBigUint64(0, 1000n, true);
    expect(() => decodeSafetensors(bytes)).toThrow(`header length 1000 exceeds the ${bytes.length - 8} bytes that follow it`);
  });

  it('rejects a truncated file, naming the tensor that runs off the end', () => {
    const bytes = good();
    expect(() => decodeSafetensors(bytes.subarray(0, bytes.length - 3))).toThrow(
      'tensor "a": data_offsets [0, 8) run past the end of the data (5 bytes; truncated file?)',
    );
  });

  it('rejects a header that is not JSON, or not an object', () => {
    expect(() => decodeSafetensors(buildFile('x'.repeat(5)))).toThrow("header must be a JSON object starting with '{'");
    const broken = buildFile({ a: 1 });
    broken[8 + 5] = 0x2c; // {"a":1} → {"a":,}
    expect(() => decodeSafetensors(broken)).toThrow('header is not valid JSON');
  });

  it('rejects offsets beyond the data', () => {
    const file = buildFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 40] } }, [0, 0, 0, 0]);
    expect(() => decodeSafetensors(file)).toThrow('tensor "a": data_offsets [0, 40) run past the end of the data (4 bytes');
  });

  it('rejects overlapping tensors, naming both', () => {
    const file = buildFile(
      {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
      },
      new Uint8Array(12),
    );
    expect(() => decodeSafetensors(file)).toThrow('tensor "b": data_offsets [4, 12) overlap tensor "a", which ends at 8');
  });

  it('rejects a gap between tensors and bytes no tensor covers', () => {
    const gap = buildFile(
      {
        a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
        b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
      },
      new Uint8Array(12),
    );
    expect(() => decodeSafetensors(gap)).toThrow('tensor "b": data_offsets [8, 12) leave a gap of 4 bytes after tensor "a", at 4');
    const trailing = buildFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(6));
    expect(() => decodeSafetensors(trailing)).toThrow('the tensors cover 4 bytes of data, but the file holds 6 after the header');
  });

  it('rejects a byte size that does not match the shape and dtype', () => {
    const file = buildFile({ a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 8] } }, new Uint8Array(8));
    expect(() => decodeSafetensors(file)).toThrow('tensor "a": 8 bytes at [0, 8), but shape [2, 3] of F32 needs 6 × 4 = 24');
  });

  it('rejects unsupported dtypes, bad shapes, bad offsets and non-string metadata', () => {
    const cases: [unknown, string][] = [
      [{ a: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, 'tensor "a": dtype "U8" is not supported (supported: F32, U32, I32, F16, BF16, F64, I64)'],
      [{ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }, 'tensor "a": shape must be a list of integers ≥ 0, got [-1]'],
      [{ a: { dtype: 'F32', shape: [1], data_offsets: [4] } }, 'tensor "a": data_offsets must be [begin, end] with integers ≥ 0, got [4]'],
      [{ a: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, 'tensor "a": data_offsets [4, 0) end before they begin'],
      [{ a: 3 }, 'tensor "a": header entry must be an object'],
      [{ __metadata__: { epoch: 3 } }, '"__metadata__"."epoch" must be a string, got 3'],
    ];
    for (const [header, message] of cases) {
      expect(() => decodeSafetensors(buildFile(header, new Uint8Array(1)))).toThrow(message);
    }
  });

  it('refuses to encode data that does not fit its dtype or shape', () => {
    expect(() => encodeSafetensors({ a: { dtype: 'f32', shape: [3], data: new Float32Array(2) } })).toThrow(
      'tensor "a": 2 values do not fill shape [3] (3 values)',
    );
    expect(() => encodeSafetensors({ a: { dtype: 'i32', shape: [1], data: new Float32Array(1) } })).toThrow(
      'tensor "a": dtype i32 needs a Int32Array, got Float32Array',
    );
    expect(() => encodeSafetensors({ __metadata__: { dtype: 'f32', shape: [0], data: new Float32Array(0) } })).toThrow('is reserved');
  });
});

describe('safetensors header alone', () => {
  it('reads the metadata from the length and the JSON header, without the tensors', () => {
    const file = encodeSafetensors({ a: { dtype: 'f32', shape: [2], data: new Float32Array([1, 2]) } }, { epoch: '3', step: '7' });
    const length = safetensorsHeaderLength(file.subarray(0, 8));
    expect(decodeSafetensorsMetadata(file.subarray(8, 8 + length))).toEqual({ epoch: '3', step: '7' });
    expect(decodeSafetensorsMetadata(buildFile({ a: { dtype: 'F32', shape: [0], data_offsets: [0, 0] } }).subarray(8))).toEqual({});
  });

  it('refuses a header length over the limit before anything that large is read, and fewer than 8 bytes', () => {
    const first8 = new Uint8Array(8);
    new DataView(first8.buffer).setBigUint64(0, 100_000_001n, true);
    expect(() => safetensorsHeaderLength(first8)).toThrow('header length 100000001 exceeds the limit of 100000000 bytes');
    expect(() => safetensorsHeaderLength(new Uint8Array(7))).toThrow('7 bytes are fewer than the 8-byte header length');
  });

  it('refuses metadata that is not an object of strings', () => {
    expect(() => decodeSafetensorsMetadata(buildFile({ __metadata__: { epoch: 3 } }).subarray(8))).toThrow('"__metadata__"."epoch" must be a string');
  });
});
