/**
 * Matrix product with optional transposes, and its gradient. The kernel is shaders/matmul_subgroup.wgsl
 * where the device has subgroups of one fixed size, else the portable shaders/matmul.wgsl; both take
 * any sizes and both transposes, so every product (the backward's included) runs on the fast kernel:
 * for C = A·B, dA = dC·Bᵀ and dB = Aᵀ·dC (with the transposes folded into the kernel's flags).
 */
import { defineOp } from '../autograd/function.js';
import { gpu } from '../gpu/encoder.js';
import { Tensor } from '../tensor/tensor.js';

export interface MatmulOptions {
  transposeA?: boolean;
  transposeB?: boolean;
}

/** Which kernels matmul uses: the subgroup one where the device allows, or always the portable one. */
export type MatmulKernelPath = 'auto' | 'portable';
let kernelPath: MatmulKernelPath = 'auto';

/** Forces the portable kernel (tests and benchmarks compare both paths); returns the previous setting. */
export function setMatmulKernelPath(path: MatmulKernelPath): MatmulKernelPath {
  const previous = kernelPath;
  kernelPath = path;
  return previous;
}

/** Whether the next matmul dispatch uses shaders/matmul_subgroup.wgsl. */
export function matmulUsesSubgroups(): boolean {
  const rt = gpu();
  return kernelPath === 'auto' && rt.subgroupSize > 0 && rt.hasFamily('matmul_subgroup');
}

// Must match the shaders: rows of C per workgroup (subgroup) and per invocation (portable), columns
// per invocation.
const SUBGROUP_TM = 16;
const SUBGROUP_TN = 4;
const SUBGROUP_WG_MAX = 64;
const PORTABLE_TM = 8;
const PORTABLE_TN = 8;
const PORTABLE_WG = 64;

/** C = op(A)·op(B) on the GPU, no graph. */
export function matmulKernel(a: Tensor, b: Tensor, transposeA = false, transposeB = false): Tensor {
  if (a.rank !== 2 || b.rank !== 2) throw new Error(`matmul: expected 2-D tensors, got ${a.describe()} and ${b.describe()}`);
  if (a.dtype !== 'f32' || b.dtype !== 'f32') throw new Error(`matmul: expected f32 tensors, got ${a.describe()} and ${b.describe()}`);
  const [m, ka] = transposeA ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
  const [kb, n] = transposeB ? [b.shape[1], b.shape[0]] : [b.shape[0], b.shape[1]];
  if (ka !== kb) {
    throw new Error(
      `matmul: inner sizes differ: ${a.describe()}${transposeA ? 'ᵀ' : ''} · ${b.describe()}${transposeB ? 'ᵀ' : ''} (${ka} vs ${kb})`,
    );
  }
  const c = Tensor.empty([m, n]);
  if (m === 0 || n === 0) return c;
  const g = gpu();
  if (ka === 0) {
    g.clear(c.buffer);
    return c;
  }
  const k = ka;
  const flags = { TRANS_A: Number(transposeA), TRANS_B: Number(transposeB) };
  if (matmulUsesSubgroups()) {
    const sg = g.subgroupSize;
    // Column groups of 4; a workgroup no wider than the matrix needs (a multiple of the subgroup size).
    const groups = Math.ceil(n / SUBGROUP_TN);
    const wg = Math.max(sg, Math.min(SUBGROUP_WG_MAX, Math.ceil(groups / sg) * sg));
    const kernel = g.kernel({
      family: 'matmul_subgroup',
      entry: 'forward',
      bindings: ['dims', 'a', 'b', 'c', 'a4', 'b4'],
      overrides: {
        ...flags,
        VEC_A: Number(!transposeA && k % 4 === 0),
        VEC_B: Number(transposeB ? k % 4 === 0 : n % 4 === 0),
        WG: wg,
        SG: sg,
      },
    });
    const buffers = { a: a.buffer, b: b.buffer, c: c.buffer, a4: a.buffer, b4: b.buffer };
    g.dispatch(kernel, buffers, { m, n, k }, [Math.ceil(groups / wg), Math.ceil(m / SUBGROUP_TM)]);
    return c;
  }
  // 16 × 4 invocations, or 4 × 16 for narrow products (two shapes: fewer pipelines to compile).
  const wx = n <= 4 * PORTABLE_TN ? 4 : 16;
  const wy = PORTABLE_WG / wx;
  const kernel = g.kernel({ family: 'matmul', entry: 'forward', bindings: ['dims', 'a', 'b', 'c'], overrides: { ...flags, WX: wx, WY: wy } });
  g.dispatch(kernel, { a: a.buffer, b: b.buffer, c: c.buffer }, { m, n, k }, [Math.ceil(n / (PORTABLE_TN * wx)), Math.ceil(m / (PORTABLE_TM * wy))]);
  return c;
}

export const matmul = defineOp('matmul', {
  forward: (ctx, a: Tensor, b: Tensor, options: MatmulOptions = {}) => {
    const ta = options.transposeA ?? false;
    const tb = options.transposeB ?? false;
    ctx.save(a, b);
    ctx.info.ta = ta;
    ctx.info.tb = tb;
    return matmulKernel(a, b, ta, tb);
  },
  backward: (ctx, dc) => {
    const [a, b] = ctx.saved;
    const ta = ctx.info.ta as boolean;
    const tb = ctx.info.tb as boolean;
    // C = op(A)·op(B): d op(A) = dC·op(B)ᵀ and d op(B) = op(A)ᵀ·dC; transposing back where op was a transpose.
    let da: Tensor | null = null;
    let db: Tensor | null = null;
    if (ctx.needsGrad[0]) da = ta ? matmulKernel(b, dc, tb, true) : matmulKernel(dc, b, false, !tb);
    if (ctx.needsGrad[1]) db = tb ? matmulKernel(dc, a, true, ta) : matmulKernel(a, dc, !ta, false);
    return [da, db];
  },
});

/**
 * C = op(A)·op(B) with the naive kernel (one invocation per output, no register blocking), no graph.
 * Only for benchmarks, as the baseline the tiled kernel is measured against.
 */
export function matmulNaive(a: Tensor, b: Tensor, transposeA = false, transposeB = false): Tensor {
  if (a.rank !== 2 || b.rank !== 2) throw new Error(`matmulNaive: expected 2-D tensors, got ${a.describe()} and ${b.describe()}`);
  const [m, ka] = transposeA ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
  const [kb, n] = transposeB ? [b.shape[1], b.shape[0]] : [b.shape[0], b.shape[1]];
  if (ka !== kb) throw new Error(`matmulNaive: inner sizes differ: ${a.describe()} · ${b.describe()} (${ka} vs ${kb})`);
  const c = Tensor.empty([m, n]);
  const g = gpu();
  const kernel = g.kernel({
    family: 'matmul',
    entry: 'naive',
    bindings: ['dims', 'a', 'b', 'c'],
    overrides: { TRANS_A: Number(transposeA), TRANS_B: Number(transposeB) },
  });
  g.dispatch(kernel, { a: a.buffer, b: b.buffer, c: c.buffer }, { m, n, k: ka }, [Math.ceil(n / 8), Math.ceil(m / 8)]);
  return c;
}
