/**
 * `export`: a training checkpoint's model, or a compact model written by `compact`, as ONNX (eval mode), for
 * ONNX Runtime and other runtimes.
 */
import { readFileChecked, writeFileAtomic } from '../io/files.js';
import { parseArgs } from './args.js';
import { decodeCheckpoint } from '../io/checkpoint.js';
import { cifarResNet, CIFAR_DEPTHS, type CifarResNetName } from '../models/resnet.js';
import { decodeCompactModel, isCompactModel } from '../prune/compact.js';
import { exportCifarResNet, exportCompactResNet } from '../io/onnx.js';

/** The ONNX bytes of the model in `bytes` (a training checkpoint or a compact model) and its input size. */
export async function onnxOf(bytes: Uint8Array, source: string): Promise<{ onnx: Uint8Array; inputSize: readonly [number, number]; what: string }> {
  const checkpoint = decodeCheckpoint(bytes, source);
  if (isCompactModel(checkpoint.meta)) {
    const model = decodeCompactModel(bytes, source);
    return { onnx: await exportCompactResNet(model), inputSize: model.inputSize, what: 'compact model' };
  }
  const name = (checkpoint.meta.config as { model?: string } | undefined)?.model as CifarResNetName | undefined;
  if (!name || !(name in CIFAR_DEPTHS)) {
    throw new Error(`${source}: neither a training checkpoint that names its CIFAR ResNet (written by train) nor a compact model (written by compact)`);
  }
  const model = cifarResNet(name);
  model.loadStateDict(checkpoint.model);
  return { onnx: await exportCifarResNet(model.eval()), inputSize: [32, 32], what: name };
}

export async function runExport(argv: readonly string[]): Promise<void> {
  const args = parseArgs('export', argv);
  const { onnx, inputSize, what } = await onnxOf(await readFileChecked(args.checkpoint, 'checkpoint'), args.checkpoint);
  await writeFileAtomic(args.out, onnx);
  console.log(
    `wrote ${args.out}: ${what}, ${(onnx.length / 1024).toFixed(0)} KiB, ONNX opset 17, input 'images' [batch, 3, ${inputSize.join(', ')}], output 'logits'`,
  );
}
