/**
 * ONNX export (opset 17): a small graph builder over protobufjs (the encoding is the library's; the
 * schema subset is in onnx-schema.ts), the CIFAR ResNet in eval mode (Conv, BatchNormalization, Relu, the
 * option-A shortcut as Slice (stride 2) + Pad (zero channels), Add, GlobalAveragePool, Flatten, Gemm) and
 * the compact model that compaction builds from it (the same ops, plus Add of each conv's bias map and, at
 * each block's end, Gather of the channels its join reads). The batch dimension is symbolic.
 */
import protobuf from 'protobufjs';
import { onnxSchema } from './onnx-schema.js';
import { gpu } from '../gpu/encoder.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Module } from '../nn/module.js';
import { CifarResNet, type BasicBlock } from '../models/resnet.js';
import type { BatchNorm2d, Conv2d } from '../nn/layers.js';
import type { CompactConv2d, CompactResNet, ResidualJoin } from '../prune/compact.js';
import { VERSION } from '../version.js';

const root = protobuf.Root.fromJSON(onnxSchema as unknown as protobuf.INamespace);
/** onnx.ModelProto, to write models (and to read them back in tests). */
export const ModelProto = root.lookupType('onnx.ModelProto');

export const ONNX_OPSET = 17;
const FLOAT = 1;
const INT64 = 7;
const AttributeType = { FLOAT: 1, INT: 2, FLOATS: 6, INTS: 7, STRING: 3 } as const;

export type Attribute = number | readonly number[] | { float: number } | { string: string };

interface TensorProtoInit {
  name: string;
  dims: number[];
  dataType: number;
  rawData: Uint8Array;
}

/** Collects nodes and initializers, naming intermediate values v0, v1, ... */
export class OnnxGraph {
  private readonly nodes: object[] = [];
  private readonly initializers: TensorProtoInit[] = [];
  private counter = 0;

  constructor(readonly name: string) {}

  /** A float32 constant (weights), by name. */
  floats(name: string, data: Float32Array, dims: readonly number[]): string {
    const count = dims.reduce((n, d) => n * d, 1);
    if (data.length !== count) throw new Error(`ONNX export: initializer ${name} holds ${data.length} values, but its dims [${dims.join(', ')}] need ${count}`);
    this.initializers.push({ name, dims: [...dims], dataType: FLOAT, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
    return name;
  }

  /** An int64 constant (shapes, slice bounds), by name. */
  int64s(name: string, values: readonly number[]): string {
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.initializers.push({ name, dims: [values.length], dataType: INT64, rawData: new Uint8Array(data.buffer) });
    return name;
  }

  /** Adds a node; returns its output names (generated, or the names given). */
  node(opType: string, inputs: readonly string[], attributes: Record<string, Attribute> = {}, outputs: number | readonly string[] = 1): string[] {
    const names = typeof outputs === 'number' ? Array.from({ length: outputs }, () => `v${this.counter++}`) : [...outputs];
    this.nodes.push({
      opType,
      name: `${opType}_${this.counter}`,
      input: [...inputs],
      output: names,
      attribute: Object.entries(attributes).map(([name, value]) => attribute(name, value)),
    });
    return names;
  }

  /** One-output node. */
  op(opType: string, inputs: readonly string[], attributes: Record<string, Attribute> = {}): string {
    return this.node(opType, inputs, attributes)[0];
  }

  encode(options: {
    input: { name: string; shape: readonly (number | string)[] };
    output: { name: string; shape: readonly (number | string)[] };
    docString?: string;
    metadata?: Record<string, string>;
  }): Uint8Array {
    const valueInfo = (v: { name: string; shape: readonly (number | string)[] }) => ({
      name: v.name,
      type: { tensorType: { elemType: FLOAT, shape: { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
    });
    const message = ModelProto.fromObject({
      irVersion: 8,
      opsetImport: [{ domain: '', version: ONNX_OPSET }],
      producerName: 'sfp-gpu',
      producerVersion: VERSION,
      docString: options.docString ?? '',
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: [valueInfo(options.input)],
        output: [valueInfo(options.output)],
      },
      metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
    });
    return ModelProto.encode(message).finish();
  }
}

function attribute(name: string, value: Attribute): object {
  if (typeof value === 'number') return { name, type: AttributeType.INT, i: value };
  if (Array.isArray(value)) return { name, type: AttributeType.INTS, ints: value };
  if ('float' in (value as object)) return { name, type: AttributeType.FLOAT, f: (value as { float: number }).float };
  return { name, type: AttributeType.STRING, s: new TextEncoder().encode((value as { string: string }).string) };
}

/**
 * Reads every float parameter and buffer of a module back in one batch, by state-dict name. Integer buffers
 * (a compact join's channel indices) are left out: the emitters take those from the model's plan.
 */
export async function hostWeights(model: Module): Promise<Map<string, Float32Array>> {
  const entries = ([...model.namedParameters(), ...model.namedBuffers()] as [string, Tensor][]).filter(([, t]) => t.dtype === 'f32');
  const raw = await gpu().downloadMany(entries.map(([, t]) => ({ buffer: t.buffer, bytes: t.size * 4 })));
  return new Map(entries.map(([name], i) => [name, new Float32Array(raw[i])]));
}

/** Emitters for the layers the ResNets share; they read weights from a host state dict. */
export class LayerEmitter {
  constructor(
    readonly graph: OnnxGraph,
    readonly weights: ReadonlyMap<string, Float32Array>,
  ) {}

  private w(name: string): Float32Array {
    const data = this.weights.get(name);
    if (!data) throw new Error(`ONNX export: no weight '${name}'`);
    return data;
  }

  conv(x: string, name: string, conv: Conv2d): string {
    const inputs = [x, this.graph.floats(`${name}.weight`, this.w(`${name}.weight`), conv.weight.shape)];
    if (conv.bias) inputs.push(this.graph.floats(`${name}.bias`, this.w(`${name}.bias`), conv.bias.shape));
    const k = conv.kernelSize;
    const p = conv.padding;
    return this.graph.op('Conv', inputs, { kernel_shape: [k, k], strides: [conv.stride, conv.stride], pads: [p, p, p, p] });
  }

  batchNorm(x: string, name: string, bn: BatchNorm2d): string {
    const c = [bn.numFeatures];
    const y = this.graph.op(
      'BatchNormalization',
      ['weight', 'bias', 'running_mean', 'running_var'].map((p) => this.graph.floats(`${name}.${p}`, this.w(`${name}.${p}`), c)).reduce((a, v) => [...a, v], [x]),
      { epsilon: { float: bn.options.eps ?? 1e-5 } },
    );
    return bn.options.relu ? this.graph.op('Relu', [y]) : y;
  }

  /** Option A: x[:, :, ::s, ::s], then zero channels appended up to outChannels. */
  shortcutA(x: string, name: string, inChannels: number, outChannels: number, stride: number): string {
    const g = this.graph;
    const sliced = this.subsample(x, name, stride);
    return g.op('Pad', [sliced, g.int64s(`${name}.pads`, [0, 0, 0, 0, 0, outChannels - inChannels, 0, 0])], { mode: { string: 'constant' } });
  }

  /** A compact conv: the conv of the live channels, plus its bias map (the constant channels' share) if it has one. */
  compactConv(x: string, name: string, conv: CompactConv2d): string {
    const y = this.conv(x, name, conv);
    if (!conv.inputBias) return y;
    return this.graph.op('Add', [y, this.graph.floats(`${name}.input_bias`, this.w(`${name}.input_bias`), conv.inputBias.shape)]);
  }

  /**
   * A compact block's end, relu(y[yIndex] + residual[rIndex, ::s, ::s] + constants): each term is a Gather of
   * channels (an index of −1 reads a zero channel appended by Pad), left out where it would be the identity.
   */
  residualJoin(y: string, residual: string, name: string, join: ResidualJoin, yChannels: number, residualChannels: number): string {
    const g = this.graph;
    const { yIndex, rIndex, constants, stride } = join.plan;
    const r = stride === 1 ? residual : this.subsample(residual, `${name}.residual`, stride);
    const gather = (x: string, index: readonly number[], channels: number, label: string): string | null => {
      if (index.every((j) => j < 0)) return null;
      if (index.length === channels && index.every((j, i) => j === i)) return x;
      const padded = index.some((j) => j < 0) ? g.op('Pad', [x, g.int64s(`${label}.pads`, [0, 0, 0, 0, 0, 1, 0, 0])], { mode: { string: 'constant' } }) : x;
      return g.op('Gather', [padded, g.int64s(`${label}.index`, index.map((j) => (j < 0 ? channels : j)))], { axis: 1 });
    };
    const terms = [gather(y, yIndex, yChannels, `${name}.y`), gather(r, rIndex, residualChannels, `${name}.r`)].filter((t): t is string => t !== null);
    if (constants.some((c) => c !== 0)) terms.push(g.floats(`${name}.constants`, Float32Array.from(constants), [constants.length, 1, 1]));
    if (terms.length === 0) throw new Error(`ONNX export: the join ${name} reads no channel and adds no constant`);
    return g.op('Relu', [terms.reduce((sum, t) => g.op('Add', [sum, t]))]);
  }

  /** x[:, :, ::s, ::s]. */
  private subsample(x: string, name: string, stride: number): string {
    const g = this.graph;
    return g.op('Slice', [
      x,
      g.int64s(`${name}.starts`, [0, 0]),
      g.int64s(`${name}.ends`, [2 ** 31 - 1, 2 ** 31 - 1]),
      g.int64s(`${name}.axes`, [2, 3]),
      g.int64s(`${name}.steps`, [stride, stride]),
    ]);
  }

  linear(x: string, name: string, outFeatures: number, inFeatures: number): string {
    return this.graph.op('Gemm', [x, this.graph.floats(`${name}.weight`, this.w(`${name}.weight`), [outFeatures, inFeatures]), this.graph.floats(`${name}.bias`, this.w(`${name}.bias`), [outFeatures])], {
      transB: 1,
    });
  }
}

/** Average pool, flatten and the classifier, ending in the graph output `logits`; then the encoded model. */
function finishClassifier(
  e: LayerEmitter,
  h: string,
  head: { numClasses: number; features: number; inputSize: readonly [number, number]; docString: string },
): Uint8Array {
  const pooled = e.graph.op('Flatten', [e.graph.op('GlobalAveragePool', [h])], { axis: 1 });
  const logits = e.linear(pooled, 'fc', head.numClasses, head.features);
  const [output] = e.graph.node('Identity', [logits], {}, ['logits']);
  return e.graph.encode({
    input: { name: 'images', shape: ['batch', 3, ...head.inputSize] },
    output: { name: output, shape: ['batch', head.numClasses] },
    docString: head.docString,
  });
}

/** The CIFAR ResNet in eval mode as an ONNX model: input `images` [batch, 3, 32, 32], output `logits` [batch, classes]. */
export async function exportCifarResNet(model: CifarResNet): Promise<Uint8Array> {
  const graph = new OnnxGraph(`resnet${model.depth}`);
  const e = new LayerEmitter(graph, await hostWeights(model));
  let h = e.batchNorm(e.conv('images', 'conv1', model.conv1), 'bn1', model.bn1);
  model.stages.forEach((stage, s) => {
    stage.blocks.forEach((block: BasicBlock, i) => {
      const prefix = `layer${s + 1}.${i}`;
      const a = e.batchNorm(e.conv(h, `${prefix}.conv1`, block.conv1), `${prefix}.bn1`, block.bn1);
      const b = e.batchNorm(e.conv(a, `${prefix}.conv2`, block.conv2), `${prefix}.bn2`, block.bn2);
      const residual = block.downsample ? e.shortcutA(h, `${prefix}.shortcut`, block.conv1.inChannels, block.downsample.outChannels, block.downsample.stride) : h;
      h = graph.op('Relu', [graph.op('Add', [b, residual])]);
    });
  });
  return finishClassifier(e, h, {
    numClasses: model.numClasses,
    features: model.widths[model.widths.length - 1],
    inputSize: [32, 32],
    docString: `CIFAR ResNet-${model.depth} (option-A shortcuts), eval mode`,
  });
}

/**
 * The compact model (prune/compact.ts) as an ONNX model: input `images` [batch, 3, H, W] at the input size it
 * was built for (its bias maps hold that size), output `logits` [batch, classes].
 */
export async function exportCompactResNet(model: CompactResNet): Promise<Uint8Array> {
  const graph = new OnnxGraph('compact-resnet');
  const e = new LayerEmitter(graph, await hostWeights(model));
  let h = e.batchNorm(e.compactConv('images', 'conv1', model.conv1), 'bn1', model.bn1);
  model.stages.forEach((stage, s) => {
    stage.blocks.forEach((block, i) => {
      const prefix = `layer${s + 1}.${i}`;
      const a = e.batchNorm(e.compactConv(h, `${prefix}.conv1`, block.conv1), `${prefix}.bn1`, block.bn1);
      const b = e.batchNorm(e.compactConv(a, `${prefix}.conv2`, block.conv2), `${prefix}.bn2`, block.bn2);
      h = e.residualJoin(b, h, `${prefix}.join`, block.join, block.conv2.outChannels, block.conv1.inChannels);
    });
  });
  const { head } = model.plan;
  return finishClassifier(e, h, {
    numClasses: head.numClasses,
    features: head.live.length,
    inputSize: model.inputSize,
    docString: `compact CIFAR ResNet (${model.parameterCount()} parameters), eval mode, for ${model.inputSize.join('×')} inputs`,
  });
}
