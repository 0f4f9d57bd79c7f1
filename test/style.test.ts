// The core runs in Node and in a browser page: only the Node entry points and Node-only helpers may
// import `node:` modules (style.md §2.8).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('../', import.meta.url).pathname;
const NODE_ONLY = ['src/node.ts', 'src/platform/node.ts', 'src/io/files.ts', 'src/io/checkpoint-files.ts', 'src/data/node-files.ts', 'src/data/download.ts'];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

describe('platform boundary', () => {
  it('no core module imports a node: module', () => {
    const offenders = files(join(root, 'src'))
      .map((path) => relative(root, path))
      .filter((path) => !path.startsWith('src/cli/') && !NODE_ONLY.includes(path))
      .filter((path) => /from\s+['"]node:|import\(\s*['"]node:/.test(readFileSync(join(root, path), 'utf8')));
    expect(offenders).toEqual([]);
  });

  it('no core module imports a Node-only module (which would pull node: into a browser bundle)', () => {
    const offenders = files(join(root, 'src'))
      .map((path) => relative(root, path))
      .filter((path) => !path.startsWith('src/cli/') && !NODE_ONLY.includes(path))
      .flatMap((path) =>
        [...readFileSync(join(root, path), 'utf8').matchAll(/(?:from|import\()\s*['"](\.[^'"]+)\.js['"]/g)]
          .map((m) => relative(root, join(root, dirname(path), `${m[1]}.ts`)))
          .filter((target) => NODE_ONLY.includes(target))
          .map((target) => `${path} → ${target}`),
      );
    expect(offenders).toEqual([]);
  });

  it('every shader file is in the kernel manifest, so it is compiled and checked at start-up', () => {
    const shaders = readdirSync(join(root, 'shaders')).map((f) => f.replace(/\.wgsl$/, ''));
    const manifest = readFileSync(join(root, 'src/gpu/shaders.ts'), 'utf8');
    for (const family of shaders) expect(manifest, `shaders/${family}.wgsl is not in the manifest`).toContain(`'${family}'`);
  });
});
