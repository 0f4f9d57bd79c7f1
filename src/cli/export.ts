/** `export`: a training checkpoint's model as ONNX (eval mode), for ONNX Runtime and other runtimes. */
import { writeFileAtomic } from '../io/files.js';
import { parseArgs } from './args.js';
import { loadCheckpoint } from '../io/checkpoint-files.js';
import { cifarResNet, CIFAR_DEPTHS, type CifarResNetName } from '../models/resnet.js';
import { exportCifarResNet } from '../io/onnx.js';

export async function runExport(argv: readonly string[]): Promise<void> {
  const args = parseArgs('export', argv);
  const checkpoint = await loadCheckpoint(args.checkpoint);
  const name = (checkpoint.meta.config as { model?: string } | undefined)?.model as CifarResNetName | undefined;
  if (!name || !(name in CIFAR_DEPTHS)) throw new Error(`${args.checkpoint}: the checkpoint does not say which CIFAR ResNet it holds`);
  const model = cifarResNet(name);
  model.loadStateDict(checkpoint.model);
  const bytes = await exportCifarResNet(model.eval());
  await writeFileAtomic(args.out, bytes);
  console.log(`wrote ${args.out} (${(bytes.length / 1024).toFixed(0)} KiB, ONNX opset 17, input 'images' [batch, 3, 32, 32], output 'logits')`);
}
