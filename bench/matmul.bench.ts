/**
 * Matrix-product benchmarks: square sizes and the GEMMs a CIFAR ResNet runs (its convolutions as
 * GEMMs, their weight gradients, the final linear layer and its gradients), the kernel matmul() uses
 * (`tiled`: the subgroup kernel where available) next to the portable and the naive ones.
 */
import type { BenchEntry, RegisterBenches } from './run.js';
import { matmulKernel, matmulNaive, setMatmulKernelPath } from '../src/ops/matmul.js';
import { uniform } from '../src/tensor/create.js';
import { Rng } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';

interface Problem {
  /** C[m, n] = op(A)·op(B) with inner size k. */
  m: number;
  k: number;
  n: number;
  transposeA?: boolean;
  transposeB?: boolean;
  /** What the shape is, e.g. `conv 3×3 16→16 on 32×32, batch 128`. */
  note?: string;
}

const SQUARE = [128, 256, 512, 1024, 2048];

const RESNET: Problem[] = [
  // Convolutions as GEMMs, batch 128: [N·H·W, C_in·9] · [C_in·9, C_out] for the three stages.
  { m: 128 * 32 * 32, k: 16 * 9, n: 16, note: 'conv 3×3 16→16 at 32×32 (stage 1)' },
  { m: 128 * 16 * 16, k: 32 * 9, n: 32, note: 'conv 3×3 32→32 at 16×16 (stage 2)' },
  { m: 128 * 8 * 8, k: 64 * 9, n: 64, note: 'conv 3×3 64→64 at 8×8 (stage 3)' },
  // The weight gradient of stage 1: dW = Xᵀ·dY, a long reduction over N·H·W.
  { m: 16 * 9, k: 128 * 32 * 32, n: 16, transposeA: true, note: 'conv weight gradient, stage 1' },
  // The classifier: [batch, 64] · [64, 10].
  { m: 128, k: 64, n: 10, note: 'final linear layer' },
];

const KERNELS = {
  // What matmul() runs: the subgroup kernel where the device has fixed-size subgroups.
  tiled: (a: Tensor, b: Tensor, p: Problem) => matmulKernel(a, b, p.transposeA, p.transposeB),
  // The portable kernel (shaders/matmul.wgsl), what devices without subgroups get.
  portable: (a: Tensor, b: Tensor, p: Problem) => {
    const previous = setMatmulKernelPath('portable');
    try {
      return matmulKernel(a, b, p.transposeA, p.transposeB);
    } finally {
      setMatmulKernelPath(previous);
    }
  },
  naive: (a: Tensor, b: Tensor, p: Problem) => matmulNaive(a, b, p.transposeA, p.transposeB),
};

function entry(kernel: keyof typeof KERNELS, p: Problem): BenchEntry {
  let a: Tensor | null = null;
  let b: Tensor | null = null;
  const shape = `[${p.m}×${p.k}]${p.transposeA ? 'ᵀ' : ''}·[${p.k}×${p.n}]${p.transposeB ? 'ᵀ' : ''}`;
  return {
    name: `matmul.${kernel}`,
    shape,
    note: p.note,
    flops: 2 * p.m * p.n * p.k,
    setup() {
      const rng = new Rng(1);
      a = uniform(p.transposeA ? [p.k, p.m] : [p.m, p.k], rng, -1, 1).keep();
      b = uniform(p.transposeB ? [p.n, p.k] : [p.k, p.n], rng, -1, 1).keep();
    },
    run() {
      KERNELS[kernel](a!, b!, p);
    },
    teardown() {
      a?.dispose();
      b?.dispose();
    },
  };
}

/** The naive kernel stops here: at 2048³ it takes tens of seconds per product on lavapipe. */
const NAIVE_MAX_FLOPS = 2 * 1024 ** 3;

export const register: RegisterBenches = (add, { quick }) => {
  const squares = (quick ? SQUARE.slice(0, 3) : SQUARE).map((s): Problem => ({ m: s, k: s, n: s }));
  for (const p of [...squares, ...(quick ? RESNET.slice(-1) : RESNET)]) {
    add(entry('tiled', p));
    add(entry('portable', p));
    if (2 * p.m * p.n * p.k <= NAIVE_MAX_FLOPS) add(entry('naive', p));
  }
};
