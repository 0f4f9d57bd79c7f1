// 2-D convolution (src/ops/conv2d.ts) against test/reference/conv2d.ts: a case checked by hand, exact
// integer sums over awkward shapes, float tolerances, and gradients against finite differences. Every
// case runs on both kernel sets: shaders/conv2d_subgroup.wgsl (where the device has fixed-size
// subgroups) and the portable shaders/conv2d.wgsl.
import { afterEach, describe, expect, it } from 'vitest';
import {
  conv2d,
  conv2dBackwardInputKernel,
  conv2dBackwardWeightKernel,
  conv2dBatchNormEval,
  conv2dForwardKernel,
  conv2dGeometry,
  conv2dUsesSubgroups,
  conv2dWithBiasMap,
  forward3x3RowBlocks,
  setConv2dKernelPath,
  setForward3x3Block,
  forward3x3Blocks,
  formatForward3x3Block,
  type Forward3x3Block,
  biasMapClassTable,
  tuneConv2d,
  type Conv2dKernelPath,
} from '../../src/ops/conv2d.js';
import { gpu } from '../../src/gpu/encoder.js';
import { Tensor, scope } from '../../src/tensor/tensor.js';
import { tensor } from '../../src/tensor/create.js';
import * as ref from '../reference/conv2d.js';
import * as bnRef from '../reference/batchnorm.js';
import { batchNorm2d } from '../../src/ops/batchnorm.js';
import type { Conv2dShape } from '../reference/conv2d.js';
import { assertClose, assertEqual, readAll } from '../support/allclose.js';
import { gradcheck, tolerance } from '../support/gradcheck.js';
import { randomArray, randomInts, withSeed } from '../support/random.js';

const paths: Conv2dKernelPath[] = ['auto', 'portable'];
const pathName = (path: Conv2dKernelPath): string => (path === 'auto' ? 'subgroup kernels where available' : 'portable kernels');

afterEach(() => {
  setConv2dKernelPath('auto');
  setForward3x3Block(null);
});

function shapes(s: Conv2dShape): { x: number[]; w: number[]; y: number[] } {
  const { outH, outW } = ref.outSize(s);
  return {
    x: [s.batch, s.inChannels, s.inH, s.inW],
    w: [s.outChannels, s.inChannels, s.kernel, s.kernel],
    y: [s.batch, s.outChannels, outH, outW],
  };
}

const describeShape = (s: Conv2dShape): string =>
  `x [${s.batch},${s.inChannels},${s.inH},${s.inW}] w ${s.kernel}×${s.kernel} → ${s.outChannels}, stride ${s.stride}, padding ${s.padding}`;

/** Forward, backward_input and backward_weight of one case, read back with one submit. */
async function runKernels(s: Conv2dShape, x: Float32Array, w: Float32Array, dy: Float32Array): Promise<Float32Array[]> {
  const sh = shapes(s);
  const outs = scope(() => {
    const g = conv2dGeometry(sh.x, sh.w, { stride: s.stride, padding: s.padding });
    const [xt, wt, dyt] = [tensor(x, sh.x), tensor(w, sh.w), tensor(dy, sh.y)];
    return [conv2dForwardKernel(xt, wt, g), conv2dBackwardInputKernel(dyt, wt, g), conv2dBackwardWeightKernel(dyt, xt, g)];
  });
  expect(outs.map((t) => t.shape)).toEqual([sh.y, sh.x, sh.w]);
  const values = (await readAll(outs)) as Float32Array[];
  for (const t of outs) t.dispose();
  return values;
}

describe.each(paths)('conv2d with %s', (path) => {
  it(`uses the kernels it says (${pathName(path)})`, () => {
    setConv2dKernelPath(path);
    expect(conv2dUsesSubgroups()).toBe(path === 'auto' && gpu().subgroupSize > 0);
  });

  it('a 3×3 "plus" kernel on 1..9 with padding 1, and both gradients for dy = 1, are exact', async () => {
    setConv2dKernelPath(path);
    const s: Conv2dShape = { batch: 1, inChannels: 1, inH: 3, inW: 3, outChannels: 1, kernel: 3, stride: 1, padding: 1 };
    const x = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const w = Float32Array.from([0, 1, 0, 1, 1, 1, 0, 1, 0]);
    const [y, dx, dw] = await runKernels(s, x, w, new Float32Array(9).fill(1));
    // y = each pixel plus its 4 neighbours: y[0,0] = 1+2+4, y[1,1] = 5+2+4+6+8 ...
    assertEqual(y, [7, 11, 11, 17, 25, 23, 19, 29, 23], { label: 'y' });
    // dx[i] = how many outputs see pixel i through the kernel: the kernel's taps that land inside.
    assertEqual(dx, [3, 4, 3, 4, 5, 4, 3, 4, 3], { label: 'dx' });
    // dw[ky,kx] = Σ of the pixels that tap sees: the centre sees all (45), the top tap rows 0–1
    // (1+…+6 = 21), the top-left tap rows 0–1 × columns 0–1 (1+2+4+5 = 12), …
    assertEqual(dw, [12, 21, 16, 27, 45, 33, 24, 39, 28], { label: 'dw' });
  });

  it('integer inputs give exact results over awkward shapes: odd sizes, stride 2, batch 1, 1×1 and 7×7 kernels', async () => {
    setConv2dKernelPath(path);
    const cases: Conv2dShape[] = [
      { batch: 2, inChannels: 3, inH: 7, inW: 9, outChannels: 5, kernel: 3, stride: 1, padding: 1 },
      { batch: 1, inChannels: 12, inH: 9, inW: 7, outChannels: 23, kernel: 3, stride: 1, padding: 1 },
      { batch: 2, inChannels: 23, inH: 11, inW: 13, outChannels: 45, kernel: 3, stride: 2, padding: 1 },
      { batch: 3, inChannels: 45, inH: 5, inW: 6, outChannels: 12, kernel: 3, stride: 1, padding: 0 },
      { batch: 2, inChannels: 5, inH: 9, inW: 9, outChannels: 7, kernel: 1, stride: 2, padding: 0 },
      { batch: 1, inChannels: 6, inH: 4, inW: 5, outChannels: 33, kernel: 1, stride: 1, padding: 0 },
      { batch: 1, inChannels: 3, inH: 15, inW: 13, outChannels: 9, kernel: 7, stride: 2, padding: 3 },
      { batch: 2, inChannels: 4, inH: 6, inW: 6, outChannels: 3, kernel: 3, stride: 1, padding: 2 },
      // Padding beyond k − 1: backward_input cannot be a forward convolution, the general kernel runs.
      { batch: 1, inChannels: 3, inH: 4, inW: 5, outChannels: 2, kernel: 1, stride: 1, padding: 1 },
      { batch: 2, inChannels: 3, inH: 8, inW: 7, outChannels: 4, kernel: 3, stride: 3, padding: 1 },
      // 3×3 "same" convolutions on rows of 4, 8, 16 and 32: the vec4 kernels, where the device has subgroups
      // (row ends at both sides of a lane, several rows per subgroup, channel blocks with a remainder).
      { batch: 1, inChannels: 12, inH: 5, inW: 32, outChannels: 23, kernel: 3, stride: 1, padding: 1 },
      { batch: 3, inChannels: 3, inH: 16, inW: 16, outChannels: 17, kernel: 3, stride: 1, padding: 1 },
      { batch: 2, inChannels: 45, inH: 8, inW: 8, outChannels: 12, kernel: 3, stride: 1, padding: 1 },
      { batch: 5, inChannels: 7, inH: 3, inW: 4, outChannels: 33, kernel: 3, stride: 1, padding: 1 },
      { batch: 2, inChannels: 5, inH: 8, inW: 32, outChannels: 19, kernel: 3, stride: 2, padding: 1 },
      { batch: 1, inChannels: 9, inH: 6, inW: 16, outChannels: 4, kernel: 3, stride: 2, padding: 1 },
      // Several samples per partial weight-gradient sum, the last split short (11 = 5 × 2 + 1 with 9 blocks of
      // columns × channels), at stride 1 and 2; at stride 2 the input gradient also needs two blocks of 24 or 32 channels.
      { batch: 11, inChannels: 32, inH: 8, inW: 8, outChannels: 40, kernel: 3, stride: 1, padding: 1 },
      { batch: 11, inChannels: 32, inH: 8, inW: 8, outChannels: 40, kernel: 3, stride: 2, padding: 1 },
      { batch: 5, inChannels: 24, inH: 8, inW: 8, outChannels: 20, kernel: 3, stride: 2, padding: 1 },
    ];
    await withSeed(`conv2d exact ${path}`, async (rng, seed) => {
      for (const s of cases) {
        const sh = shapes(s);
        const count = (d: number[]) => d.reduce((a, b) => a * b, 1);
        // |values| ≤ 4: every partial sum stays far below 2^24, so any summation order is exact.
        const [x, w, dy] = [randomInts(rng, count(sh.x)), randomInts(rng, count(sh.w)), randomInts(rng, count(sh.y))];
        const [y, dx, dw] = await runKernels(s, x, w, dy);
        const label = describeShape(s);
        assertEqual(y, ref.conv2d(x, w, s), { label: `y of ${label}`, seed, shape: sh.y });
        assertEqual(dx, ref.conv2dBackwardInput(dy, w, s), { label: `dx of ${label}`, seed, shape: sh.x });
        assertEqual(dw, ref.conv2dBackwardWeight(dy, x, s), { label: `dw of ${label}`, seed, shape: sh.w });
      }
    });
  });

  it('float inputs agree with the float64 reference at ResNet-like widths (3, 12, 23, 45) within a tolerance scaled by the sum length', async () => {
    setConv2dKernelPath(path);
    const cases: Conv2dShape[] = [
      { batch: 4, inChannels: 3, inH: 16, inW: 16, outChannels: 16, kernel: 3, stride: 1, padding: 1 },
      { batch: 2, inChannels: 12, inH: 8, inW: 8, outChannels: 23, kernel: 3, stride: 2, padding: 1 },
      { batch: 1, inChannels: 45, inH: 7, inW: 5, outChannels: 45, kernel: 3, stride: 1, padding: 1 },
      { batch: 2, inChannels: 16, inH: 32, inW: 32, outChannels: 16, kernel: 3, stride: 1, padding: 1 },
      { batch: 2, inChannels: 16, inH: 32, inW: 32, outChannels: 32, kernel: 3, stride: 2, padding: 1 },
      { batch: 3, inChannels: 23, inH: 6, inW: 6, outChannels: 12, kernel: 1, stride: 1, padding: 0 },
    ];
    await withSeed(`conv2d float ${path}`, async (rng, seed) => {
      for (const s of cases) {
        const sh = shapes(s);
        const count = (d: number[]) => d.reduce((a, b) => a * b, 1);
        const [x, w, dy] = [randomArray(rng, count(sh.x)), randomArray(rng, count(sh.w)), randomArray(rng, count(sh.y))];
        const [y, dx, dw] = await runKernels(s, x, w, dy);
        const label = describeShape(s);
        const { outH, outW } = ref.outSize(s);
        const k2 = s.kernel * s.kernel;
        assertClose(y, ref.conv2d(x, w, s), { ...tolerance(s.inChannels * k2), label: `y of ${label}`, seed, shape: sh.y });
        assertClose(dx, ref.conv2dBackwardInput(dy, w, s), { ...tolerance(s.outChannels * k2), label: `dx of ${label}`, seed, shape: sh.x });
        assertClose(dw, ref.conv2dBackwardWeight(dy, x, s), { ...tolerance(s.batch * outH * outW), label: `dw of ${label}`, seed, shape: sh.w });
      }
    });
  });

  it('conv2dWithBiasMap adds a [C, H, W] map to every sample (exact on integers; the vec4 kernel fuses it) and differentiates all three inputs', async () => {
    setConv2dKernelPath(path);
    const cases: Conv2dShape[] = [
      { batch: 3, inChannels: 5, inH: 4, inW: 16, outChannels: 11, kernel: 3, stride: 1, padding: 1 },
      { batch: 2, inChannels: 4, inH: 8, inW: 8, outChannels: 7, kernel: 3, stride: 2, padding: 1 },
      { batch: 2, inChannels: 3, inH: 5, inW: 7, outChannels: 6, kernel: 3, stride: 1, padding: 1 },
    ];
    await withSeed(`conv2d bias map ${path}`, async (rng, seed) => {
      for (const s of cases) {
        const sh = shapes(s);
        const count = (d: number[]) => d.reduce((a, b) => a * b, 1);
        const mapShape = sh.y.slice(1);
        const positions = count(mapShape);
        const [x, w, map] = [randomInts(rng, count(sh.x)), randomInts(rng, count(sh.w)), randomInts(rng, positions)];
        const y = await scope(() => conv2dWithBiasMap(tensor(x, sh.x), tensor(w, sh.w), tensor(map, mapShape), { stride: s.stride, padding: s.padding }).keep()).toArray();
        const expected = ref.conv2d(x, w, s).map((v, i) => v + map[i % positions]);
        assertEqual(y, expected, { label: `y of ${describeShape(s)} + map`, seed, shape: sh.y });
        await gradcheck(
          {
            label: `conv2dWithBiasMap ${describeShape(s)}`,
            inputs: [
              { data: randomArray(rng, count(sh.x)), shape: sh.x },
              { data: randomArray(rng, count(sh.w)), shape: sh.w },
              { data: randomArray(rng, positions), shape: mapShape },
            ],
            op: (xt, wt, mt) => conv2dWithBiasMap(xt, wt, mt, { stride: s.stride, padding: s.padding }),
            reference: (xv, wv, mv) => ref.conv2d(xv, wv, s).map((v, i) => v + mv[i % positions]),
            outputShape: sh.y,
            reductionLength: Math.max(s.inChannels * 9, s.batch),
            seed,
          },
          rng,
        );
      }
    });
  });

  it('gradients of conv2d (with bias) match central finite differences of the float64 reference', async () => {
    setConv2dKernelPath(path);
    const cases: Conv2dShape[] = [
      { batch: 2, inChannels: 3, inH: 5, inW: 6, outChannels: 4, kernel: 3, stride: 1, padding: 1 },
      { batch: 1, inChannels: 5, inH: 7, inW: 7, outChannels: 3, kernel: 3, stride: 2, padding: 1 },
      { batch: 1, inChannels: 12, inH: 4, inW: 5, outChannels: 7, kernel: 3, stride: 1, padding: 1 },
      { batch: 2, inChannels: 3, inH: 3, inW: 8, outChannels: 5, kernel: 3, stride: 1, padding: 1 },
      { batch: 1, inChannels: 3, inH: 4, inW: 8, outChannels: 4, kernel: 3, stride: 2, padding: 1 },
      // A channel count that leaves the vec4 forward's last row block partly padded.
      { batch: 2, inChannels: 5, inH: 6, inW: 8, outChannels: 11, kernel: 3, stride: 1, padding: 1 },
      { batch: 2, inChannels: 4, inH: 5, inW: 3, outChannels: 5, kernel: 1, stride: 2, padding: 0 },
      { batch: 1, inChannels: 2, inH: 9, inW: 8, outChannels: 3, kernel: 7, stride: 2, padding: 3 },
    ];
    await withSeed(`conv2d gradcheck ${path}`, async (rng, seed) => {
      for (const s of cases) {
        const sh = shapes(s);
        const count = (d: number[]) => d.reduce((a, b) => a * b, 1);
        const { outH, outW } = ref.outSize(s);
        const positions = outH * outW;
        await gradcheck(
          {
            label: `conv2d ${describeShape(s)}`,
            inputs: [
              { data: randomArray(rng, count(sh.x)), shape: sh.x },
              { data: randomArray(rng, count(sh.w)), shape: sh.w },
              { data: randomArray(rng, s.outChannels), shape: [s.outChannels] },
            ],
            op: (x, w, b) => conv2d(x, w, b, { stride: s.stride, padding: s.padding }),
            reference: (x, w, b) => {
              const y = ref.conv2d(x, w, s);
              for (let i = 0; i < y.length; i++) y[i] += b[Math.floor(i / positions) % s.outChannels];
              return y;
            },
            outputShape: sh.y,
            reductionLength: Math.max(s.inChannels * s.kernel * s.kernel, s.batch * positions),
            seed,
          },
          rng,
        );
      }
    });
  });
});

describe('conv2d: forward_3x3 row blocks and their tuning', () => {
  // Channel counts below, at and between the blocks, so each block runs full, partial and several.
  const cases: Conv2dShape[] = [
    { batch: 2, inChannels: 5, inH: 6, inW: 8, outChannels: 13, kernel: 3, stride: 1, padding: 1 },
    { batch: 1, inChannels: 11, inH: 4, inW: 16, outChannels: 23, kernel: 3, stride: 1, padding: 1 },
    { batch: 2, inChannels: 7, inH: 8, inW: 16, outChannels: 33, kernel: 3, stride: 2, padding: 1 },
    { batch: 3, inChannels: 16, inH: 4, inW: 4, outChannels: 6, kernel: 3, stride: 1, padding: 1 },
  ];

  // The fixed candidates and even splits (13 = 13, 23 → 12, 33 → 11, 45 → 15, 10), one output row per
  // lane; two rows with the two-row candidates and splits (13 → 7, 23 → 8, 12, 6 → 6, 5, 11). Stride 2 runs one row.
  const blocks: Forward3x3Block[] = [
    ...[8, 12, 16, 10, 11, 13, 15].map((tm) => ({ tm, rows: 1 as const })),
    ...[4, 5, 6, 7, 8, 11, 12, 16].map((tm) => ({ tm, rows: 2 as const })),
  ];
  it.each(blocks.map((b) => [formatForward3x3Block(b), b] as const))('block %s gives the exact integer forward and input gradient', async (name, block) => {
    setForward3x3Block(block);
    await withSeed(`conv2d block ${name}`, async (rng, seed) => {
      for (const s of cases) {
        const sh = shapes(s);
        const count = (d: number[]) => d.reduce((a, b) => a * b, 1);
        const [x, w, dy] = [randomInts(rng, count(sh.x)), randomInts(rng, count(sh.w)), randomInts(rng, count(sh.y))];
        const [y, dx] = await runKernels(s, x, w, dy);
        assertEqual(y, ref.conv2d(x, w, s), { label: `y of ${describeShape(s)}, block ${name}`, seed, shape: sh.y });
        assertEqual(dx, ref.conv2dBackwardInput(dy, w, s), { label: `dx of ${describeShape(s)}, block ${name}`, seed, shape: sh.x });
      }
    });
  });

  it('the candidates: blocks of 8, 12 and 16, and the even split into blocks of at most 16', () => {
    expect(forward3x3RowBlocks(10)).toEqual([8, 10, 12, 16]);
    expect(forward3x3RowBlocks(39)).toEqual([8, 12, 13, 16]);
    expect(forward3x3RowBlocks(64)).toEqual([8, 12, 16]);
  });

  it('two output rows per lane are candidates only at stride 1 with an even height, with 4, 6, 8 rows or the splits into blocks of at most 8 and 12', () => {
    const g = (outChannels: number, stride: number, inH: number) =>
      conv2dGeometry([1, 8, inH, 16], [outChannels, 8, 3, 3], { stride, padding: 1 });
    expect(forward3x3Blocks(g(10, 1, 8)).map(formatForward3x3Block)).toEqual(['8', '10', '12', '16', '2×4', '2×5', '2×6', '2×8', '2×10']);
    expect(forward3x3Blocks(g(45, 1, 8)).map(formatForward3x3Block)).toEqual(['8', '12', '15', '16', '2×4', '2×6', '2×8', '2×12']);
    expect(forward3x3Blocks(g(64, 1, 8)).map(formatForward3x3Block)).toEqual(['8', '12', '16', '2×4', '2×6', '2×8', '2×11']);
    expect(forward3x3Blocks(g(10, 2, 8)).map(formatForward3x3Block)).toEqual(['8', '10', '12', '16']);
    expect(forward3x3Blocks(g(10, 1, 6)).map(formatForward3x3Block)).toContain('2×5');
    expect(forward3x3Blocks(g(10, 1, 7)).map(formatForward3x3Block)).toEqual(['8', '10', '12', '16']);
  });

  it('refuses a block the kernel does not have', () => {
    expect(() => setForward3x3Block({ tm: 17, rows: 1 })).toThrow(/integer from 1 to 16, got 17/);
    expect(() => setForward3x3Block({ tm: 2.5, rows: 1 })).toThrow(/integer from 1 to 16, got 2.5/);
    expect(() => setForward3x3Block({ tm: 8, rows: 3 as 1 })).toThrow(/1 or 2 output rows per lane, got 3/);
  });

  it('tuneConv2d measures every 3×3 shape the run dispatches (and their input gradients), once, and changes no result', async (context) => {
    if (!conv2dUsesSubgroups()) {
      // Nothing to tune without the subgroup kernels; shown as skipped, since the property below goes unchecked.
      expect(await tuneConv2d(() => undefined)).toEqual([]);
      context.skip('no subgroup conv kernels on this device');
    }
    const s: Conv2dShape = { batch: 2, inChannels: 11, inH: 8, inW: 8, outChannels: 21, kernel: 3, stride: 1, padding: 1 };
    const sh = shapes(s);
    await withSeed('conv2d tuning', async (rng, seed) => {
      const x = tensor(randomArray(rng, sh.x.reduce((a, b) => a * b)), sh.x).keep();
      const w = tensor(randomArray(rng, sh.w.reduce((a, b) => a * b)), sh.w).keep();
      const forward = () => conv2d(x, w, null, { padding: 1 });
      const before = await scope(() => forward().keep()).toArray();
      const tuned = await tuneConv2d(() => void scope(forward), { training: true });
      // The forward 11→21 and its input gradient 21→11, each with a time per block.
      expect(tuned.map((t) => t.shape)).toEqual(['2×11×8×8→21 s1', '2×21×8×8→11 s1']);
      const geometries = [conv2dGeometry(sh.x, sh.w, { padding: 1 }), conv2dGeometry([2, 21, 8, 8], [11, 21, 3, 3], { padding: 1 })];
      tuned.forEach((t, i) => {
        expect(Object.keys(t.ms)).toEqual(forward3x3Blocks(geometries[i]).map(formatForward3x3Block));
        expect(Object.keys(t.ms)).toContain(t.chosen);
        expect(t.ms[t.chosen]).toBe(Math.min(...Object.values(t.ms)));
      });
      expect(await tuneConv2d(() => void scope(forward), { training: true })).toEqual([]);
      const after = await scope(() => forward().keep()).toArray();
      assertEqual(after, before, { label: 'conv2d after tuning', seed, shape: sh.y });
      // Evaluation: the fused epilogue is tuned on its own (a map's loads change the best block).
      const fused = () => {
        const c = (n: number) => tensor(new Float32Array(n).fill(1), [n]);
        const bn = { runningMean: c(21), runningVar: c(21), gamma: c(21), beta: c(21), eps: 1e-5, relu: true };
        conv2dBatchNormEval(x, w, { padding: 1 }, tensor(new Float32Array(21 * 64), [21, 8, 8]), bn);
      };
      const eval_ = await tuneConv2d(() => void scope(fused));
      expect(eval_.map((t) => t.shape)).toEqual(['2×11×8×8→21 s1 + bias map + BN + ReLU']);
      x.dispose();
      w.dispose();
    });
  });
});

describe('conv2d + batch norm in evaluation mode (conv2dBatchNormEval)', () => {
  // map: none, random (no border-class structure), or `classes`: one value per border class and channel
  // but for one position of channel 1, as compaction's maps are (read through the class table from
  // batch 4 on, the odd channel through the map).
  const cases: (Conv2dShape & { map: false | 'random' | 'classes'; relu: boolean })[] = [
    { batch: 2, inChannels: 5, inH: 6, inW: 8, outChannels: 13, kernel: 3, stride: 1, padding: 1, map: false, relu: true },
    { batch: 1, inChannels: 11, inH: 4, inW: 16, outChannels: 23, kernel: 3, stride: 1, padding: 1, map: 'random', relu: true },
    { batch: 2, inChannels: 7, inH: 8, inW: 16, outChannels: 9, kernel: 3, stride: 2, padding: 1, map: 'random', relu: false },
    { batch: 3, inChannels: 3, inH: 4, inW: 4, outChannels: 4, kernel: 3, stride: 1, padding: 1, map: false, relu: false },
    { batch: 4, inChannels: 6, inH: 6, inW: 8, outChannels: 11, kernel: 3, stride: 1, padding: 1, map: 'classes', relu: true },
    { batch: 5, inChannels: 4, inH: 8, inW: 16, outChannels: 5, kernel: 3, stride: 2, padding: 1, map: 'classes', relu: false },
    { batch: 4, inChannels: 9, inH: 4, inW: 8, outChannels: 20, kernel: 3, stride: 1, padding: 1, map: 'random', relu: true },
  ];

  /** A map [c, h, w] with one random value per channel and border class, position (1, 1) of channel 1 apart. */
  const classMap = (rng: Parameters<typeof randomArray>[0], c: number, h: number, w: number): Float32Array => {
    const values = randomArray(rng, c * 9);
    const cls = (i: number, size: number) => (i === 0 ? 0 : i === size - 1 ? 2 : 1);
    const map = new Float32Array(c * h * w);
    for (let k = 0; k < c; k++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) map[(k * h + y) * w + x] = values[k * 9 + cls(y, h) * 3 + cls(x, w)];
    if (c > 1 && h > 1) map[(1 * h + 1) * w + 1] += 0.5;
    return map;
  };

  // The default blocks, and two output rows per lane (the epilogue then writes two rows).
  it.each(['default', '2×5'])('gives the values of conv2d (+ bias map) then batchNorm2d, bit for bit, and the float64 reference within tolerance (block %s)', async (block) => {
    if (block === '2×5') setForward3x3Block({ tm: 5, rows: 2 });
    await withSeed('conv2d batch norm eval', async (rng, seed) => {
      for (const s of cases) {
        const sh = shapes(s);
        const count = (d: number[]) => d.reduce((a, b) => a * b, 1);
        const c = s.outChannels;
        const mapShape = sh.y.slice(1);
        const [x, w] = [randomArray(rng, count(sh.x)), randomArray(rng, count(sh.w))];
        const map = s.map === 'classes' ? classMap(rng, c, mapShape[1], mapShape[2]) : randomArray(rng, count(mapShape));
        const [mean, gamma, beta] = [randomArray(rng, c), randomArray(rng, c), randomArray(rng, c)];
        const variance = randomArray(rng, c).map((v) => 0.5 + Math.abs(v));
        const label = `${describeShape(s)}${s.map ? ` + ${s.map} map` : ''}${s.relu ? ', ReLU' : ''}`;
        const [fused, twoPasses] = scope(() => {
          const [xt, wt, mt] = [tensor(x, sh.x), tensor(w, sh.w), tensor(map, mapShape)];
          const bn = { runningMean: tensor(mean, [c]), runningVar: tensor(variance, [c]), gamma: tensor(gamma, [c]), beta: tensor(beta, [c]), eps: 1e-5, relu: s.relu };
          const options = { stride: s.stride, padding: s.padding };
          const conv = s.map ? conv2dWithBiasMap(xt, wt, mt, options) : conv2d(xt, wt, null, options);
          const separate = batchNorm2d(conv, bn.gamma, bn.beta, bn.runningMean, bn.runningVar, { training: false, eps: 1e-5, relu: s.relu });
          const one = conv2dBatchNormEval(xt, wt, options, s.map ? mt : null, bn);
          // The vec4 3×3 kernels fuse where the device has subgroups; elsewhere the caller runs the two ops.
          expect(one === null).toBe(!conv2dUsesSubgroups());
          return [(one ?? separate).keep(), separate.keep()];
        });
        const [y, expected] = (await readAll([fused, twoPasses])) as Float32Array[];
        const didFuse = fused !== twoPasses;
        fused.dispose();
        if (didFuse) twoPasses.dispose();
        if (didFuse) assertEqual(y, expected, { label: `fused ${label}`, seed, shape: sh.y });
        const convRef = ref.conv2d(x, w, s).map((v, i) => v + (s.map ? map[i % count(mapShape)] : 0));
        const reference = bnRef.batchNorm2d(convRef, sh.y, gamma, beta, mean, variance, { training: false, eps: 1e-5, relu: s.relu }).y;
        assertClose(y, reference, { ...tolerance(s.inChannels * 9), label: `fused ${label} vs float64`, seed, shape: sh.y });
      }
    });
  });

  it('biasMapClassTable: each channel\'s values by border class, ok only where every position holds its class value bit for bit', async (context) => {
    if (!conv2dUsesSubgroups()) context.skip('no subgroup conv kernels on this device');
    await withSeed('bias map classes', async (rng, seed) => {
      const maps: { label: string; data: Float32Array; shape: [number, number, number]; ok: number[] }[] = [
        { label: 'classes, channel 1 off at (1, 1)', data: classMap(rng, 3, 8, 8), shape: [3, 8, 8], ok: [1, 0, 1] },
        { label: 'one row', data: classMap(rng, 2, 1, 4), shape: [2, 1, 4], ok: [1, 1] },
        { label: 'two rows, channel 1 off', data: classMap(rng, 2, 2, 4), shape: [2, 2, 4], ok: [1, 0] },
        { label: 'random', data: Float32Array.from(randomArray(rng, 2 * 4 * 8)), shape: [2, 4, 8], ok: [0, 0] },
      ];
      // −0 where the class value is +0: equal as numbers, not as bits.
      const zeros = new Float32Array(2 * 4 * 4);
      zeros[4 * 4 + 5] = -0;
      maps.push({ label: '−0 in channel 1', data: zeros, shape: [2, 4, 4], ok: [1, 0] });
      // The map of constant input channels, computed as compaction does (the conv of an image of constants).
      const [cin, cout, h, w] = [5, 7, 8, 8];
      const image = new Float32Array(cin * h * w);
      for (const k of [0, 3]) image.fill(0.25 + k, k * h * w, (k + 1) * h * w);
      const weights = randomArray(rng, cout * cin * 9);
      const constantMap = (await scope(() => conv2d(tensor(image, [1, cin, h, w]), tensor(weights, [cout, cin, 3, 3]), null, { padding: 1 }).keep()).toArray()) as Float32Array;
      maps.push({ label: 'conv of constant channels', data: constantMap, shape: [cout, h, w], ok: new Array(cout).fill(1) });
      for (const m of maps) {
        const table = scope(() => biasMapClassTable(tensor(m.data, m.shape)).keep());
        const got = (await table.toArray()) as Float32Array;
        table.dispose();
        const expected = ref.biasMapClasses(m.data, ...m.shape);
        assertEqual(got, expected, { label: `class table, ${m.label}`, seed, shape: [m.shape[0], 3, 4] });
        expect(Array.from({ length: m.shape[0] }, (_, c) => got[c * 12 + 3]), m.label).toEqual(m.ok);
      }
    });
  });

  it('refuses BN parameters and bias maps of the wrong shape', (context) => {
    if (!conv2dUsesSubgroups()) context.skip('no subgroup conv kernels on this device');
    scope(() => {
      const x = Tensor.empty([1, 4, 4, 4]);
      const w = Tensor.empty([6, 4, 3, 3]);
      const v = (n: number) => Tensor.empty([n]);
      const bn = (n: number) => ({ runningMean: v(n), runningVar: v(6), gamma: v(6), beta: v(6), eps: 1e-5, relu: false });
      expect(() => conv2dBatchNormEval(x, w, { padding: 1 }, null, bn(5))).toThrow(/running_mean must have shape \[6\]/);
      expect(() => conv2dBatchNormEval(x, w, { padding: 1 }, Tensor.empty([6, 4, 5]), bn(6))).toThrow(/bias map must be \[6, 4, 4\]/);
    });
  });
});

describe('conv2d: shapes and errors', () => {
  it('rejects mismatched channels and kernels that do not fit, naming the shapes', () => {
    expect(() => conv2dGeometry([1, 3, 8, 8], [4, 2, 3, 3])).toThrow(/\[1, 3, 8, 8\] has 3 channels, weight \[4, 2, 3, 3\] expects 2/);
    expect(() => conv2dGeometry([1, 3, 2, 2], [4, 3, 5, 5])).toThrow(/does not fit/);
    expect(() => scope(() => conv2dForwardKernel(Tensor.empty([1, 1, 9, 9]), Tensor.empty([1, 1, 9, 9]),
      conv2dGeometry([1, 1, 9, 9], [1, 1, 9, 9], { padding: 4 })))).toThrow(/wider than 8/);
  });
});
