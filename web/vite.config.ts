/**
 * The demo page (web/): `npm run dev` serves it on 127.0.0.1, `npm run build:web` builds it into dist/web and
 * `npm run preview:web` serves that build. One small plugin serves what the page fetches at run time:
 *  - /shaders/<family>.wgsl from the repository's shaders/ folder (dev; the build holds a copy, which preview
 *    serves as any static host would, so a build that lacks them fails in preview too), fetched by
 *    browserPlatform('./shaders/'), so the page runs exactly the WGSL that Node runs;
 *  - /data/test_batch.bin, the CIFAR-10 test batch, streamed from $CIFAR10_DIR or ../shared/data/cifar10
 *    (dev and preview only: the data never goes into the repository or the build).
 */
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const webDir = fileURLToPath(new URL('.', import.meta.url));
const repoDir = resolve(webDir, '..');
const shaderDir = join(repoDir, 'shaders');

type Next = (error?: unknown) => void;
type Middleware = (req: IncomingMessage, res: ServerResponse, next: Next) => void;

/** Directories searched for CIFAR-10's binary test batch, first match wins. */
export function cifarDirs(env: Record<string, string | undefined> = process.env): string[] {
  const dirs = env.CIFAR10_DIR ? [resolve(env.CIFAR10_DIR)] : [];
  dirs.push(resolve(repoDir, '../shared/data/cifar10'), resolve(repoDir, 'data/cifar-10-batches-bin'), '/work/shared/data/cifar10');
  return dirs;
}

function shaderMiddleware(): Middleware {
  return (req, res, next) => {
    const m = /^\/(?:.*\/)?shaders\/(\w+)\.wgsl$/.exec((req.url ?? '').split('?')[0]);
    if (!m) return next();
    const file = join(shaderDir, `${m[1]}.wgsl`);
    if (!existsSync(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no shader ${m[1]}.wgsl in ${shaderDir}`);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-cache' });
    res.end(readFileSync(file));
  };
}

function dataMiddleware(): Middleware {
  return (req, res, next) => {
    if (!/^\/(?:.*\/)?data\/test_batch\.bin$/.test((req.url ?? '').split('?')[0])) return next();
    const file = cifarDirs().map((d) => join(d, 'test_batch.bin')).find((f) => existsSync(f));
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`test_batch.bin not found in ${cifarDirs().join(', ')}: set CIFAR10_DIR or run \`npm run cli -- data\``);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': statSync(file).size });
    // A read error ends the response (the page then sees a short body) instead of crashing the server.
    createReadStream(file).on('error', (error) => res.destroy(error)).pipe(res);
  };
}

function sfpAssets(): Plugin {
  return {
    name: 'sfp-assets',
    configureServer(server) {
      server.middlewares.use(shaderMiddleware());
      server.middlewares.use(dataMiddleware());
    },
    configurePreviewServer(server) {
      server.middlewares.use(dataMiddleware());
    },
    generateBundle() {
      for (const name of readdirSync(shaderDir).filter((f) => f.endsWith('.wgsl'))) {
        this.emitFile({ type: 'asset', fileName: `shaders/${name}`, source: readFileSync(join(shaderDir, name), 'utf8') });
      }
    },
  };
}

export default defineConfig({
  root: webDir,
  base: './',
  publicDir: false,
  plugins: [sfpAssets()],
  server: { host: '127.0.0.1', port: 5173, strictPort: false, fs: { allow: [repoDir] } },
  preview: { host: '127.0.0.1', port: 4173, strictPort: false },
  build: { outDir: join(repoDir, 'dist/web'), emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 1000 },
  clearScreen: false,
  logLevel: 'info',
});
