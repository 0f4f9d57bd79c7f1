/**
 * `pipeline` (what `npm start` runs): a short SFP training of a CIFAR ResNet, compaction with the equivalence
 * check (the compact model also written as ONNX), then the speedup benchmark of the compact model against the
 * masked one. It calls the same functions
 * as the `train`, `compact` and `bench` commands and prints where each result went.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs, ArgsError, type Args } from './args.js';
import { terminalSink } from './terminal.js';
import { trainModel } from './train.js';
import { compactCheckpoint } from './compact.js';
import { benchPairs, evenRepeats, writeReport, type ReportFiles } from './bench.js';
import { loadDataSplits } from '../data/node-files.js';
import { cifarPair } from '../bench/models.js';
import { exportCompactResNet } from '../io/onnx.js';
import { outputFolderProblem, writeFileAtomic } from '../io/files.js';
import { gpu } from '../gpu/encoder.js';

export interface PipelineResult {
  checkpoint: string;
  metrics: string;
  compact: string;
  /** The compact model as ONNX, for ONNX Runtime. */
  onnx: string;
  plan: string;
  bench: ReportFiles;
  seconds: number;
}

/** Marks a folder as a pipeline's (written before its training), so the next pipeline run may replace what is in it. */
const PIPELINE_FILE = 'pipeline.json';

/** The checks of the pipeline's flags that need no GPU (the CLI runs them before starting it; the benchmark's before the training). */
export async function checkPipelineArgs(args: Args<'pipeline'>): Promise<void> {
  const outProblem = await outputFolderProblem(args.out);
  if (outProblem) throw new ArgsError(`pipeline: --out ${outProblem}`);
  evenRepeats('pipeline', 'repeats', args.repeats);
  // Each pipeline run replaces what an earlier one left in its folder, and only that: files of anything else stay.
  const entries = await readdir(args.out).catch(() => [] as string[]);
  if (entries.length && !entries.includes(PIPELINE_FILE)) {
    const shown = entries.slice(0, 4).join(', ') + (entries.length > 4 ? ', …' : '');
    throw new ArgsError(
      `pipeline: --out ${args.out} holds files no pipeline wrote (${shown}; no ${PIPELINE_FILE}), which a pipeline run would replace: ` +
        'give another --out (a new or empty folder), or delete that one',
    );
  }
}

export async function runPipeline(argv: readonly string[]): Promise<PipelineResult> {
  const args = parseArgs('pipeline', argv);
  await checkPipelineArgs(args);
  const sink = terminalSink();
  const started = performance.now();
  const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`;
  const data = await loadDataSplits({ data: args.data });
  if (data.kind === 'synthetic') sink.line('pipeline: CIFAR-10 was not found, so every step below runs on the synthetic set (accuracies mean little; timings do not depend on it)');

  await mkdir(args.out, { recursive: true });
  await writeFile(join(args.out, PIPELINE_FILE), JSON.stringify({ command: 'pipeline', argv, startedAt: new Date().toISOString() }, null, 1) + '\n');

  // 1. SFP training, with the train command's own flag table (so its checks and defaults apply).
  const trainDir = join(args.out, 'train');
  const trainArgs = parseArgs('train', [
    '--model', args.model,
    '--epochs', String(args.epochs),
    '--batch-size', String(args.batchSize),
    '--lr', String(args.lr),
    '--schedule', 'cosine',
    '--warmup-epochs', '0',
    '--sfp-rate', String(args.sfpRate),
    '--max-steps', String(args.maxSteps),
    '--checkpoint-every', '0',
    '--seed', String(args.seed),
    '--out', trainDir,
  ]);
  sink.line(`[1/3] SFP training (${elapsed()})`);
  const run = await trainModel(trainArgs, { sink, data, replaceRun: true }); // each pipeline run starts afresh in its folder
  try {
    if (run.pruner && run.trainer.step > 0) {
      // Stopped inside an epoch: soft pruning has let the zeroed filters regrow since the last masking. Mask
      // once more, as SFP does after the last epoch, so the checkpoint holds the masks of the final weights.
      const masks = await run.pruner.computeMasks(run.trainer.epoch + 1, args.epochs);
      run.pruner.apply(masks, run.optimizer);
      run.trainer.extra.masks = masks.toJSON();
      await run.trainer.checkpoint();
      sink.line(`stopped after ${args.maxSteps} steps inside epoch ${run.trainer.epoch + 1}: masked again as after a last epoch, checkpoint rewritten`);
    }
  } finally {
    // The next steps read the checkpoint: training's model, momentum and pooled batch-sized buffers go back.
    run.dispose();
    gpu().releasePooledMemory();
  }

  // 2. Compaction and the equivalence check on the test set.
  sink.line(`[2/3] compaction (${elapsed()})`);
  const compactFile = join(args.out, 'compact.safetensors');
  const compacted = await compactCheckpoint(
    parseArgs('compact', ['--checkpoint', run.checkpoint, '--out', compactFile, '--check-images', String(args.checkImages)]),
    { sink, data },
  );
  const planFile = join(args.out, 'plan.json');
  await writeFile(planFile, JSON.stringify(compacted.plan.toJSON(), null, 1) + '\n');
  await writeFile(join(args.out, 'plan.txt'), compacted.plan.toString() + '\n');
  const onnxFile = join(args.out, 'compact.onnx');
  await writeFileAtomic(onnxFile, await exportCompactResNet(compacted.compact));

  // 3. Real vs theoretical speedup of the compact model over the masked one.
  sink.line(`[3/3] speedup benchmark (${elapsed()})`);
  const { report: check } = compacted;
  const note =
    `equivalence on ${check.images} ${data.kind} test images: max |Δlogit| ${check.maxAbsDiff.toExponential(2)}, ` +
    `${check.predictionMismatches} predictions differ`;
  const report = await benchPairs(
    [async () => cifarPair(trainArgs.model, `SFP-trained ${run.checkpoint} (${data.kind}), compacted to ${compactFile}`, compacted.masked, compacted.compact, [note])],
    [{ batchSizes: args.batchSizes, repeats: args.repeats, targetMs: args.targetMs, seed: args.seed }],
    sink,
  );
  const bench = await writeReport(report, join(args.out, 'bench'));
  const seconds = (performance.now() - started) / 1000;
  const result: PipelineResult = { checkpoint: run.checkpoint, metrics: run.metrics, compact: compactFile, onnx: onnxFile, plan: planFile, bench, seconds };
  sink.line(
    [
      `pipeline finished in ${seconds.toFixed(0)} s:`,
      `  training checkpoint  ${run.checkpoint}`,
      `  training metrics     ${run.metrics}`,
      `  compact model        ${compactFile} (plan: ${planFile}, ${join(args.out, 'plan.txt')})`,
      `  compact model, ONNX  ${onnxFile}`,
      `  speedup JSON         ${bench.json}`,
      `  speedup table        ${bench.markdown}`,
      `  speedup chart        ${bench.svg}`,
    ].join('\n'),
  );
  return result;
}
