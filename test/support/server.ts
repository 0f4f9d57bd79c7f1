/**
 * Test support for the downloader: a static HTTP server on 127.0.0.1 (never the network), and small writers for the
 * formats it serves, independent of the readers under test: a ustar writer, gzip through node:zlib, and an RGB PNG
 * encoder that cycles through all five scanline filters so the decoder meets each one.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { deflateSync } from 'node:zlib';

export interface Route {
  status?: number;
  body: Uint8Array | string;
  type?: string;
}

export interface LocalServer {
  /** e.g. http://127.0.0.1:41234 (no trailing slash). */
  url: string;
  /** Paths requested, in order. */
  requests: string[];
  /** Replace or add routes while running. */
  routes: Map<string, Route>;
  close(): Promise<void>;
}

/** Serves `routes` (path → body) on 127.0.0.1 at a free port; unknown paths get 404. */
export async function serveLocally(routes: Record<string, Route | Uint8Array | string> = {}): Promise<LocalServer> {
  const table = new Map<string, Route>();
  for (const [path, r] of Object.entries(routes)) table.set(path, typeof r === 'string' || r instanceof Uint8Array ? { body: r } : r);
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    requests.push(path);
    const route = table.get(path);
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no route ${path}`);
      return;
    }
    const body = typeof route.body === 'string' ? Buffer.from(route.body) : Buffer.from(route.body.buffer, route.body.byteOffset, route.body.byteLength);
    res.writeHead(route.status ?? 200, { 'content-type': route.type ?? 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    routes: table,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A URL on 127.0.0.1 where nothing listens (a port that was just free), to stand in for an unreachable host. */
export async function closedPortUrl(): Promise<string> {
  const s = await serveLocally();
  const url = s.url;
  await s.close();
  return url;
}

/** A ustar archive of regular files (names up to 100 bytes), ending with the two zero blocks. */
export function tarFiles(files: readonly { name: string; data: Uint8Array }[]): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const { name, data } of files) {
    if (name.length > 100) throw new Error(`tarFiles: name too long for this writer: ${name}`);
    const header = new Uint8Array(512);
    const put = (text: string, at: number) => header.set(new TextEncoder().encode(text), at);
    put(name, 0);
    put('0000644\0', 100);
    put('0000000\0', 108);
    put('0000000\0', 116);
    put(data.length.toString(8).padStart(11, '0') + '\0', 124);
    put('00000000000\0', 136);
    put('        ', 148); // checksum field counts as spaces
    put('0', 156);
    put('ustar\0', 257);
    put('00', 263);
    const sum = header.reduce((a, b) => a + b, 0);
    put(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    blocks.push(header);
    const padded = new Uint8Array(Math.ceil(data.length / 512) * 512);
    padded.set(data);
    blocks.push(padded);
  }
  blocks.push(new Uint8Array(1024));
  const out = new Uint8Array(blocks.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of blocks) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

/** An 8-bit PNG (RGB by default); row y uses filter y mod 5, so every filter type appears. */
export function encodePng(width: number, height: number, pixels: Uint8Array, colorType = 2): Uint8Array {
  const channels = colorType === 6 ? 4 : colorType === 0 ? 1 : 3;
  const stride = width * channels;
  if (pixels.length !== height * stride) throw new Error(`encodePng: ${pixels.length} bytes for ${width}×${height}×${channels}`);
  const raw = new Uint8Array(height * (stride + 1));
  for (let y = 0; y < height; y++) {
    const filter = y % 5;
    raw[y * (stride + 1)] = filter;
    for (let i = 0; i < stride; i++) {
      const v = pixels[y * stride + i];
      const a = i >= channels ? pixels[y * stride + i - channels] : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + i] : 0;
      const c = y > 0 && i >= channels ? pixels[(y - 1) * stride + i - channels] : 0;
      const predictor = [0, a, b, (a + b) >> 1, paeth(a, b, c)][filter];
      raw[y * (stride + 1) + 1 + i] = (v - predictor) & 0xff;
    }
  }
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr.set([8, colorType, 0, 0, 0], 8);
  const z = deflateSync(raw);
  const idat = new Uint8Array(z.buffer, z.byteOffset, z.byteLength);
  // Split the data over two IDAT chunks: decoders must concatenate them.
  const half = idat.length >> 1;
  return concat([
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', idat.subarray(0, half)), chunk('IDAT', idat.subarray(half)), chunk('IEND', new Uint8Array(0)),
  ]);
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

// A bitwise CRC-32, written independently of src/data/png.ts's table version.
function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
