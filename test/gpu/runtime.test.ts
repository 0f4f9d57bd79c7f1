// The GPU runtime (src/gpu/): every shader family compiles, every entry point and every descriptor the
// ops use builds a pipeline whose bindings match the shader, mistakes fail with the kernel named, and a
// missing or null adapter fails start-up with the install message (never a skip).
import { describe, expect, it, vi } from 'vitest';
import { acquireDevice, GpuError } from '../../src/gpu/device.js';
import { gpu, grid1d, GpuRuntime } from '../../src/gpu/encoder.js';
import { KERNEL_FAMILIES, SUBGROUP_FAMILIES, parseShader, type KernelFamily } from '../../src/gpu/shaders.js';
import type { KernelSpec } from '../../src/gpu/pipelines.js';
import type { Platform } from '../../src/platform/platform.js';
import { nodePlatform } from '../../src/platform/node.js';
import { accumulate_, add, addRelu, addScalar, broadcastTo, div, exp, fill, log, mul, neg, relu, scale, sub } from '../../src/ops/elementwise.js';
import { max, mean, sum } from '../../src/ops/reduce.js';
import { matmul, matmulNaive, setMatmulKernelPath } from '../../src/ops/matmul.js';
import { argmax, correctCount, softmaxCrossEntropy } from '../../src/ops/loss.js';
import { SGD } from '../../src/optim/sgd.js';
import { Tensor, scope, scopeAsync } from '../../src/tensor/tensor.js';
import { tensor } from '../../src/tensor/create.js';
import { assertEqual, readAll } from '../support/allclose.js';

/** The body of every function in a WGSL source, comments removed. */
function functionBodies(source: string): Map<string, string> {
  const code = source.replace(/\/\/[^\n]*/g, '');
  const bodies = new Map<string, string>();
  for (const m of code.matchAll(/fn\s+(\w+)\s*\(/g)) {
    const open = code.indexOf('{', m.index);
    let depth = 0;
    let end = open;
    for (; end < code.length; end++) {
      if (code[end] === '{') depth++;
      else if (code[end] === '}' && --depth === 0) break;
    }
    bodies.set(m[1], code.slice(open, end + 1));
  }
  return bodies;
}

/** Bindings an entry point may touch: names of bindings in its body or in any function it calls (a superset is fine). */
function bindingsUsedBy(family: KernelFamily, entry: string): string[] {
  const info = gpu().shader(family);
  const bodies = functionBodies(info.source);
  const used = new Set<string>();
  const seen = new Set<string>();
  const stack = [entry];
  while (stack.length) {
    const f = stack.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    for (const word of bodies.get(f)?.match(/\b\w+\b/g) ?? []) {
      if (info.bindings.has(word)) used.add(word);
      if (bodies.has(word)) stack.push(word);
    }
  }
  return [...used].sort((p, q) => info.bindings.get(p)!.binding - info.bindings.get(q)!.binding);
}

/** Runs `fn` inside a WebGPU validation error scope and returns the error message, or null. */
async function validationError(fn: () => void | Promise<void>): Promise<string | null> {
  const device = gpu().device;
  device.pushErrorScope('validation');
  let thrown: unknown = null;
  try {
    await fn();
  } catch (error) {
    thrown = error;
  }
  const error = await device.popErrorScope();
  if (thrown) throw thrown;
  return error ? error.message : null;
}

/** The families this device loads: the subgroup ones too where subgroups have a fixed size. */
const loadedFamilies = (): readonly KernelFamily[] => (gpu().subgroupSize > 0 ? [...KERNEL_FAMILIES, ...SUBGROUP_FAMILIES] : KERNEL_FAMILIES);

describe('shaders', () => {
  it('the subgroup kernels are in use here (SFP_NO_SUBGROUPS=1 declares a device without fixed-size subgroups)', () => {
    // Without them the conv and matmul tests check the portable kernels twice and the subgroup ones never.
    expect(gpu().subgroupSize > 0).toBe(process.env.SFP_NO_SUBGROUPS !== '1');
    if (gpu().subgroupSize > 0) for (const family of SUBGROUP_FAMILIES) expect(gpu().hasFamily(family), family).toBe(true);
  });

  it("the start-up probe of the subgroup layout passes here, and fails when told the wrong subgroup size", async () => {
    const sg = gpu().subgroupSize;
    if (sg === 0) return expect(process.env.SFP_NO_SUBGROUPS).toBe('1');
    const probe = async (size: number) => {
      const out = Tensor.empty([256]);
      const kernel = gpu().kernel({ family: 'conv2d_subgroup', entry: 'subgroup_layout', bindings: ['y'], overrides: { WG: 64, SG: size } });
      gpu().dispatch(kernel, { y: out.buffer }, null, [4]);
      const seen = await out.toArray();
      out.dispose();
      return [...seen];
    };
    expect(await probe(sg)).toEqual(new Array(256).fill(1));
    expect((await probe(sg / 2)).some((v) => v === 0)).toBe(true);
  });

  it('every family in the manifest is loaded and compiles without errors', async () => {
    for (const family of loadedFamilies()) {
      const info = gpu().shader(family);
      const messages = (await info.module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
      expect(messages.map((m) => `${family}.wgsl:${m.lineNum} ${m.message}`)).toEqual([]);
      expect(info.entryPoints.size, `${family}.wgsl entry points`).toBeGreaterThan(0);
    }
  });

  it('every entry point of every family builds a pipeline whose layout matches its bindings', async () => {
    const built: string[] = [];
    const error = await validationError(() => {
      for (const family of loadedFamilies()) {
        for (const entry of gpu().shader(family).entryPoints) {
          // The fused 3×3 forward binds 9 storage buffers; src/ops/conv2d.ts leaves it unused where fewer are granted.
          if (entry === 'forward_3x3' && gpu().limits.maxStorageBuffersPerShaderStage < 9) continue;
          gpu().kernel({ family, entry, bindings: bindingsUsedBy(family, entry) });
          built.push(`${family}.${entry}`);
        }
      }
    });
    expect(error).toBeNull();
    expect(built).toEqual(expect.arrayContaining(['matmul.forward', 'matmul.naive', 'loss.backward', 'optim.sgd_momentum', 'reduce.reduce_axis']));
    if (gpu().subgroupSize > 0) expect(built).toEqual(expect.arrayContaining(['conv2d_subgroup.forward_3x3', 'matmul_subgroup.forward']));
  });

  it('a layout that leaves out a binding the entry point uses is a validation error (the check above can fail)', async () => {
    const error = await validationError(() => {
      gpu().kernel({ family: 'matmul', entry: 'forward', bindings: ['dims', 'a', 'b'] });
    });
    expect(error).toMatch(/\S/);
  });

  it('every descriptor the core ops use builds and runs cleanly, and every entry point of their families is used', async () => {
    const specs: KernelSpec[] = [];
    const original = gpu().kernel.bind(gpu());
    const spy = vi.spyOn(gpu(), 'kernel').mockImplementation((spec) => {
      specs.push(spec);
      return original(spec);
    });
    try {
      const error = await validationError(async () => {
        await scopeAsync(async () => {
          const x = tensor([1, -2, 3, 4, 5, -6], [2, 3]);
          const w = tensor([1, 2, 3, 4, 5, 6], [3, 2]).keep();
          const v = tensor([1, 2, 3]);
          x.requiresGrad = w.requiresGrad = v.requiresGrad = true;
          const h = addRelu(relu(sub(add(x, v), div(mul(x, v), addScalar(exp(neg(x)), 1)))), scale(log(addScalar(relu(x), 1)), 2));
          const logits = matmul(add(h, broadcastTo(v, [2, 3])), w);
          // Sizes that are multiples of 4 take the vec4 entry points (same shape, tiled broadcast, fill, accumulate).
          const q = tensor([1, -2, 3, 4, -5, 6, 7, -8], [2, 4]);
          q.requiresGrad = true;
          const quad = sum(relu(add(mul(q, q), tensor([1, 2, 3, 4]))));
          const loss = add(add(add(softmaxCrossEntropy(logits, tensor([0, 1], [2], 'u32')), mean(max(h, 1))), sum(fill([1], 0))), add(quad, sum(fill([4], 0))));
          loss.backward();
          sum(matmul(x, w)).backward(); // accumulates into existing gradients
          sum(relu(q)).backward();
          new SGD([w], { lr: 0.1 }).step();
          new SGD([w], { lr: 0.1, momentum: 0.9 }).step();
          // The portable matmul runs too when the subgroup kernel is the default.
          setMatmulKernelPath('portable');
          const portable = matmul(x, w);
          setMatmulKernelPath('auto');
          await readAll([argmax(logits), correctCount(logits, tensor([0, 1], [2], 'u32')), matmulNaive(x, w), portable, w]);
          for (const t of [w, w.grad!]) t.dispose();
        });
      });
      expect(error).toBeNull();
    } finally {
      spy.mockRestore();
    }
    const used = new Set(specs.map((s) => `${s.family}.${s.entry}`));
    const families = ['elementwise', 'reduce', 'matmul', 'loss', 'optim', ...(gpu().hasFamily('matmul_subgroup') ? (['matmul_subgroup'] as const) : [])] as const;
    for (const family of families) {
      for (const entry of gpu().shader(family).entryPoints) expect(used, `${family}.${entry} is never used`).toContain(`${family}.${entry}`);
    }
  });

  it('parseShader reads binding numbers, kinds and the uniform struct, and rejects what it cannot bind', () => {
    const source = `
      struct Dims { n: u32, alpha: f32, // a comment
                    offset: i32 }
      @group(0) @binding(0) var<uniform> dims: Dims;
      @group(0) @binding(2) var<storage, read> x: array<f32>;
      @group(0) @binding(1) var<storage, read_write> y: array<f32>;
      @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3u) {}
      @compute @workgroup_size(8, 8)
      fn other() {}`;
    const info = parseShader('test', source);
    expect([...info.bindings.values()]).toEqual([
      { name: 'dims', binding: 0, kind: 'uniform' },
      { name: 'x', binding: 2, kind: 'read' },
      { name: 'y', binding: 1, kind: 'read_write' },
    ]);
    expect(info.uniformFields).toEqual([
      { name: 'n', type: 'u32' },
      { name: 'alpha', type: 'f32' },
      { name: 'offset', type: 'i32' },
    ]);
    expect([...info.entryPoints]).toEqual(['main', 'other']);
    expect(() => parseShader('bad', source.replace('offset: i32', 'offset: vec2u'))).toThrow(/bad\.wgsl: uniform field 'offset: vec2u' must be a u32, i32 or f32 scalar/);
    expect(() => parseShader('twice', source.replace('var<storage, read> x', 'var<storage, read> y'))).toThrow(/twice\.wgsl declares binding 'y' twice/);
  });
});

describe('kernel descriptors and dispatch: mistakes name the kernel', () => {
  it('a binding name the shader does not declare, or an unknown entry point, throws naming both', () => {
    expect(() => gpu().kernel({ family: 'matmul', entry: 'forward', bindings: ['dims', 'a', 'b', 'out'] })).toThrow(
      /matmul\.forward: binding 'out' is not declared in matmul\.wgsl \(declared: dims, a, b, c\)/,
    );
    expect(() => gpu().kernel({ family: 'matmul', entry: 'backward', bindings: ['dims'] })).toThrow(/matmul\.wgsl has no compute entry point 'backward'/);
  });

  it('an unknown uniform field, missing uniforms, a negative or too large u32, a missing buffer or an oversized grid throw naming the kernel', () => {
    scope(() => {
      const k = gpu().kernel({ family: 'matmul', entry: 'forward', bindings: ['dims', 'a', 'b', 'c'] });
      const [a, b, c] = [Tensor.empty([1, 1]), Tensor.empty([1, 1]), Tensor.empty([1, 1])];
      const buffers = { a: a.buffer, b: b.buffer, c: c.buffer };
      expect(() => gpu().dispatch(k, buffers, { m: 1, n: 1, k: 1, rows: 2 }, [1, 1])).toThrow(/matmul\.forward: unknown uniforms rows \(the struct has m, n, k\)/);
      expect(() => gpu().dispatch(k, buffers, null, [1, 1])).toThrow(/matmul\.forward: the kernel takes uniforms \(m, n, k\)/);
      expect(() => gpu().dispatch(k, buffers, { m: -1, n: 1, k: 1 }, [1, 1])).toThrow(/matmul\.forward: uniform 'm' = -1 is not a u32/);
      // 2^32 would wrap to 0 in the uniform arena.
      expect(() => gpu().dispatch(k, buffers, { m: 2 ** 32, n: 1, k: 1 }, [1, 1])).toThrow(/matmul\.forward: uniform 'm' = 4294967296 is not a u32/);
      expect(() => gpu().dispatch(k, { a: a.buffer, b: b.buffer }, { m: 1, n: 1, k: 1 }, [1, 1])).toThrow(/matmul\.forward: no buffer given for binding 'c'/);
      expect(() => gpu().dispatch(k, buffers, { m: 1, n: 1, k: 1 }, [70000, 1])).toThrow(/matmul\.forward: grid \[70000, 1, 1\] exceeds 65535/);
    });
  });

  it('grid1d folds more than 65,535 workgroups into two dimensions, and a folded dispatch covers every element', async () => {
    expect(grid1d(65535 * 256, 256)).toEqual([65535, 1]);
    const [x, y] = grid1d(65536 * 256 + 1, 256);
    expect(y).toBeGreaterThan(1);
    expect(x * y).toBeGreaterThanOrEqual(65537);
    expect(x).toBeLessThanOrEqual(65535);
    const n = 65536 * 256 + 3;
    // Ones, but the largest value last and the smallest first in a chunk in the middle (reduce.ts splits the axis
    // into chunks of 256): a reduction that skips either changes its result. Both stay positive, so an element a
    // folded fill or neg missed (a fresh buffer reads 0) still becomes the minimum.
    const last = n - 1;
    const middle = (n >> 9) * 256;
    const [largest, smallest] = await scopeAsync(async () => {
      const input = fill([n], 1);
      gpu().upload(input.buffer, Float32Array.of(2), last * 4);
      gpu().upload(input.buffer, Float32Array.of(0.5), middle * 4);
      return readAll([max(input), neg(max(neg(input)))]);
    });
    assertEqual(largest, [2]);
    assertEqual(smallest, [0.5]);
  });
});

describe('device acquisition', () => {
  const fakePlatform = (requestAdapter: Platform['requestAdapter']): Platform => ({
    name: 'node',
    requestAdapter,
    loadShader: async () => {
      throw new Error('not reached');
    },
    missingAdapterHelp: 'INSTALL-HELP: install mesa-vulkan-drivers',
  });

  it('with no adapter, start-up fails with a GpuError that carries the install message', async () => {
    const platform = fakePlatform(async () => null);
    await expect(acquireDevice(platform)).rejects.toThrow(GpuError);
    await expect(acquireDevice(platform)).rejects.toThrow(/no WebGPU adapter\. INSTALL-HELP: install mesa-vulkan-drivers/);
    await expect(GpuRuntime.create(platform)).rejects.toThrow(/no WebGPU adapter\. INSTALL-HELP/);
  });

  it("refuses Dawn's null backend (its shaders never run), with the same install message", async () => {
    let requested = false;
    const nullAdapter = {
      info: { vendor: 'Google', architecture: '', description: 'Dawn Null backend', device: '' },
      limits: {},
      features: new Set(),
      requestDevice: async () => {
        requested = true;
        throw new Error('a device must not be requested from the null backend');
      },
    } as unknown as GPUAdapter;
    await expect(acquireDevice(fakePlatform(async () => nullAdapter))).rejects.toThrow(
      /refusing Dawn's null backend \(adapter 'Dawn Null backend'\)\. INSTALL-HELP/,
    );
    expect(requested).toBe(false);
  });

  it("Node's install message names the packages and the setup script", () => {
    const help = nodePlatform().missingAdapterHelp;
    expect(help).toMatch(/mesa-vulkan-drivers/);
    expect(help).toMatch(/scripts\/setup-system\.sh/);
  });

  it('the suite runs on a real adapter (not the null backend)', () => {
    expect(gpu().adapterInfo.description).not.toMatch(/null/i);
    expect(gpu().adapterInfo.description.length).toBeGreaterThan(0);
  });

  it('a shader that does not compile fails start-up, naming the file and line', async () => {
    const real = nodePlatform();
    const platform: Platform = {
      ...real,
      requestAdapter: (options) => real.requestAdapter(options),
      loadShader: async (family) => (family === 'reduce' ? 'fn broken( {' : real.loadShader(family)),
    };
    await expect(GpuRuntime.create(platform)).rejects.toThrow(/reduce\.wgsl does not compile:\n {2}line \d+:\d+ /);
  });
});

describe('gpu().derived: values made from a buffer, reused until it is written', () => {
  it('reuses the value while its source is unwritten, and remakes it after a dispatch writes it, an upload, a copy or a clear; a released source or releasePooledMemory drops it', () => {
    const rt = gpu();
    const source = Tensor.fromArray(Float32Array.of(1, 2, 3, 4), [4]).keep();
    const other = Tensor.fromArray(Float32Array.of(5, 6, 7, 8), [4]).keep();
    let made = 0;
    const derive = () => rt.derived(source.buffer, 'twice', () => (made++, scale(source, 2).keep()));
    const first = derive();
    expect(derive()).toBe(first);
    expect(made).toBe(1);
    expect(rt.stats().derivedValues).toBe(1);
    // Reading the source (add reads it, writes a new tensor) is not a write.
    scope(() => void add(source, other));
    expect(derive()).toBe(first);
    const writes: [string, () => void][] = [
      ['a dispatch that binds it read_write', () => accumulate_(source, other)],
      ['an upload', () => rt.upload(source.buffer, Float32Array.of(9))],
      ['a copy into it', () => rt.copy(other.buffer, 0, source.buffer, 0, 16)],
      ['a clear', () => rt.clear(source.buffer)],
    ];
    for (const [how, write] of writes) {
      const before = derive();
      write();
      const after = derive();
      expect(after, how).not.toBe(before);
      expect(before.released, `${how}: the stale value is given back`).toBe(true);
      expect(derive(), how).toBe(after);
    }
    expect(made).toBe(1 + writes.length);
    rt.releasePooledMemory();
    expect(rt.stats().derivedValues).toBe(0);
    const again = derive();
    source.dispose();
    expect(again.released).toBe(true);
    expect(rt.stats().derivedValues).toBe(0);
    other.dispose();
  });
});
