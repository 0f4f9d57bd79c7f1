/**
 * Convolution benchmarks at the CIFAR ResNet-20 layers, batch 128: forward, backward_input and
 * backward_weight, with the subgroup kernels (shaders/conv2d_subgroup.wgsl, where the device has
 * fixed-size subgroups) next to the portable ones (shaders/conv2d.wgsl).
 */
import type { BenchEntry, RegisterBenches } from './run.js';
import {
  conv2dBackwardInputKernel,
  conv2dBackwardWeightKernel,
  conv2dForwardKernel,
  conv2dGeometry,
  setConv2dKernelPath,
  type Conv2dGeometry,
  type Conv2dKernelPath,
} from '../src/ops/conv2d.js';
import { gpu } from '../src/gpu/encoder.js';
import { uniform } from '../src/tensor/create.js';
import { Rng } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';

interface Layer {
  /** Input [batch, channels, h, w], output channels, 3×3 kernel, padding 1. */
  x: [number, number, number, number];
  outChannels: number;
  stride: number;
  note: string;
}

const BATCH = 128;
const LAYERS: Layer[] = [
  { x: [BATCH, 16, 32, 32], outChannels: 16, stride: 1, note: 'stage 1, 3×3 16→16 at 32×32' },
  { x: [BATCH, 32, 16, 16], outChannels: 32, stride: 1, note: 'stage 2, 3×3 32→32 at 16×16' },
  { x: [BATCH, 64, 8, 8], outChannels: 64, stride: 1, note: 'stage 3, 3×3 64→64 at 8×8' },
  { x: [BATCH, 16, 32, 32], outChannels: 32, stride: 2, note: 'stage 2 entry, 3×3 16→32 stride 2' },
  { x: [BATCH, 32, 16, 16], outChannels: 64, stride: 2, note: 'stage 3 entry, 3×3 32→64 stride 2' },
  { x: [BATCH, 3, 32, 32], outChannels: 16, stride: 1, note: 'stem, 3×3 3→16 at 32×32' },
  { x: [BATCH, 12, 32, 32], outChannels: 23, stride: 1, note: 'pruned stage 1, 3×3 12→23' },
  { x: [BATCH, 45, 8, 8], outChannels: 45, stride: 1, note: 'pruned stage 3, 3×3 45→45' },
];

type Phase = 'forward' | 'backward_input' | 'backward_weight';
const PHASES: Phase[] = ['forward', 'backward_input', 'backward_weight'];

function entry(phase: Phase, path: Conv2dKernelPath, layer: Layer): BenchEntry {
  const w = [layer.outChannels, layer.x[1], 3, 3];
  const g: Conv2dGeometry = conv2dGeometry(layer.x, w, { stride: layer.stride, padding: 1 });
  const y = [g.batch, g.outChannels, g.outH, g.outW];
  let a: Tensor | null = null;
  let b: Tensor | null = null;
  const kernelName = path === 'auto' ? 'subgroup' : 'portable';
  return {
    name: `conv2d.${phase}.${kernelName}`,
    shape: `[${layer.x.join(',')}]→${layer.outChannels}${layer.stride > 1 ? ` s${layer.stride}` : ''}`,
    note: layer.note,
    flops: 2 * g.batch * g.outChannels * g.outH * g.outW * g.inChannels * 9,
    setup() {
      const rng = new Rng(1);
      // forward: (x, w); backward_input: (dy, w); backward_weight: (dy, x).
      a = uniform(phase === 'forward' ? layer.x : y, rng, -1, 1).keep();
      b = uniform(phase === 'backward_weight' ? layer.x : w, rng, -1, 1).keep();
    },
    run() {
      const previous = setConv2dKernelPath(path);
      try {
        if (phase === 'forward') conv2dForwardKernel(a!, b!, g);
        else if (phase === 'backward_input') conv2dBackwardInputKernel(a!, b!, g);
        else conv2dBackwardWeightKernel(a!, b!, g);
      } finally {
        setConv2dKernelPath(previous);
      }
    },
    teardown() {
      a?.dispose();
      b?.dispose();
    },
  };
}

export const register: RegisterBenches = (add, { quick }) => {
  const paths: Conv2dKernelPath[] = gpu().subgroupSize > 0 ? ['auto', 'portable'] : ['portable'];
  for (const layer of quick ? LAYERS.slice(0, 1) : LAYERS) {
    for (const phase of PHASES) for (const path of paths) add(entry(phase, path, layer));
  }
};
