/**
 * Matrix product with optional transposes (shaders/matmul.wgsl), and its gradient:
 * for C = A·B, dA = dC·Bᵀ and dB = Aᵀ·dC (with the transposes folded into the kernel's flags).
 */
import { defineOp } from '../autograd/function.js';
import { gpu } from '../gpu/encoder.js';
import { Tensor } from '../tensor/tensor.js';

export interface MatmulOptions {
  transposeA?: boolean;
  transposeB?: boolean;
}

const TILE = 32;

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
  if (ka === 0) {
    gpu().clear(c.buffer);
    return c;
  }
  const g = gpu();
  const kernel = g.kernel({
    family: 'matmul',
    entry: 'forward',
    bindings: ['dims', 'a', 'b', 'c'],
    overrides: { TRANS_A: Number(transposeA), TRANS_B: Number(transposeB) },
  });
  g.dispatch(kernel, { a: a.buffer, b: b.buffer, c: c.buffer }, { m, n, k: ka }, [Math.ceil(n / TILE), Math.ceil(m / TILE)]);
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
