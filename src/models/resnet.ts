/**
 * The CIFAR ResNets of the SFP paper (ResNet-20/32/56/110: 3 stages of 16/32/64 channels, n = (depth−2)/6
 * basic blocks each, option-A shortcuts) with PyTorch's torchvision-style names, and the channel
 * couplings that pruning and compaction read: each block's conv1 → bn1 → conv2 (input), and conv2 →
 * bn2 → the residual stream.
 */
import { Module } from '../nn/module.js';
import { BatchNorm2d, Conv2d, Linear, convBatchNorm } from '../nn/layers.js';
import { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { addRelu } from '../ops/elementwise.js';
import { shortcutA } from '../ops/shortcut.js';
import { residualJoin, type ResidualJoinIndex } from '../ops/gather.js';
import { globalAvgPool, maxPool2d } from '../ops/pool.js';

export const CIFAR_DEPTHS = { resnet20: 20, resnet32: 32, resnet56: 56, resnet110: 110 } as const;
export type CifarResNetName = keyof typeof CIFAR_DEPTHS;

export class BasicBlock extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  /** Option A: subsample and zero-pad channels when the shape changes (no parameters). */
  readonly downsample: { outChannels: number; stride: number } | null;
  /** The option-A shortcut as the inference join's indices (buffers outside the state dict). */
  private readonly shortcutIndex: ResidualJoinIndex | null = null;

  constructor(inChannels: number, channels: number, stride: number, rng: Rng) {
    super();
    this.conv1 = this.registerModule('conv1', new Conv2d(inChannels, channels, 3, { stride, padding: 1 }, rng));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(channels, { relu: true }));
    this.conv2 = this.registerModule('conv2', new Conv2d(channels, channels, 3, { padding: 1 }, rng));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(channels));
    this.downsample = stride !== 1 || inChannels !== channels ? { outChannels: channels, stride } : null;
    if (this.downsample) {
      // Output channel c reads the block's channel c and the shortcut's channel c, zero past the input's.
      const index = Array.from({ length: channels }, (_, c) => c);
      const persistent = false;
      this.shortcutIndex = {
        yIndex: this.registerBuffer('shortcut_y_index', Tensor.fromArray(index, [channels], 'i32'), { persistent }),
        rIndex: this.registerBuffer('shortcut_r_index', Tensor.fromArray(index.map((c) => (c < inChannels ? c : -1)), [channels], 'i32'), { persistent }),
        constants: this.registerBuffer('shortcut_constants', Tensor.fromArray(new Float32Array(channels), [channels]), { persistent }),
        stride,
      };
    }
  }

  forward(x: Tensor): Tensor {
    const h = convBatchNorm(this.conv1, this.bn1, x);
    return this.join(convBatchNorm(this.conv2, this.bn2, h), x);
  }

  /**
   * relu(out + shortcut(x)). In inference the option-A shortcut is read in place by one strided gather-add,
   * as a compacted block's join is, so a dense-vs-compact benchmark times the same join on both sides
   * (the values are the same bits as subsampling, padding and adding in two passes).
   */
  join(out: Tensor, x: Tensor): Tensor {
    const down = this.downsample;
    if (!down) return addRelu(out, x);
    if (this.training) return addRelu(out, shortcutA(x, down.outChannels, down.stride));
    return residualJoin(out, x, this.shortcutIndex!);
  }
}

export class Stage extends Module {
  readonly blocks: BasicBlock[] = [];

  constructor(inChannels: number, channels: number, count: number, stride: number, rng: Rng) {
    super();
    for (let i = 0; i < count; i++) {
      this.blocks.push(this.registerModule(String(i), new BasicBlock(i === 0 ? inChannels : channels, channels, i === 0 ? stride : 1, rng)));
    }
  }

  forward(x: Tensor): Tensor {
    let h = x;
    for (const block of this.blocks) h = block.forward(h);
    return h;
  }
}

export class CifarResNet extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly stages: Stage[];
  readonly fc: Linear;

  constructor(readonly depth: number, readonly numClasses = 10, seed = 0, readonly widths: readonly number[] = [16, 32, 64]) {
    super();
    if ((depth - 2) % 6 !== 0 || depth < 8) throw new Error(`CIFAR ResNet depth must be 6n+2 (20, 32, 56, 110), got ${depth}`);
    const n = (depth - 2) / 6;
    const rng = new Rng(seed);
    this.conv1 = this.registerModule('conv1', new Conv2d(3, widths[0], 3, { padding: 1 }, rng));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(widths[0], { relu: true }));
    this.stages = widths.map((w, i) => this.registerModule(`layer${i + 1}`, new Stage(i === 0 ? widths[0] : widths[i - 1], w, n, i === 0 ? 1 : 2, rng)));
    this.fc = this.registerModule('fc', new Linear(widths[widths.length - 1], numClasses, {}, rng));
    this.nameTensors();
  }

  forward(x: Tensor): Tensor {
    let h = convBatchNorm(this.conv1, this.bn1, x);
    for (const stage of this.stages) h = stage.forward(h);
    return this.fc.forward(globalAvgPool(h));
  }

  /** Every conv layer by name, in forward order. */
  convs(): [string, Conv2d][] {
    return this.namedModules().filter((e): e is [string, Conv2d] => e[1] instanceof Conv2d);
  }
}

export function cifarResNet(name: CifarResNetName, seed = 0, numClasses = 10): CifarResNet {
  return new CifarResNet(CIFAR_DEPTHS[name], numClasses, seed);
}

/**
 * The depth, stage widths and classes of a CIFAR ResNet's state dict (a checkpoint's model tensors), so the
 * network can be rebuilt before its weights load. `source` names the file in errors.
 */
export function cifarResNetShapeOf(state: ReadonlyMap<string, { shape: readonly number[] }>, source: string): { depth: number; classes: number; widths: number[] } {
  const shape = (name: string) => {
    const t = state.get(name);
    if (!t) throw new Error(`${source}: no tensor "${name}"; is this a CIFAR ResNet checkpoint? (its first tensors: ${[...state.keys()].slice(0, 6).join(', ') || 'none'})`);
    return t.shape;
  };
  const blocks = new Set([...state.keys()].flatMap((k) => /^layer1\.(\d+)\.conv1\.weight$/.exec(k)?.[1] ?? []));
  const widths = [shape('conv1.weight')[0], shape('layer2.0.conv1.weight')[0], shape('layer3.0.conv1.weight')[0]];
  return { depth: 6 * blocks.size + 2, classes: shape('fc.weight')[0], widths };
}

/** A 1×1 projection shortcut with its BN (torchvision's `downsample.0` / `downsample.1`). */
export class Projection extends Module {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;

  constructor(inChannels: number, outChannels: number, stride: number, rng: Rng) {
    super();
    this.conv = this.registerModule('0', new Conv2d(inChannels, outChannels, 1, { stride }, rng));
    this.bn = this.registerModule('1', new BatchNorm2d(outChannels));
  }

  forward(x: Tensor): Tensor {
    return convBatchNorm(this.conv, this.bn, x);
  }
}

/** torchvision's BasicBlock (ResNet-18/34): two 3×3 convs, projection shortcut where the shape changes. */
export class ImageNetBasicBlock extends Module {
  static readonly expansion = 1;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly downsample: Projection | null;

  constructor(inChannels: number, channels: number, stride: number, rng: Rng) {
    super();
    this.conv1 = this.registerModule('conv1', new Conv2d(inChannels, channels, 3, { stride, padding: 1 }, rng));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(channels, { relu: true }));
    this.conv2 = this.registerModule('conv2', new Conv2d(channels, channels, 3, { padding: 1 }, rng));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(channels));
    this.downsample = stride !== 1 || inChannels !== channels ? this.registerModule('downsample', new Projection(inChannels, channels, stride, rng)) : null;
  }

  forward(x: Tensor): Tensor {
    const out = convBatchNorm(this.conv2, this.bn2, convBatchNorm(this.conv1, this.bn1, x));
    return addRelu(out, this.downsample ? this.downsample.forward(x) : x);
  }
}

/** torchvision's Bottleneck (ResNet-50): 1×1 reduce, 3×3 (stride here, as torchvision v1.5), 1×1 expand ×4. */
export class Bottleneck extends Module {
  static readonly expansion = 4;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv3: Conv2d;
  readonly bn3: BatchNorm2d;
  readonly downsample: Projection | null;

  constructor(inChannels: number, channels: number, stride: number, rng: Rng) {
    super();
    const out = channels * Bottleneck.expansion;
    this.conv1 = this.registerModule('conv1', new Conv2d(inChannels, channels, 1, {}, rng));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(channels, { relu: true }));
    this.conv2 = this.registerModule('conv2', new Conv2d(channels, channels, 3, { stride, padding: 1 }, rng));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(channels, { relu: true }));
    this.conv3 = this.registerModule('conv3', new Conv2d(channels, out, 1, {}, rng));
    this.bn3 = this.registerModule('bn3', new BatchNorm2d(out));
    this.downsample = stride !== 1 || inChannels !== out ? this.registerModule('downsample', new Projection(inChannels, out, stride, rng)) : null;
  }

  forward(x: Tensor): Tensor {
    const h = convBatchNorm(this.conv2, this.bn2, convBatchNorm(this.conv1, this.bn1, x));
    const out = convBatchNorm(this.conv3, this.bn3, h);
    return addRelu(out, this.downsample ? this.downsample.forward(x) : x);
  }
}

export const IMAGENET_LAYOUTS = {
  resnet18: { block: 'basic', counts: [2, 2, 2, 2] },
  resnet34: { block: 'basic', counts: [3, 4, 6, 3] },
  resnet50: { block: 'bottleneck', counts: [3, 4, 6, 3] },
} as const;
export type ImageNetResNetName = keyof typeof IMAGENET_LAYOUTS;

/** The ImageNet ResNets' shapes (torchvision names), for benchmarks at 224×224. */
export class ImageNetResNet extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly layers: Module[][] = [];
  readonly fc: Linear;

  constructor(readonly arch: ImageNetResNetName, numClasses = 1000, seed = 0) {
    super();
    const rng = new Rng(seed);
    const layout = IMAGENET_LAYOUTS[arch];
    const Block = layout.block === 'basic' ? ImageNetBasicBlock : Bottleneck;
    this.conv1 = this.registerModule('conv1', new Conv2d(3, 64, 7, { stride: 2, padding: 3 }, rng));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(64, { relu: true }));
    let inChannels = 64;
    layout.counts.forEach((count, stage) => {
      const channels = 64 * 2 ** stage;
      const container = this.registerModule(`layer${stage + 1}`, new Sequential());
      const blocks: Module[] = [];
      for (let i = 0; i < count; i++) {
        const block = new Block(inChannels, channels, i === 0 && stage > 0 ? 2 : 1, rng);
        container.add(String(i), block);
        blocks.push(block);
        inChannels = channels * Block.expansion;
      }
      this.layers.push(blocks);
    });
    this.fc = this.registerModule('fc', new Linear(inChannels, numClasses, {}, rng));
    this.nameTensors();
  }

  forward(x: Tensor): Tensor {
    let h = maxPool2d(convBatchNorm(this.conv1, this.bn1, x), 3, { stride: 2, padding: 1 });
    for (const stage of this.layers) for (const block of stage) h = block.forward(h);
    return this.fc.forward(globalAvgPool(h));
  }
}

/** A named container whose children run in order. */
class Sequential extends Module {
  private readonly order: Module[] = [];

  add(name: string, m: Module): void {
    this.order.push(this.registerModule(name, m));
  }

  forward(x: Tensor): Tensor {
    let h = x;
    for (const m of this.order) h = m.forward(h);
    return h;
  }
}

/** What a conv does in a ResNet, as pruning options name it. */
export type ConvRole = 'stem' | 'inner' | 'last' | 'projection';

export interface ConvInfo {
  name: string;
  conv: Conv2d;
  role: ConvRole;
  /** 0-based stage (the stem counts as stage 0). */
  stage: number;
  /** The residual stream the conv writes into (stem, last and projection convs), as an id. */
  stream: number | null;
}

/**
 * Every conv of a ResNet with its role, declared from the architecture rather than traced: the stem
 * writes the first residual stream; a block's last conv (and its projection) writes its stage's stream.
 */
export function describeConvs(model: CifarResNet | ImageNetResNet): ConvInfo[] {
  const out: ConvInfo[] = [{ name: 'conv1', conv: model.conv1, role: 'stem', stage: 0, stream: 0 }];
  const stages: Module[][] = model instanceof CifarResNet ? model.stages.map((s) => s.blocks) : model.layers;
  stages.forEach((blocks, stage) => {
    blocks.forEach((block, i) => {
      const prefix = `layer${stage + 1}.${i}`;
      if (block instanceof BasicBlock || block instanceof ImageNetBasicBlock) {
        out.push({ name: `${prefix}.conv1`, conv: block.conv1, role: 'inner', stage, stream: null });
        out.push({ name: `${prefix}.conv2`, conv: block.conv2, role: 'last', stage, stream: stage });
      } else if (block instanceof Bottleneck) {
        out.push({ name: `${prefix}.conv1`, conv: block.conv1, role: 'inner', stage, stream: null });
        out.push({ name: `${prefix}.conv2`, conv: block.conv2, role: 'inner', stage, stream: null });
        out.push({ name: `${prefix}.conv3`, conv: block.conv3, role: 'last', stage, stream: stage });
      }
      const projection = (block as ImageNetBasicBlock | Bottleneck).downsample;
      if (projection instanceof Projection) {
        out.push({ name: `${prefix}.downsample.0`, conv: projection.conv, role: 'projection', stage, stream: stage });
      }
    });
  });
  // When the first block projects the stem's output (ResNet-50), the stem has a stream of its own.
  if (out.some((c) => c.role === 'projection' && c.stage === 0)) out[0].stream = -1;
  return out;
}
