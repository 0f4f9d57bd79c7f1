/**
 * `export`: a training checkpoint's model (its masks applied, unless --unmasked), or a compact model written by
 * `compact`, as ONNX (eval mode), for ONNX Runtime and other runtimes.
 */
import { writeFileAtomic } from '../io/files.js';
import { ArgsError, parseArgs, type Args } from './args.js';
import { loadModelFile, outputReplacesProblem, readModelFile, type HostModelFile } from '../io/checkpoint-files.js';
import { masksAppliedLine } from '../prune/compact.js';
import { exportCifarResNet, exportCompactResNet, ONNX_OPSET } from '../io/onnx.js';

/** The checks of export's flags and file that need no GPU (the CLI runs them before starting it); the file is read here, once. */
export async function checkExportArgs(args: Args<'export'>): Promise<HostModelFile> {
  const problem = await outputReplacesProblem(args.out, args.checkpoint, ['training checkpoint', 'compact model']);
  if (problem) throw new ArgsError(`export: --out ${args.out}: ${problem}`);
  return readModelFile(args.checkpoint, { unmasked: args.unmasked });
}

export async function runExport(argv: readonly string[], checked?: HostModelFile): Promise<void> {
  const args = parseArgs('export', argv);
  const file = await loadModelFile(checked ?? (await checkExportArgs(args)), { unmasked: args.unmasked });
  const masks = file.kind === 'checkpoint' && masksAppliedLine(file.masks);
  if (masks) console.log(`${masks}; --unmasked keeps the weights as stored`);
  const onnx = file.kind === 'compact' ? await exportCompactResNet(file.model) : await exportCifarResNet(file.model.eval());
  const inputSize = file.kind === 'compact' ? file.model.inputSize : [32, 32];
  await writeFileAtomic(args.out, onnx);
  console.log(
    `wrote ${args.out}: ${file.name}, ${(onnx.length / 1024).toFixed(0)} KiB, ONNX opset ${ONNX_OPSET}, input 'images' [batch, 3, ${inputSize.join(', ')}], output 'logits'`,
  );
}
