/**
 * Networks as lists of timed layers, for the speedup benchmark: every conv with its BN (and ReLU), every
 * projection shortcut, every residual join, the ImageNet max pool, and the head (average pool + classifier).
 * Each layer names the earlier outputs it reads, so it can be run alone on fixed inputs, and carries its
 * FLOPs per image (prune/flops.ts). The dense and compact lists of one network have the same layer names.
 *
 * The ImageNet ResNets have projection shortcuts, which CIFAR compaction (prune/plan.ts) refuses, so their
 * compact version here is built directly from the kept channel counts with random weights: it runs the
 * same kernels at the same widths as a real compaction would (kept filters, live stream channels, bias maps
 * of constant inputs, the scatter-add join), but its outputs mean nothing. It is for timing only.
 */
import { Module } from '../nn/module.js';
import { BatchNorm2d, Conv2d, Linear, convBatchNorm } from '../nn/layers.js';
import { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { gpu } from '../gpu/encoder.js';
import { add, addRelu, fill } from '../ops/elementwise.js';
import { globalAvgPool, maxPool2d } from '../ops/pool.js';
import { residualJoin } from '../ops/gather.js';
import {
  BasicBlock,
  Bottleneck,
  CifarResNet,
  IMAGENET_LAYOUTS,
  ImageNetBasicBlock,
  ImageNetResNet,
  describeConvs,
  type ImageNetResNetName,
} from '../models/resnet.js';
import { CompactConv2d, type CompactResNet } from '../prune/compact.js';
import { prunedCount } from '../prune/criteria.js';
import { convLayerFlops, headLayerFlops, joinLayerFlops, poolLayerFlops, type LayerFlops } from '../prune/flops.js';

export type LayerKind = 'conv' | 'projection' | 'join' | 'pool' | 'head';

export interface BenchLayer {
  /** State-dict style name: `conv1`, `layer1.0.conv2`, `layer1.0.join`, `head`. */
  name: string;
  kind: LayerKind;
  /** Indices of the earlier layers whose outputs this one reads; −1 is the network's input. */
  inputs: readonly number[];
  /** Counts for one image. */
  flops: LayerFlops;
  forward(inputs: readonly Tensor[]): Tensor;
}

export interface BenchNetwork {
  layers: BenchLayer[];
  /** The model's own forward (what end-to-end timing runs). */
  forward(x: Tensor): Tensor;
  /** [channels, height, width] of one input image. */
  inputShape: readonly [number, number, number];
  parameters: number;
}

type Size = readonly [number, number];

function convOut(size: Size, conv: Conv2d): Size {
  const k = conv.kernelSize;
  return [
    Math.floor((size[0] + 2 * conv.padding - k) / conv.stride) + 1,
    Math.floor((size[1] + 2 * conv.padding - k) / conv.stride) + 1,
  ];
}

function parameterCount(m: Module): number {
  return m.parameters().reduce((n, p) => n + p.size, 0);
}

/** Collects layers while tracking each output's spatial size. */
class LayerList {
  readonly layers: BenchLayer[] = [];
  readonly sizes: Size[] = [];

  constructor(readonly inputSize: Size) {}

  sizeOf(index: number): Size {
    return index < 0 ? this.inputSize : this.sizes[index];
  }

  push(layer: BenchLayer, size: Size): number {
    this.layers.push(layer);
    this.sizes.push(size);
    return this.layers.length - 1;
  }

  /** conv → BN (→ ReLU when the BN fuses one); a compact conv adds its bias map. */
  conv(name: string, kind: 'conv' | 'projection', conv: Conv2d, bn: BatchNorm2d, input: number): number {
    const size = convOut(this.sizeOf(input), conv);
    const biasMap = conv instanceof CompactConv2d ? conv.inputBias !== null : conv instanceof BiasMapConv2d ? conv.inputBias !== null : false;
    const flops = convLayerFlops({
      inChannels: conv.inChannels,
      outChannels: conv.outChannels,
      kernel: conv.kernelSize,
      outH: size[0],
      outW: size[1],
      relu: bn.options.relu ?? false,
      biasMap,
    });
    return this.push({ name, kind, inputs: [input], flops, forward: ([x]) => convBatchNorm(conv, bn, x) }, size);
  }

  join(name: string, y: number, residual: number, added: number, outChannels: number, forward: (y: Tensor, r: Tensor) => Tensor): number {
    const size = this.sizeOf(y);
    const flops = joinLayerFlops({ added, outChannels, outH: size[0], outW: size[1] });
    return this.push({ name, kind: 'join', inputs: [y, residual], flops, forward: ([a, b]) => forward(a, b) }, size);
  }

  head(input: number, channels: number, fc: Linear): number {
    const [h, w] = this.sizeOf(input);
    const flops = headLayerFlops({ channels, inH: h, inW: w, numClasses: fc.outFeatures });
    return this.push({ name: 'head', kind: 'head', inputs: [input], flops, forward: ([x]) => fc.forward(globalAvgPool(x)) }, [1, 1]);
  }
}

/** A CIFAR ResNet (dense, or masked: its zeroed filters still run) as timed layers. */
export function cifarNetwork(model: CifarResNet, inputSize: Size = [32, 32]): BenchNetwork {
  const list = new LayerList(inputSize);
  let h = list.conv('conv1', 'conv', model.conv1, model.bn1, -1);
  model.stages.forEach((stage, s) =>
    stage.blocks.forEach((block: BasicBlock, i) => {
      const name = `layer${s + 1}.${i}`;
      const a = list.conv(`${name}.conv1`, 'conv', block.conv1, block.bn1, h);
      const b = list.conv(`${name}.conv2`, 'conv', block.conv2, block.bn2, a);
      const c = block.conv2.outChannels;
      h = list.join(`${name}.join`, b, h, c, c, (y, x) => block.join(y, x));
    }),
  );
  list.head(h, model.fc.inFeatures, model.fc);
  return { layers: list.layers, forward: (x) => model.forward(x), inputShape: [3, inputSize[0], inputSize[1]], parameters: parameterCount(model) };
}

/** A compacted CIFAR ResNet (prune/compact.ts) as timed layers with the dense model's names. */
export function compactCifarNetwork(model: CompactResNet): BenchNetwork {
  const list = new LayerList(model.inputSize);
  let h = list.conv('conv1', 'conv', model.conv1, model.bn1, -1);
  model.stages.forEach((stage, s) =>
    stage.blocks.forEach((block, i) => {
      const name = `layer${s + 1}.${i}`;
      const a = list.conv(`${name}.conv1`, 'conv', block.conv1, block.bn1, h);
      const b = list.conv(`${name}.conv2`, 'conv', block.conv2, block.bn2, a);
      h = list.join(`${name}.join`, b, h, block.conv2.outChannels, block.join.plan.live.length, (y, x) => block.join.join(y, x));
    }),
  );
  list.head(h, model.fc.inFeatures, model.fc);
  return {
    layers: list.layers,
    forward: (x) => model.forward(x),
    inputShape: [3, model.inputSize[0], model.inputSize[1]],
    parameters: model.parameterCount(),
  };
}

/** An ImageNet ResNet at `size`×`size` as timed layers. */
export function imageNetNetwork(model: ImageNetResNet, size = 224): BenchNetwork {
  const list = new LayerList([size, size]);
  const stem = list.conv('conv1', 'conv', model.conv1, model.bn1, -1);
  let h = list.push(
    { name: 'maxpool', kind: 'pool', inputs: [stem], flops: poolFlops(list.sizeOf(stem), model.bn1.numFeatures), forward: ([x]) => maxPool2d(x, 3, { stride: 2, padding: 1 }) },
    poolOut(list.sizeOf(stem)),
  );
  model.layers.forEach((blocks, s) =>
    blocks.forEach((block, i) => {
      const name = `layer${s + 1}.${i}`;
      const b = block as ImageNetBasicBlock | Bottleneck;
      let y = list.conv(`${name}.conv1`, 'conv', b.conv1, b.bn1, h);
      y = list.conv(`${name}.conv2`, 'conv', b.conv2, b.bn2, y);
      let out = b.conv2.outChannels;
      if (b instanceof Bottleneck) {
        y = list.conv(`${name}.conv3`, 'conv', b.conv3, b.bn3, y);
        out = b.conv3.outChannels;
      }
      const r = b.downsample ? list.conv(`${name}.downsample`, 'projection', b.downsample.conv, b.downsample.bn, h) : h;
      h = list.join(`${name}.join`, y, r, out, out, (a, c) => addRelu(a, c));
    }),
  );
  list.head(h, model.fc.inFeatures, model.fc);
  return { layers: list.layers, forward: (x) => model.forward(x), inputShape: [3, size, size], parameters: parameterCount(model) };
}

function poolOut(size: Size): Size {
  return [Math.floor((size[0] + 2 - 3) / 2) + 1, Math.floor((size[1] + 2 - 3) / 2) + 1];
}

function poolFlops(inSize: Size, channels: number): LayerFlops {
  const [outH, outW] = poolOut(inSize);
  return poolLayerFlops({ channels, kernel: 3, outH, outW });
}

/**
 * Random SFP masks in the SFP code's ImageNet setting: floor(C·P) filters of every conv except the projection
 * shortcuts, chosen at random (after training, which filters SFP keeps depends on the weights; how many does not).
 */
export function randomFilterMasks(model: CifarResNet | ImageNetResNet, rate: number, seed: number): Map<string, Uint32Array> {
  const rng = new Rng(seed);
  const masks = new Map<string, Uint32Array>();
  for (const c of describeConvs(model)) {
    if (c.role === 'projection') continue;
    const width = c.conv.outChannels;
    const order = Array.from({ length: width }, (_, j) => j);
    for (let j = width - 1; j > 0; j--) {
      const k = rng.int(j + 1);
      [order[j], order[k]] = [order[k], order[j]];
    }
    const mask = new Uint32Array(width).fill(1);
    for (const j of order.slice(0, prunedCount(width, rate))) mask[j] = 0;
    masks.set(c.name, mask);
  }
  return masks;
}

/**
 * Gives every BN random affine parameters and running statistics, as a trained model has: then a pruned
 * channel's constant BN(0) is generally non-zero, and compaction must build the bias maps it would build
 * for a trained model (with PyTorch's initial BN every constant is 0 and no bias map would be timed).
 */
export function randomizeBatchNorms(model: Module, seed: number): void {
  const rng = new Rng(seed);
  const uniform = (n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.uniform());
  for (const [, m] of model.namedModules()) {
    if (!(m instanceof BatchNorm2d)) continue;
    const n = m.numFeatures;
    gpu().upload(m.weight.buffer, uniform(n, 0.5, 1.5));
    gpu().upload(m.bias.buffer, uniform(n, -0.5, 0.5));
    gpu().upload(m.runningMean.buffer, uniform(n, -0.5, 0.5));
    gpu().upload(m.runningVar.buffer, uniform(n, 0.5, 2));
  }
}

/** A conv over live input channels plus a bias map [C_out, H_out, W_out] for the constant ones (random here). */
class BiasMapConv2d extends Conv2d {
  readonly inputBias: Tensor | null;

  constructor(inChannels: number, outChannels: number, kernel: number, options: { stride?: number; padding?: number }, outSize: Size | null, rng: Rng) {
    super(inChannels, outChannels, kernel, options, rng);
    this.inputBias = outSize ? this.registerBuffer('input_bias', fill([outChannels, outSize[0], outSize[1]], 0.01)) : null;
  }

  override forward(x: Tensor): Tensor {
    const y = super.forward(x);
    return this.inputBias ? add(y, this.inputBias) : y;
  }

  override outputBias(): Tensor | null {
    return this.inputBias;
  }
}

/** Channel states of a tensor: which channels are live (the others are constants, dropped by compaction). */
type Live = boolean[];

const positions = (live: Live): number[] => live.flatMap((l, j) => (l ? [j] : []));

/**
 * The compact ImageNet ResNet a compaction would give for `masks`, with random weights, for timing only: each
 * conv computes its kept filters from the live channels before it (a bias map where some inputs are constant);
 * a projection (not pruned) keeps its full width; each block ends in the scatter-add join into the stream.
 */
export class TimingCompactImageNet extends Module {
  readonly network: BenchNetwork;
  private readonly run: (x: Tensor) => Tensor;

  constructor(readonly arch: ImageNetResNetName, masks: ReadonlyMap<string, Uint32Array>, size = 224, seed = 0) {
    super();
    const rng = new Rng(seed);
    const list = new LayerList([size, size]);
    const kept = (name: string, width: number): Live => {
      const m = masks.get(name);
      return m ? Array.from(m, (v) => v !== 0) : new Array<boolean>(width).fill(true);
    };
    const count = (live: Live) => live.filter(Boolean).length;
    /** A conv of `width` filters (kept per `name`'s mask) over `input` (its live channels), with its BN. */
    const conv = (name: string, kind: 'conv' | 'projection', input: number, inLive: Live, width: number, kernel: number, stride: number, relu: boolean, pruned: boolean) => {
      const outLive = pruned ? kept(name, width) : new Array<boolean>(width).fill(true);
      const padding = (kernel - 1) / 2;
      const inSize = list.sizeOf(input);
      const outSize: Size = [Math.floor((inSize[0] + 2 * padding - kernel) / stride) + 1, Math.floor((inSize[1] + 2 * padding - kernel) / stride) + 1];
      const c = this.registerModule(name, new BiasMapConv2d(count(inLive), count(outLive), kernel, { stride, padding }, count(inLive) < inLive.length ? outSize : null, rng));
      const bn = this.registerModule(`${name}.bn`, new BatchNorm2d(count(outLive), { relu }));
      return { index: list.conv(name, kind, c, bn, input), live: outLive };
    };
    const layout = IMAGENET_LAYOUTS[arch];
    const stem = conv('conv1', 'conv', -1, [true, true, true], 64, 7, 2, true, true);
    let stream = stem.live;
    let h = list.push(
      { name: 'maxpool', kind: 'pool', inputs: [stem.index], flops: poolFlops(list.sizeOf(stem.index), count(stream)), forward: ([x]) => maxPool2d(x, 3, { stride: 2, padding: 1 }) },
      poolOut(list.sizeOf(stem.index)),
    );
    layout.counts.forEach((blocks, s) => {
      const channels = 64 * 2 ** s;
      const out = layout.block === 'basic' ? channels : channels * Bottleneck.expansion;
      for (let i = 0; i < blocks; i++) {
        const name = `layer${s + 1}.${i}`;
        const stride = i === 0 && s > 0 ? 2 : 1;
        let y: { index: number; live: Live };
        if (layout.block === 'basic') {
          y = conv(`${name}.conv1`, 'conv', h, stream, channels, 3, stride, true, true);
          y = conv(`${name}.conv2`, 'conv', y.index, y.live, channels, 3, 1, false, true);
        } else {
          y = conv(`${name}.conv1`, 'conv', h, stream, channels, 1, 1, true, true);
          y = conv(`${name}.conv2`, 'conv', y.index, y.live, channels, 3, stride, true, true);
          y = conv(`${name}.conv3`, 'conv', y.index, y.live, out, 1, 1, false, true);
        }
        const projects = stride !== 1 || stream.length !== out;
        const residual = projects ? conv(`${name}.downsample`, 'projection', h, stream, out, 1, stride, false, false) : { index: h, live: stream };
        // A stream channel stays live when the last conv kept it or the residual is live there.
        const next = y.live.map((l, j) => l || residual.live[j]);
        const yPos = new Map(positions(y.live).map((j, k) => [j, k]));
        const rPos = new Map(positions(residual.live).map((j, k) => [j, k]));
        const live = positions(next);
        const yIndex = this.registerBuffer(`${name}.y_index`, Tensor.fromArray(live.map((j) => yPos.get(j) ?? -1), [live.length], 'i32'));
        const rIndex = this.registerBuffer(`${name}.r_index`, Tensor.fromArray(live.map((j) => rPos.get(j) ?? -1), [live.length], 'i32'));
        const constants = this.registerBuffer(`${name}.constants`, fill([live.length], 0.01));
        h = list.join(`${name}.join`, y.index, residual.index, count(y.live), live.length, (a, r) =>
          residualJoin(a, r, { yIndex, rIndex, constants, stride: 1 }),
        );
        stream = next;
      }
    });
    const fc = this.registerModule('fc', new Linear(count(stream), 1000, {}, rng));
    list.head(h, count(stream), fc);
    this.eval();
    const layers = list.layers;
    this.run = (x) => {
      const outs: Tensor[] = [];
      for (const layer of layers) outs.push(layer.forward(layer.inputs.map((j) => (j < 0 ? x : outs[j]))));
      return outs[outs.length - 1];
    };
    this.network = { layers, forward: (x) => this.run(x), inputShape: [3, size, size], parameters: parameterCount(this) };
  }

  forward(x: Tensor): Tensor {
    return this.run(x);
  }
}
