/**
 * Compaction: a masked CIFAR ResNet (zeroed filters) becomes a smaller dense CompactResNet whose eval-mode
 * logits equal the masked model's, following a CompactionPlan (prune/plan.ts):
 *  - every conv runs at its real width: kept filters × live input channels, copied with the GPU gather
 *    (ops/gather.ts indexSelect). Constant input channels become `input_bias` [C_out, H_out, W_out], the conv
 *    of a constant image of those channels: exact at the zero-padded border too. That ties the compact model
 *    to the input size it was built for (32×32 by default);
 *  - BNs keep their kept entries and stay eval-mode affine;
 *  - each block ends in residualJoin: conv2's kept outputs added into the live stream channels, with the
 *    constants of conv2's pruned channels and of constant residual channels, then the ReLU;
 *  - constant pooled features are folded into the classifier's bias (in float64).
 * The constants are frozen: the compact model is for inference (training its BNs would change them).
 */
import { Module } from '../nn/module.js';
import { BatchNorm2d, Conv2d, Linear, convBatchNorm } from '../nn/layers.js';
import { Tensor, scope } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { noGrad } from '../autograd/mode.js';
import { gpu } from '../gpu/encoder.js';
import { add, addRelu, fill } from '../ops/elementwise.js';
import { conv2d, conv2dWithBiasMap } from '../ops/conv2d.js';
import { indexSelect, residualJoin } from '../ops/gather.js';
import { globalAvgPool } from '../ops/pool.js';
import { applyFilterMask } from '../ops/mask.js';
import { checkpointToHost, decodeCheckpoint, encodeCheckpoint, type LoadedCheckpoint } from '../io/checkpoint.js';
import type { CifarResNet } from '../models/resnet.js';
import { CompactionPlan, type ConvPlan, type JoinPlan } from './plan.js';

/** Output size of a conv along one axis. */
function convOut(size: number, kernel: number, stride: number, padding: number): number {
  return Math.floor((size + 2 * padding - kernel) / stride) + 1;
}

/** Whether a conv's constant inputs contribute anything (all-zero constants need no bias map). */
function needsBiasMap(c: ConvPlan): boolean {
  return c.constantIn.some((k) => k.value !== 0);
}

/** A conv over the live input channels plus the bias map of its constant ones. */
export class CompactConv2d extends Conv2d {
  readonly inputBias: Tensor | null;

  constructor(readonly plan: ConvPlan, readonly outSize: readonly [number, number]) {
    super(plan.keptIn.length, plan.keptOut.length, 3, { stride: plan.stride, padding: plan.padding }, new Rng(0));
    this.inputBias = needsBiasMap(plan) ? this.registerBuffer('input_bias', fill([plan.keptOut.length, outSize[0], outSize[1]], 0)) : null;
  }

  override outputBias(x: Tensor): Tensor | null {
    if (!this.inputBias) return null;
    const { stride, padding } = this.plan;
    const out = [convOut(x.shape[2], 3, stride, padding), convOut(x.shape[3], 3, stride, padding)];
    if (out[0] !== this.outSize[0] || out[1] !== this.outSize[1]) {
      throw new Error(`${this.plan.conv}: the compact model was built for ${this.outSize.join('×')} outputs here, got ${out.join('×')} from ${x.describe()} (another input size?)`);
    }
    return this.inputBias;
  }

  override forward(x: Tensor): Tensor {
    const map = this.outputBias(x);
    return map ? conv2dWithBiasMap(x, this.weight, map, { stride: this.stride, padding: this.padding }) : super.forward(x);
  }
}

/** The end of a compact block: relu(y[yIndex] + residual[rIndex, ::s, ::s] + constants). */
export class ResidualJoin extends Module {
  readonly yIndex: Tensor;
  readonly rIndex: Tensor;
  readonly constants: Tensor;

  /** Whether the join is relu(y + residual) channel for channel (coupled masks), so the plain add serves. */
  readonly isPlainAdd: boolean;

  constructor(readonly plan: JoinPlan) {
    super();
    const n = plan.live.length;
    const { stride, yIndex, rIndex, constants } = plan;
    this.isPlainAdd = stride === 1 && yIndex.every((j, i) => j === i) && rIndex.every((j, i) => j === i) && constants.every((c) => c === 0);
    this.yIndex = this.registerBuffer('y_index', Tensor.fromArray(plan.yIndex, [n], 'i32'));
    this.rIndex = this.registerBuffer('r_index', Tensor.fromArray(plan.rIndex, [n], 'i32'));
    this.constants = this.registerBuffer('constants', Tensor.fromArray(plan.constants, [n]));
  }

  forward(): Tensor {
    throw new Error('ResidualJoin takes two inputs: call join(y, residual)');
  }


  join(y: Tensor, residual: Tensor): Tensor {
    const n = this.plan.live.length;
    if (this.isPlainAdd && y.shape[1] === n && residual.shape[1] === n) return addRelu(y, residual);
    return residualJoin(y, residual, { yIndex: this.yIndex, rIndex: this.rIndex, constants: this.constants, stride: this.plan.stride });
  }
}

export class CompactBlock extends Module {
  readonly conv1: CompactConv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: CompactConv2d;
  readonly bn2: BatchNorm2d;
  readonly join: ResidualJoin;

  constructor(plan: CompactionPlan['blocks'][number], inSize: readonly [number, number]) {
    super();
    const s = plan.conv1.stride;
    const size = [convOut(inSize[0], 3, s, plan.conv1.padding), convOut(inSize[1], 3, s, plan.conv1.padding)] as const;
    this.conv1 = this.registerModule('conv1', new CompactConv2d(plan.conv1, size));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(plan.conv1.keptOut.length, { relu: true }));
    this.conv2 = this.registerModule('conv2', new CompactConv2d(plan.conv2, size));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(plan.conv2.keptOut.length));
    this.join = this.registerModule('join', new ResidualJoin(plan.join));
  }

  forward(x: Tensor): Tensor {
    const y = convBatchNorm(this.conv2, this.bn2, convBatchNorm(this.conv1, this.bn1, x));
    return this.join.join(y, x);
  }
}

class CompactStage extends Module {
  constructor(readonly blocks: CompactBlock[]) {
    super();
    blocks.forEach((b, i) => this.registerModule(String(i), b));
  }

  forward(x: Tensor): Tensor {
    let h = x;
    for (const b of this.blocks) h = b.forward(h);
    return h;
  }
}

export interface CompactOptions {
  /** Input height and width the bias maps are computed for (default 32×32, CIFAR). */
  inputSize?: readonly [number, number];
}

/** The dense model a CompactionPlan describes; state-dict names follow the masked model's, plus the compaction buffers. */
export class CompactResNet extends Module {
  readonly conv1: CompactConv2d;
  readonly bn1: BatchNorm2d;
  readonly stages: CompactStage[] = [];
  readonly fc: Linear;
  readonly inputSize: readonly [number, number];

  constructor(readonly plan: CompactionPlan, options: CompactOptions = {}) {
    super();
    this.inputSize = options.inputSize ?? [32, 32];
    let size: readonly [number, number] = this.inputSize;
    const stem = plan.stem;
    size = [convOut(size[0], 3, stem.stride, stem.padding), convOut(size[1], 3, stem.stride, stem.padding)];
    this.conv1 = this.registerModule('conv1', new CompactConv2d(stem, size));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(stem.keptOut.length, { relu: true }));
    const stageCount = Math.max(...plan.blocks.map((b) => b.stage)) + 1;
    for (let s = 0; s < stageCount; s++) {
      const blocks: CompactBlock[] = [];
      for (const b of plan.blocks.filter((p) => p.stage === s)) {
        const block = new CompactBlock(b, size);
        size = block.conv1.outSize;
        blocks.push(block);
      }
      this.stages.push(this.registerModule(`layer${s + 1}`, new CompactStage(blocks)));
    }
    this.fc = this.registerModule('fc', new Linear(plan.head.live.length, plan.head.numClasses));
    this.nameTensors();
    this.eval();
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[2] !== this.inputSize[0] || x.shape[3] !== this.inputSize[1]) {
      throw new Error(`CompactResNet: built for [batch, 3, ${this.inputSize.join(', ')}] inputs, got ${x.describe()}`);
    }
    let h = convBatchNorm(this.conv1, this.bn1, x);
    for (const stage of this.stages) h = stage.forward(h);
    return this.fc.forward(globalAvgPool(h));
  }

  /** Number of parameters (convs, BN γ and β, classifier); the compaction buffers are not parameters. */
  parameterCount(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }
}

/** Copies `src` into the existing tensor `dst` (same size) in the recorded stream. */
function copyInto(dst: Tensor, src: Tensor): void {
  if (dst.size !== src.size) throw new Error(`compaction: cannot copy ${src.describe()} into ${dst.describe()}`);
  gpu().copy(src.buffer, 0, dst.buffer, 0, src.size * 4);
}

/** Builds the compact model of `masked` (whose pruned filters must be zero, see zeroMaskedFilters) following `plan`. */
export async function compactModel(masked: CifarResNet, plan: CompactionPlan, options: CompactOptions = {}): Promise<CompactResNet> {
  const compact = new CompactResNet(plan, options);
  const source = new Map(masked.namedModules());
  const target = new Map(compact.namedModules());
  const pairs: [ConvPlan, CompactConv2d][] = [[plan.stem, compact.conv1], ...plan.blocks.flatMap((b, i): [ConvPlan, CompactConv2d][] => {
    const block = compact.stages[b.stage].blocks[i - plan.blocks.findIndex((p) => p.stage === b.stage)];
    return [[b.conv1, block.conv1], [b.conv2, block.conv2]];
  })];
  const inSizes = new Map<string, readonly [number, number]>();
  let size: readonly [number, number] = compact.inputSize;
  for (const [c, cc] of pairs) {
    inSizes.set(c.conv, size);
    size = cc.outSize;
  }
  noGrad(() =>
    scope(() => {
      for (const [c, cc] of pairs) {
        const conv = source.get(c.conv) as Conv2d;
        const outIndex = Tensor.fromArray(c.keptOut, [c.keptOut.length], 'u32');
        const kept = indexSelect(conv.weight, 0, outIndex);
        copyInto(cc.weight, indexSelect(kept, 1, Tensor.fromArray(c.keptIn, [c.keptIn.length], 'u32')));
        if (cc.inputBias) {
          // The bias map is the conv of an image that holds the constants in their channels and 0 in the live ones.
          const [h, w] = inSizes.get(c.conv)!;
          const image = new Float32Array(c.inChannels * h * w);
          for (const { channel, value } of c.constantIn) image.fill(value, channel * h * w, (channel + 1) * h * w);
          copyInto(cc.inputBias, conv2d(Tensor.fromArray(image, [1, c.inChannels, h, w]), kept, null, { stride: c.stride, padding: c.padding }));
        }
        const bn = source.get(c.bn) as BatchNorm2d;
        const cbn = target.get(c.bn) as BatchNorm2d;
        for (const key of ['weight', 'bias', 'runningMean', 'runningVar'] as const) copyInto(cbn[key], indexSelect(bn[key], 0, outIndex));
        cbn.numBatchesTracked = bn.numBatchesTracked;
      }
      const live = plan.head.live;
      copyInto(compact.fc.weight, indexSelect(masked.fc.weight, 1, Tensor.fromArray(live, [live.length], 'u32')));
    }),
  );
  // The classifier's bias absorbs the constant features: b' = b + Σ_j W[:, j]·c_j, in float64.
  const [w, b] = await gpu().downloadMany([masked.fc.weight, masked.fc.bias!].map((t) => ({ buffer: t.buffer, bytes: t.size * 4 })));
  const weight = new Float32Array(w);
  const bias = Float64Array.from(new Float32Array(b));
  const { inFeatures, numClasses, constantIn } = plan.head;
  for (let k = 0; k < numClasses; k++) for (const { channel, value } of constantIn) bias[k] += weight[k * inFeatures + channel] * value;
  gpu().upload(compact.fc.bias!.buffer, Float32Array.from(bias));
  return compact;
}

/**
 * Zeroes the pruned filters of `model` as the masks say and returns how many non-zero weights that removed:
 * 0 for a checkpoint written right after masking, more for one written mid-epoch in soft mode (filters regrow).
 */
export async function zeroMaskedFilters(model: CifarResNet, masks: ReadonlyMap<string, Uint32Array>): Promise<number> {
  const convs = new Map(model.convs());
  const entries = [...masks].map(([name, mask]) => {
    const conv = convs.get(name);
    if (!conv) throw new Error(`a mask for '${name}', which the model does not have`);
    return { conv, mask };
  });
  const raw = await gpu().downloadMany(entries.map(({ conv }) => ({ buffer: conv.weight.buffer, bytes: conv.weight.size * 4 })));
  let nonZero = 0;
  entries.forEach(({ conv, mask }, i) => {
    const w = new Float32Array(raw[i]);
    const size = w.length / mask.length;
    for (let f = 0; f < mask.length; f++) if (!mask[f]) for (let k = f * size; k < (f + 1) * size; k++) if (w[k] !== 0) nonZero++;
  });
  noGrad(() =>
    scope(() => {
      for (const { conv, mask } of entries) applyFilterMask(conv.weight, Tensor.fromArray(mask, [mask.length], 'u32'));
    }),
  );
  return nonZero;
}

/** What applyMasks did with a training checkpoint's masks. */
export interface MasksApplied {
  convs: number;
  /** Filters the masks prune. */
  filters: number;
  /** Weights in those filters that were not zero before (soft pruning lets them regrow between maskings). */
  regrown: number;
}

/**
 * Zeroes the filters a training checkpoint's masks prune, as compaction does, so that the model evaluated,
 * exported or shown is the one compaction keeps; null when the checkpoint has no masks.
 */
export async function applyMasks(model: CifarResNet, masks: ReadonlyMap<string, Uint32Array>): Promise<MasksApplied | null> {
  if (masks.size === 0) return null;
  const regrown = await zeroMaskedFilters(model, masks);
  const filters = [...masks.values()].reduce((n, mask) => n + mask.filter((keep) => !keep).length, 0);
  return { convs: masks.size, filters, regrown };
}

/** A line on the masks applyMasks applied, or null when there were none. */
export function masksAppliedLine(masks: MasksApplied | null): string | null {
  if (!masks) return null;
  return (
    `masks applied: ${masks.filters} filters of ${masks.convs} convs zeroed, as compact zeroes them` +
    (masks.regrown > 0 ? ` (${masks.regrown} of their weights were not zero: soft pruning's regrowth since the last masking)` : '')
  );
}

/** A batch of images (and optionally labels) on the host. */
export interface HostImages {
  x: Float32Array;
  shape: readonly number[];
  y?: Uint32Array;
}

export interface EquivalenceReport {
  images: number;
  /** max |masked logit − compact logit| over every image and class. */
  maxAbsDiff: number;
  /** max |masked logit|: the scale the difference is measured against. */
  maxAbsLogit: number;
  /** Images whose predicted class differs. */
  predictionMismatches: number;
  predictionsEqual: boolean;
  /** Correct predictions of each model, when labels were given. */
  maskedCorrect: number;
  compactCorrect: number;
}

function argmaxRow(logits: Float32Array, row: number, classes: number): number {
  let best = 0;
  for (let k = 1; k < classes; k++) if (logits[row * classes + k] > logits[row * classes + best]) best = k;
  return best;
}

/** Runs both models in eval mode on the same batches and compares their logits and predictions. */
export async function checkEquivalence(masked: Module, compact: Module, batches: Iterable<HostImages>): Promise<EquivalenceReport> {
  const wasTraining = masked.training;
  masked.eval();
  compact.eval();
  const report: EquivalenceReport = { images: 0, maxAbsDiff: 0, maxAbsLogit: 0, predictionMismatches: 0, predictionsEqual: true, maskedCorrect: 0, compactCorrect: 0 };
  try {
    for (const batch of batches) {
      // Recorded without gradients, synchronously: noGrad must not stay on across the await.
      const outs = noGrad(() =>
        scope(() => {
          const x = Tensor.fromArray(batch.x, batch.shape);
          return [masked.forward(x), compact.forward(x)];
        }),
      );
      const classes = outs[0].shape[1];
      let raw: ArrayBuffer[];
      try {
        raw = await gpu().downloadMany(outs.map((t) => ({ buffer: t.buffer, bytes: t.size * 4 })));
      } finally {
        for (const t of outs) t.dispose();
      }
      const [a, b] = raw.map((r) => ({ data: new Float32Array(r), classes }));
      const n = batch.shape[0];
      for (let i = 0; i < a.data.length; i++) {
        report.maxAbsDiff = Math.max(report.maxAbsDiff, Math.abs(a.data[i] - b.data[i]));
        report.maxAbsLogit = Math.max(report.maxAbsLogit, Math.abs(a.data[i]));
      }
      if (Number.isNaN(report.maxAbsDiff) || a.data.some((v, i) => Number.isNaN(v) !== Number.isNaN(b.data[i]))) report.maxAbsDiff = NaN;
      for (let row = 0; row < n; row++) {
        const pa = argmaxRow(a.data, row, a.classes);
        const pb = argmaxRow(b.data, row, b.classes);
        if (pa !== pb) report.predictionMismatches++;
        if (batch.y) {
          if (pa === batch.y[row]) report.maskedCorrect++;
          if (pb === batch.y[row]) report.compactCorrect++;
        }
      }
      report.images += n;
    }
  } finally {
    masked.train(wasTraining);
  }
  report.predictionsEqual = report.predictionMismatches === 0;
  return report;
}

/**
 * The largest |Δlogit| the check accepts, as a fraction of the logits' scale (at least 10): 1e-3 for ordinary
 * logits, more for large ones, whose float32 sums differ by more when compaction reorders them.
 */
export const MAX_RELATIVE_LOGIT_DIFFERENCE = 1e-4;

/** Why a report fails the check, or null when it passes. */
export function equivalenceProblem(report: EquivalenceReport, relativeTolerance = MAX_RELATIVE_LOGIT_DIFFERENCE): string | null {
  if (report.images === 0) return 'no images were checked';
  const tolerance = relativeTolerance * Math.max(10, report.maxAbsLogit);
  if (!(report.maxAbsDiff <= tolerance)) {
    return `max |Δlogit| = ${report.maxAbsDiff} exceeds ${tolerance.toPrecision(3)} (${relativeTolerance} of the logits' scale ${report.maxAbsLogit.toPrecision(3)}, taken as at least 10)`;
  }
  if (!report.predictionsEqual) return `${report.predictionMismatches} of ${report.images} predictions differ`;
  return null;
}

export const COMPACT_FORMAT = 'sfp-gpu compact cifar-resnet';

/** The compact model's state dict as safetensors bytes, with the plan (JSON) and input size in the metadata. */
export async function encodeCompactModel(model: CompactResNet, meta: Record<string, unknown> = {}, source = 'compact model'): Promise<Uint8Array> {
  const state = {
    model: model.stateDict(),
    meta: { ...meta, format: COMPACT_FORMAT, inputSize: [...model.inputSize], parameters: model.parameterCount(), plan: model.plan.toJSON() },
  };
  return encodeCheckpoint(await checkpointToHost(state, source), source);
}

/** Whether a checkpoint's metadata marks a compact model (written by encodeCompactModel), not a training checkpoint. */
export function isCompactModel(meta: Record<string, unknown>): boolean {
  return meta.format === COMPACT_FORMAT;
}

/** A CompactResNet from bytes written by encodeCompactModel; `source` names them in errors. */
export function decodeCompactModel(bytes: Uint8Array, source = 'compact model'): CompactResNet {
  return compactModelOf(decodeCheckpoint(bytes, source), source);
}

/** A CompactResNet from those bytes already decoded. */
export function compactModelOf(checkpoint: LoadedCheckpoint, source = 'compact model'): CompactResNet {
  if (checkpoint.meta.format !== COMPACT_FORMAT) throw new Error(`${source}: not a compact model (format ${JSON.stringify(checkpoint.meta.format)})`);
  const inputSize = checkpoint.meta.inputSize as [number, number];
  const model = new CompactResNet(CompactionPlan.fromJSON(checkpoint.meta.plan), { inputSize });
  try {
    checkJoinsMatchPlan(model, checkpoint, source);
    model.loadStateDict(checkpoint.model);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return model;
}

/**
 * A join's index and constant tensors are a copy of its plan: the plan decides the graph (the plain add, the ONNX
 * export) and the tensors what the GPU reads, so a file where they disagree (edited, or corrupt) is refused.
 */
function checkJoinsMatchPlan(model: CompactResNet, checkpoint: LoadedCheckpoint, source: string): void {
  model.stages.forEach((stage, s) =>
    stage.blocks.forEach((block, i) => {
      const { yIndex, rIndex, constants } = block.join.plan;
      const expected = { y_index: yIndex, r_index: rIndex, constants: constants.map(Math.fround) };
      for (const [key, values] of Object.entries(expected)) {
        const name = `layer${s + 1}.${i}.join.${key}`;
        const stored = checkpoint.model.get(name);
        if (stored && (stored.data.length !== values.length || values.some((v, k) => stored.data[k] !== v))) {
          throw new Error(`${source}: tensor "${name}" disagrees with the compaction plan in the file's metadata (an edited or corrupt file): compact the checkpoint again`);
        }
      }
    }),
  );
}
