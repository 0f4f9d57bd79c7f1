/**
 * A fixed set of computations with seeded inputs: elementwise ops, matmul, conv2d forward (and both
 * gradients), batchnorm and a small CIFAR ResNet's forward pass. The page runs them (window.sfp.checks(),
 * the "Self-check" button) and test/browser/page.test.ts runs the same function in Node, then compares
 * the two. It uses only the core (src/), so it runs unchanged on both sides; the caller has called init().
 */
import { Tensor, scopeAsync } from '../src/tensor/tensor.js';
import { Rng } from '../src/tensor/random.js';
import { noGrad } from '../src/autograd/mode.js';
import { gpu } from '../src/gpu/encoder.js';
import { add, exp, mul, relu, sub } from '../src/ops/elementwise.js';
import { matmulKernel, setMatmulKernelPath } from '../src/ops/matmul.js';
import {
  conv2dBackwardInputKernel,
  conv2dBackwardWeightKernel,
  conv2dForwardKernel,
  conv2dGeometry,
  setConv2dKernelPath,
} from '../src/ops/conv2d.js';
import { batchNorm2d } from '../src/ops/batchnorm.js';
import { CifarResNet } from '../src/models/resnet.js';

export interface CheckResult {
  name: string;
  shape: number[];
  /** The values, as plain numbers (exactly the float32 values). */
  data: number[];
  /** Terms in the longest sum behind one value (the tolerance scales with it); 'scale' for whole networks. */
  sumLength: number | 'scale';
}

export interface ChecksReport {
  results: CheckResult[];
  /** Which kernel path ran: "subgroup (size n)" or "portable". */
  kernels: string;
  milliseconds: number;
}

export const CHECK_SEED = 20_251_128;

function random(rng: Rng, n: number, low = -1, high = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = low + (high - low) * rng.uniform();
  return out;
}

/** Runs every check and reads the results back (one batched readback). */
export async function runChecks(): Promise<ChecksReport> {
  const started = performance.now();
  const rng = new Rng(CHECK_SEED);
  const pending: { name: string; tensor: Tensor; sumLength: number | 'scale' }[] = [];
  const record = (name: string, tensor: Tensor, sumLength: number | 'scale' = 1) => pending.push({ name, tensor, sumLength });

  const results = await scopeAsync(async () => {
    noGrad(() => {
      // Elementwise, with broadcasting.
      const a = Tensor.fromArray(random(rng, 3 * 5 * 7 * 11, -2, 2), [3, 5, 7, 11]);
      const b = Tensor.fromArray(random(rng, 5 * 11, -2, 2), [5, 1, 11]);
      record('add (broadcast)', add(a, b));
      record('sub (broadcast)', sub(b, a));
      record('mul (broadcast)', mul(a, b));
      record('relu', relu(a));
      record('exp', exp(a));

      // Matmul and conv2d twice: on the kernels the device picks (the subgroup ones where subgroups have one fixed
      // size: 4 on SwiftShader, 8 on lavapipe), then on the portable ones that a browser with varying subgroup
      // sizes (most real GPUs) runs.
      for (const path of ['auto', 'portable'] as const) {
        const suffix = path === 'portable' ? ' [portable]' : '';
        const previous = [setMatmulKernelPath(path), setConv2dKernelPath(path)] as const;
        try {
          // Matmul: odd sizes, the transposes, and a vec4-friendly shape.
          for (const [m, k, n, ta, tb] of [
            [37, 53, 29, false, false],
            [37, 53, 29, false, true],
            [37, 53, 29, true, false],
            [64, 128, 96, false, false],
            [10, 64, 16, false, true],
          ] as const) {
            const x = Tensor.fromArray(random(rng, m * k), ta ? [k, m] : [m, k]);
            const y = Tensor.fromArray(random(rng, k * n), tb ? [n, k] : [k, n]);
            record(`matmul ${m}x${k}x${n}${ta ? ' Aᵀ' : ''}${tb ? ' Bᵀ' : ''}${suffix}`, matmulKernel(x, y, ta, tb), k);
          }

          // Conv2d: 3×3 at stride 1 and 2, 1×1 at stride 2 (the shapes of a CIFAR ResNet), forward and both gradients.
          for (const [batch, cin, cout, size, k, stride, padding] of [
            [2, 5, 7, 13, 3, 1, 1],
            [2, 6, 9, 16, 3, 2, 1],
            [3, 16, 16, 8, 3, 1, 1],
            [2, 8, 12, 9, 1, 2, 0],
          ] as const) {
            const x = Tensor.fromArray(random(rng, batch * cin * size * size), [batch, cin, size, size]);
            const w = Tensor.fromArray(random(rng, cout * cin * k * k), [cout, cin, k, k]);
            const g = conv2dGeometry(x.shape, w.shape, { stride, padding });
            const label = `conv2d [${x.shape}]*[${w.shape}] s${stride} p${padding}${suffix}`;
            const y = conv2dForwardKernel(x, w, g);
            record(`${label} forward`, y, cin * k * k);
            const dy = Tensor.fromArray(random(rng, y.size), [...y.shape]);
            record(`${label} dx`, conv2dBackwardInputKernel(dy, w, g), cout * k * k);
            record(`${label} dw`, conv2dBackwardWeightKernel(dy, x, g), batch * g.outH * g.outW);
          }
        } finally {
          setMatmulKernelPath(previous[0]);
          setConv2dKernelPath(previous[1]);
        }
      }

      // Batchnorm: training (batch statistics, running statistics updated) with ReLU, then evaluation.
      {
        const [n, c, h, w] = [4, 6, 9, 9];
        const x = Tensor.fromArray(random(rng, n * c * h * w, -3, 5), [n, c, h, w]);
        const gamma = Tensor.fromArray(random(rng, c, 0.5, 1.5), [c]);
        const beta = Tensor.fromArray(random(rng, c), [c]);
        const mean = Tensor.fromArray(random(rng, c), [c]);
        const variance = Tensor.fromArray(random(rng, c, 0.5, 2), [c]);
        record('batchnorm train+relu y', batchNorm2d(x, gamma, beta, mean, variance, { training: true, relu: true }), n * h * w);
        record('batchnorm running_mean', mean, n * h * w);
        record('batchnorm running_var', variance, n * h * w);
        record('batchnorm eval y', batchNorm2d(x, gamma, beta, mean, variance, { training: false }), 1);
      }
    });

    // A width-reduced ResNet-20 (8/16/32 channels) with seeded weights, on 4 images: eval and training mode.
    const model = new CifarResNet(20, 10, CHECK_SEED, [8, 16, 32]);
    try {
      const images = Tensor.fromArray(random(rng, 4 * 3 * 32 * 32, -2, 2), [4, 3, 32, 32]);
      noGrad(() => {
        model.eval();
        record('resnet20/8 eval logits', model.forward(images), 'scale');
        const previous = [setMatmulKernelPath('portable'), setConv2dKernelPath('portable')] as const;
        try {
          record('resnet20/8 eval logits [portable]', model.forward(images), 'scale');
        } finally {
          setMatmulKernelPath(previous[0]);
          setConv2dKernelPath(previous[1]);
        }
        model.train();
        record('resnet20/8 train logits', model.forward(images), 'scale');
      });
      const values = await gpu().downloadMany(pending.map(({ tensor }) => ({ buffer: tensor.buffer, bytes: tensor.size * 4 })));
      return pending.map(({ name, tensor, sumLength }, i): CheckResult => ({
        name,
        shape: [...tensor.shape],
        data: Array.from(new Float32Array(values[i])),
        sumLength,
      }));
    } finally {
      model.dispose();
    }
  });
  const rt = gpu();
  return {
    results,
    kernels: rt.subgroupSize ? `subgroup (size ${rt.subgroupSize})` : 'portable',
    milliseconds: performance.now() - started,
  };
}
