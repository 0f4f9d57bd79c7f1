/**
 * The page's benchmark: a square matmul and a CIFAR ResNet conv layer, timed from the first dispatch to
 * onSubmittedWorkDone (gpu().sync()) after a warm-up run, median of a few repeats, as GFLOP/s.
 */
import { scope } from '../src/tensor/tensor.js';
import { Rng } from '../src/tensor/random.js';
import { gpu } from '../src/gpu/encoder.js';
import { normal } from '../src/tensor/create.js';
import { matmulKernel, setMatmulKernelPath } from '../src/ops/matmul.js';
import { conv2dForwardKernel, conv2dGeometry, setConv2dKernelPath } from '../src/ops/conv2d.js';

export interface BenchResult {
  name: string;
  flops: number;
  /** Median milliseconds per run. */
  ms: number;
  gflops: number;
}

async function time(run: () => void, repeats: number): Promise<number> {
  await gpu().sync();
  scope(run); // warm-up: builds the pipeline
  await gpu().sync();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    scope(run);
    await gpu().sync();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

export interface BenchOptions {
  /** Matmul size n (n×n·n×n). */
  n?: number;
  /** Conv layer: batch × channels × size² with a 3×3 kernel, stride 1, padding 1. */
  batch?: number;
  channels?: number;
  size?: number;
  repeats?: number;
}

export async function runBenchmarks(options: BenchOptions = {}, onResult?: (r: BenchResult) => void): Promise<BenchResult[]> {
  const { n = 256, batch = 16, channels = 16, size = 32, repeats = 5 } = options;
  const rng = new Rng(1);
  const out: BenchResult[] = [];
  const report = (name: string, flops: number, ms: number) => {
    const r = { name, flops, ms, gflops: flops / ms / 1e6 };
    out.push(r);
    onResult?.(r);
  };

  // The kernels the device picks, and the portable ones too where those are the subgroup kernels.
  const paths = gpu().subgroupSize ? (['auto', 'portable'] as const) : (['auto'] as const);
  const label = (path: string) => (path === 'portable' ? ' (portable)' : gpu().subgroupSize ? ` (subgroup ${gpu().subgroupSize})` : '');
  const a = normal([n, n], rng).keep();
  const b = normal([n, n], rng).keep();
  try {
    for (const path of paths) {
      const previous = setMatmulKernelPath(path);
      try {
        report(`matmul ${n}×${n}×${n}${label(path)}`, 2 * n ** 3, await time(() => void matmulKernel(a, b), repeats));
      } finally {
        setMatmulKernelPath(previous);
      }
    }
  } finally {
    a.dispose();
    b.dispose();
  }

  const x = normal([batch, channels, size, size], rng).keep();
  const w = normal([channels, channels, 3, 3], rng).keep();
  try {
    const g = conv2dGeometry(x.shape, w.shape, { padding: 1 });
    const flops = 2 * batch * channels * size * size * channels * 9;
    for (const path of paths) {
      const previous = setConv2dKernelPath(path);
      try {
        report(`conv2d 3×3 [${batch},${channels},${size},${size}] → ${channels}${label(path)}`, flops, await time(() => void conv2dForwardKernel(x, w, g), repeats));
      } finally {
        setConv2dKernelPath(previous);
      }
    }
  } finally {
    x.dispose();
    w.dispose();
  }
  return out;
}
