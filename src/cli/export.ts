/**
 * `export`: a training checkpoint's model (its masks applied, unless --unmasked), or a compact model written by
 * `compact`, as ONNX (eval mode), for ONNX Runtime and other runtimes.
 */
import { outputFileProblem, writeFileAtomic } from '../io/files.js';
import { ArgsError, parseArgs } from './args.js';
import { loadModelFile, masksAppliedLine } from '../io/checkpoint-files.js';
import { exportCifarResNet, exportCompactResNet } from '../io/onnx.js';

export async function runExport(argv: readonly string[]): Promise<void> {
  const args = parseArgs('export', argv);
  const problem = await outputFileProblem(args.out);
  if (problem) throw new ArgsError(`export: --out ${args.out}: ${problem}`);
  const file = await loadModelFile(args.checkpoint, { unmasked: args.unmasked });
  const masks = file.kind === 'checkpoint' && masksAppliedLine(file.masks);
  if (masks) console.log(masks);
  const onnx = file.kind === 'compact' ? await exportCompactResNet(file.model) : await exportCifarResNet(file.model.eval());
  const inputSize = file.kind === 'compact' ? file.model.inputSize : [32, 32];
  await writeFileAtomic(args.out, onnx);
  console.log(
    `wrote ${args.out}: ${file.name}, ${(onnx.length / 1024).toFixed(0)} KiB, ONNX opset 17, input 'images' [batch, 3, ${inputSize.join(', ')}], output 'logits'`,
  );
}
