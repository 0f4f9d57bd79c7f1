/**
 * CompactionPlan: what compaction keeps of a masked CIFAR ResNet, derived from the masks and the couplings
 * that models/resnet.ts declares (describeConvs and the block structure), not by tracing.
 *
 * In eval mode a zeroed filter's channel is, after its BN, the constant BN(0) = β − γ·μ/√(σ²+ε) (after the
 * ReLU: max(BN(0), 0)), the same at every position. Constants stay spatially uniform through ReLU, the
 * residual add, option-A subsampling and its zero channels (constant 0), so every channel of every
 * intermediate tensor is either LIVE or a known CONSTANT. The compact model carries only live channels:
 *  - a conv drops its constant input channels; their contribution becomes a per-position bias map (zero
 *    padding makes the border differ from the interior), computed exactly in compact.ts;
 *  - a block's last conv computes only its kept filters; the block's output channel j is live when conv2 kept
 *    j or the residual's channel j is live, else it is the constant relu(BN2(0)_j + residual_j) and is
 *    dropped. The join adds conv2's kept outputs into the live stream channels (the official small model's
 *    `index_add_`) plus the constants of conv2's pruned channels (its `bn_value`) and of constant residual
 *    channels. In faithful SFP (each conv ranked alone) the stream stays nearly full width; with coupled
 *    masks it narrows;
 *  - the global average pool of a constant channel is that constant: it folds into the classifier's bias.
 * The plan is plain data (JSON) and prints as one "trigger ⇒ handler" cascade per conv.
 */
import { gpu } from '../gpu/encoder.js';
import { describeConvs, type CifarResNet } from '../models/resnet.js';
import type { BatchNorm2d } from '../nn/layers.js';
import type { Tensor } from '../tensor/tensor.js';

/** A channel that is the same constant at every position (of every image). */
export interface ConstantChannel {
  channel: number;
  value: number;
}

export interface ConvPlan {
  /** State-dict names of the conv and the BN after it. */
  conv: string;
  bn: string;
  /** Widths of the masked model's conv. */
  inChannels: number;
  outChannels: number;
  stride: number;
  padding: number;
  /** Whether the BN is followed by a ReLU (fused). */
  relu: boolean;
  /** Live input channels, ascending: the compact conv's inputs, in this order. */
  keptIn: number[];
  /** Constant input channels: folded into the bias map. */
  constantIn: ConstantChannel[];
  /** Kept filters, ascending: the compact conv's outputs and BN entries, in this order. */
  keptOut: number[];
  /** Pruned filters and the constant each gives after the BN (and ReLU when `relu`). */
  constantOut: ConstantChannel[];
}

export interface JoinPlan {
  /** Width of the masked model's stream after the block. */
  channels: number;
  /** Stream channels live after the block, ascending: the compact block's output channels, in this order. */
  live: number[];
  /** Per live channel: its position among conv2's kept outputs, or −1 when conv2 pruned it. */
  yIndex: number[];
  /** Per live channel: its position among the block input's live channels, or −1 when the residual is constant there. */
  rIndex: number[];
  /** Per live channel: the constants added there (conv2's BN(0) where it pruned the channel, plus a constant residual). */
  constants: number[];
  /** Stream channels that are constant after the block (dropped), with their value after the ReLU. */
  constantChannels: ConstantChannel[];
  /** The residual is subsampled by this (option-A shortcut), 1 when the block keeps the shape. */
  stride: number;
  /** Live channels of the block's output that conv2 writes (scatter-add) and that get a conv2 constant. */
  scatterAdd: number;
  conv2Constants: number;
}

export interface BlockPlan {
  /** `layer<stage>.<index>`. */
  name: string;
  /** 0-based stage. */
  stage: number;
  conv1: ConvPlan;
  conv2: ConvPlan;
  join: JoinPlan;
}

export interface HeadPlan {
  /** Width of the masked model's pooled features. */
  inFeatures: number;
  /** Live features, ascending: the compact classifier's inputs. */
  live: number[];
  /** Constant features: folded into the classifier's bias. */
  constantIn: ConstantChannel[];
  numClasses: number;
}

/** The plan as plain data (what toJSON writes and fromJSON reads). */
export interface CompactionPlanData {
  kind: 'cifar-resnet';
  depth: number;
  widths: number[];
  stem: ConvPlan;
  blocks: BlockPlan[];
  head: HeadPlan;
}

/** The host values of one eval-mode BN, for its response to a zero input. */
export interface BatchNormHost {
  weight: ArrayLike<number>;
  bias: ArrayLike<number>;
  runningMean: ArrayLike<number>;
  runningVar: ArrayLike<number>;
  eps: number;
}

/** BN(0) in eval mode, in float64: β − γ·μ/√(σ²+ε). */
function batchNormOfZero(bn: BatchNormHost, channel: number): number {
  return bn.bias[channel] - (bn.weight[channel] * bn.runningMean[channel]) / Math.sqrt(bn.runningVar[channel] + bn.eps);
}

const relu = (v: number) => Math.max(v, 0);

/** Per channel of a tensor: null = live, a number = that constant everywhere. */
type ChannelStates = (number | null)[];

function liveOf(states: ChannelStates): number[] {
  return states.flatMap((s, j) => (s === null ? [j] : []));
}

function constantsOf(states: ChannelStates): ConstantChannel[] {
  return states.flatMap((s, j) => (s === null ? [] : [{ channel: j, value: s }]));
}

export class CompactionPlan implements CompactionPlanData {
  readonly kind = 'cifar-resnet' as const;
  readonly depth: number;
  readonly widths: number[];
  readonly stem: ConvPlan;
  readonly blocks: BlockPlan[];
  readonly head: HeadPlan;

  constructor(data: CompactionPlanData) {
    if (data.kind !== 'cifar-resnet') throw new Error(`compaction plan: unknown kind ${JSON.stringify(data.kind)}`);
    this.depth = data.depth;
    this.widths = data.widths;
    this.stem = data.stem;
    this.blocks = data.blocks;
    this.head = data.head;
  }

  static fromJSON(data: unknown): CompactionPlan {
    const d = (typeof data === 'string' ? JSON.parse(data) : data) as CompactionPlanData;
    if (!d || typeof d !== 'object' || !Array.isArray(d.blocks) || !d.stem || !d.head) throw new Error('compaction plan: not a plan object');
    return new CompactionPlan(d);
  }

  toJSON(): CompactionPlanData {
    return { kind: this.kind, depth: this.depth, widths: this.widths, stem: this.stem, blocks: this.blocks, head: this.head };
  }

  /** Every conv plan in forward order. */
  convs(): ConvPlan[] {
    return [this.stem, ...this.blocks.flatMap((b) => [b.conv1, b.conv2])];
  }

  /** Kept filters per conv, by name (the input of flops.ts). */
  keptCounts(): Map<string, number> {
    return new Map(this.convs().map((c) => [c.conv, c.keptOut.length]));
  }

  /** Live channels of the stream entering each block (by block name) and of the pooled features ('fc'). */
  streamWidths(): Map<string, number> {
    const out = new Map<string, number>(this.blocks.map((b) => [b.name, b.conv1.keptIn.length]));
    out.set('fc', this.head.live.length);
    return out;
  }

  /** Whether compaction removes nothing (every filter kept). */
  get isIdentity(): boolean {
    return this.convs().every((c) => c.keptOut.length === c.outChannels && c.keptIn.length === c.inChannels);
  }

  /** The cascade, one line per trigger: `layer1.0.conv1 out 16→12 ⇒ layer1.0.bn1 16→12 ⇒ layer1.0.conv2 in 16→12`. */
  toString(): string {
    const lines: string[] = [];
    // Constant inputs of value 0 are simply dropped; the others become a bias map.
    const folded = (constants: ConstantChannel[]) => {
      const n = constants.filter((k) => k.value !== 0).length;
      return n ? ` (${n} constant → bias map)` : '';
    };
    const stream = (stage: number, live: number, width: number) =>
      `stream stage ${stage + 1}: ${live === width ? `${live} live` : `${live} live of ${width}, ${width - live} constant dropped`}`;
    const s = this.stem;
    lines.push(`${s.conv} out ${s.outChannels}→${s.keptOut.length} ⇒ ${s.bn} ${s.outChannels}→${s.keptOut.length} ⇒ ${stream(0, s.keptOut.length, s.outChannels)}`);
    for (const b of this.blocks) {
      const { conv1: c1, conv2: c2, join } = b;
      if (c1.keptIn.length < c1.inChannels) lines.push(`${c1.conv} in ${c1.inChannels}→${c1.keptIn.length}${folded(c1.constantIn)}`);
      lines.push(
        `${c1.conv} out ${c1.outChannels}→${c1.keptOut.length} ⇒ ${c1.bn} ${c1.outChannels}→${c1.keptOut.length} ⇒ ` +
          `${c2.conv} in ${c2.inChannels}→${c2.keptIn.length}${folded(c2.constantIn)}`,
      );
      lines.push(
        `${c2.conv} out ${c2.outChannels}→${c2.keptOut.length} ⇒ ${stream(b.stage, join.live.length, join.channels)} ` +
          `(scatter-add ${join.scatterAdd}, constants ${join.conv2Constants})`,
      );
    }
    const h = this.head;
    lines.push(`fc in ${h.inFeatures}→${h.live.length}${h.constantIn.length ? ` (${h.constantIn.length} constant → classifier bias)` : ''}`);
    return lines.join('\n');
  }
}

/**
 * Derives the plan from the masks (conv name → 0/1 per filter; a conv without a mask keeps everything) and
 * the BN values. Pure: compact.ts and the tests build plans from host data.
 */
export function planCompaction(
  model: CifarResNet,
  masks: ReadonlyMap<string, ArrayLike<number>>,
  batchNorms: ReadonlyMap<string, BatchNormHost>,
): CompactionPlan {
  const convs = describeConvs(model);
  const known = new Set(convs.map((c) => c.name));
  for (const name of masks.keys()) if (!known.has(name)) throw new Error(`compaction plan: a mask for '${name}', which the model does not have (convs: ${[...known].join(', ')})`);
  for (const c of convs) {
    if (c.role === 'projection') throw new Error(`compaction plan: ${c.name}: projection shortcuts are not supported (CIFAR ResNets use option A)`);
    if (c.conv.bias) throw new Error(`compaction plan: ${c.name} has a bias, so a zeroed filter would not give a zero output`);
  }
  const kept = (name: string, width: number): number[] => {
    const mask = masks.get(name);
    if (!mask) return Array.from({ length: width }, (_, j) => j);
    if (mask.length !== width) throw new Error(`compaction plan: the mask of ${name} has ${mask.length} entries, the conv ${width} filters`);
    const out = Array.from(mask, (m, j) => (m ? j : -1)).filter((j) => j >= 0);
    if (out.length === 0) throw new Error(`compaction plan: every filter of ${name} is pruned; a compact conv needs at least one`);
    return out;
  };
  const bnOf = (name: string): BatchNormHost => {
    const bn = batchNorms.get(name);
    if (!bn) throw new Error(`compaction plan: no BN values for ${name}`);
    return bn;
  };
  /** A conv fed by `input` (channel states), followed by BN `bnName` (and a ReLU when `withRelu`). */
  const convPlan = (name: string, bnName: string, conv: { inChannels: number; outChannels: number; stride: number; padding: number }, input: ChannelStates, withRelu: boolean): ConvPlan => {
    if (input.length !== conv.inChannels) throw new Error(`compaction plan: ${name} reads ${conv.inChannels} channels, its input has ${input.length}`);
    const keptOut = kept(name, conv.outChannels);
    const keptSet = new Set(keptOut);
    const bn = bnOf(bnName);
    const constantOut: ConstantChannel[] = [];
    for (let j = 0; j < conv.outChannels; j++) {
      if (keptSet.has(j)) continue;
      const v = batchNormOfZero(bn, j);
      constantOut.push({ channel: j, value: withRelu ? relu(v) : v });
    }
    return {
      conv: name, bn: bnName, inChannels: conv.inChannels, outChannels: conv.outChannels, stride: conv.stride, padding: conv.padding,
      relu: withRelu, keptIn: liveOf(input), constantIn: constantsOf(input), keptOut, constantOut,
    };
  };
  const outputStates = (c: ConvPlan): ChannelStates => {
    const states: ChannelStates = new Array(c.outChannels).fill(null);
    for (const { channel, value } of c.constantOut) states[channel] = value;
    return states;
  };

  const stem = convPlan('conv1', 'bn1', model.conv1, new Array(model.conv1.inChannels).fill(null), true);
  let stream = outputStates(stem);
  const blocks: BlockPlan[] = [];
  model.stages.forEach((stage, s) => {
    stage.blocks.forEach((block, i) => {
      const name = `layer${s + 1}.${i}`;
      const conv1 = convPlan(`${name}.conv1`, `${name}.bn1`, block.conv1, stream, true);
      const conv2 = convPlan(`${name}.conv2`, `${name}.bn2`, block.conv2, outputStates(conv1), false);
      const y = outputStates(conv2);
      const stride = block.downsample?.stride ?? 1;
      const channels = block.conv2.outChannels;
      // The residual: the block input, subsampled, with zero channels appended (option A) when the shape changes.
      const residual: ChannelStates = Array.from({ length: channels }, (_, j) => (j < stream.length ? stream[j] : 0));
      const inputLive = new Map(liveOf(stream).map((j, k) => [j, k]));
      const keptPosition = new Map(conv2.keptOut.map((j, k) => [j, k]));
      const join: JoinPlan = { channels, live: [], yIndex: [], rIndex: [], constants: [], constantChannels: [], stride, scatterAdd: 0, conv2Constants: 0 };
      const next: ChannelStates = [];
      for (let j = 0; j < channels; j++) {
        const yj = y[j];
        const rj = residual[j];
        if (yj !== null && rj !== null) {
          const value = relu(yj + rj);
          join.constantChannels.push({ channel: j, value });
          next.push(value);
          continue;
        }
        next.push(null);
        join.live.push(j);
        join.yIndex.push(keptPosition.get(j) ?? -1);
        join.rIndex.push(rj === null ? inputLive.get(j)! : -1);
        join.constants.push((yj ?? 0) + (rj ?? 0));
        if (yj === null) join.scatterAdd++;
        else join.conv2Constants++;
      }
      blocks.push({ name, stage: s, conv1, conv2, join });
      stream = next;
    });
  });
  const head: HeadPlan = { inFeatures: stream.length, live: liveOf(stream), constantIn: constantsOf(stream), numClasses: model.numClasses };
  return new CompactionPlan({ kind: 'cifar-resnet', depth: model.depth, widths: [...model.widths], stem, blocks, head });
}

/** Reads every BN's values back (one readback) for planCompaction. */
export async function readBatchNorms(model: CifarResNet): Promise<Map<string, BatchNormHost>> {
  const bns = model.namedModules().filter((e): e is [string, BatchNorm2d] => 'runningVar' in e[1]);
  const tensors: Tensor[] = bns.flatMap(([, bn]) => [bn.weight, bn.bias, bn.runningMean, bn.runningVar]);
  const raw = await gpu().downloadMany(tensors.map((t) => ({ buffer: t.buffer, bytes: t.size * 4 })));
  return new Map(
    bns.map(([name, bn], i) => [
      name,
      {
        weight: new Float32Array(raw[4 * i]),
        bias: new Float32Array(raw[4 * i + 1]),
        runningMean: new Float32Array(raw[4 * i + 2]),
        runningVar: new Float32Array(raw[4 * i + 3]),
        eps: bn.options.eps ?? 1e-5,
      },
    ]),
  );
}

/** The plan of a model on the GPU and its masks. */
export async function buildCompactionPlan(model: CifarResNet, masks: ReadonlyMap<string, ArrayLike<number>>): Promise<CompactionPlan> {
  return planCompaction(model, masks, await readBatchNorms(model));
}
