/**
 * `export`: a training checkpoint's model (its masks applied, unless --unmasked), or a compact model written by
 * `compact`, as ONNX (eval mode), for ONNX Runtime and other runtimes.
 */
import { writeFileAtomic } from '../io/files.js';
import { ArgsError, parseArgs, type Args } from './args.js';
import { loadModelFile, outputReplacesProblem } from '../io/checkpoint-files.js';
import { masksAppliedLine } from '../prune/compact.js';
import { exportCifarResNet, exportCompactResNet, ONNX_OPSET } from '../io/onnx.js';

/** The checks of export's flags that need no GPU (the CLI runs them before starting it). */
export async function checkExportArgs(args: Args<'export'>): Promise<void> {
  const problem = await outputReplacesProblem(args.out, args.checkpoint, ['training checkpoint', 'compact model']);
  if (problem) throw new ArgsError(`export: --out ${args.out}: ${problem}`);
}

export async function runExport(argv: readonly string[]): Promise<void> {
  const args = parseArgs('export', argv);
  await checkExportArgs(args);
  const file = await loadModelFile(args.checkpoint, { unmasked: args.unmasked });
  const masks = file.kind === 'checkpoint' && masksAppliedLine(file.masks);
  if (masks) console.log(`${masks}; --unmasked keeps the weights as stored`);
  const onnx = file.kind === 'compact' ? await exportCompactResNet(file.model) : await exportCifarResNet(file.model.eval());
  const inputSize = file.kind === 'compact' ? file.model.inputSize : [32, 32];
  await writeFileAtomic(args.out, onnx);
  console.log(
    `wrote ${args.out}: ${file.name}, ${(onnx.length / 1024).toFixed(0)} KiB, ONNX opset ${ONNX_OPSET}, input 'images' [batch, 3, ${inputSize.join(', ')}], output 'logits'`,
  );
}
