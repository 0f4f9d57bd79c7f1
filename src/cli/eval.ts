/** `eval`: the test-set accuracy and loss of a training checkpoint's model or of a compact model. */
import { parseArgs, type Args } from './args.js';
import { loadModelFile, readModelFile, type HostModelFile } from '../io/checkpoint-files.js';
import { masksAppliedLine } from '../prune/compact.js';
import { loadDataSplits, type DataSplits } from '../data/node-files.js';
import { SGD } from '../optim/sgd.js';
import { Trainer, type EvalResult } from '../train/trainer.js';
import { LoaderSource } from '../train/sources.js';
import { LrSchedule } from '../optim/schedule.js';
import { consoleSink, type ProgressSink } from '../train/progress.js';

/**
 * The test-set accuracy and loss of the model in `path` (either kind of file; a checkpoint with its masks applied
 * unless `unmasked`), and what it held. The data comes
 * after the model is read (`data` may be a loader), so a wrong path fails before the data set is loaded. A model
 * whose outputs are not finite (a diverged run) is an error, not a score.
 */
export async function evaluateFile(
  source: string | HostModelFile,
  data: DataSplits | (() => Promise<DataSplits>),
  batchSize: number,
  sink: ProgressSink = consoleSink,
  options: { unmasked?: boolean } = {},
): Promise<EvalResult & { name: string; data: DataSplits }> {
  const path = typeof source === 'string' ? source : source.path;
  const file = await loadModelFile(source, options);
  const { model, name } = file;
  let trainer: Trainer | null = null;
  try {
    const masks = file.kind === 'checkpoint' && masksAppliedLine(file.masks);
    if (masks) sink.line(`${masks}; --unmasked keeps the weights as stored`);
    const splits = typeof data === 'function' ? await data() : data;
    const test = new LoaderSource(splits.test, { batchSize, train: false });
    trainer = new Trainer(model, new SGD([], { lr: 0 }), test, test, { epochs: 1, schedule: new LrSchedule({ kind: 'constant', lr: 1, epochs: 1 }) }, null, sink);
    const result = await trainer.evaluate(test);
    if (!Number.isFinite(result.loss)) {
      throw new Error(
        `${path}: the test loss of its ${name} is ${result.loss} (accuracy ${(100 * result.accuracy).toFixed(2)} %): its outputs are not finite, ` +
          'so the run that wrote it diverged. Retrain, or resume from an earlier checkpoint with a lower --lr',
      );
    }
    return { ...result, name, data: splits };
  } finally {
    trainer?.dispose();
    model.dispose();
  }
}

/** Reads eval's file before the GPU starts (the CLI hands it to runEval). */
export function checkEvalArgs(args: Args<'eval'>): Promise<HostModelFile> {
  return readModelFile(args.checkpoint, { unmasked: args.unmasked });
}

export async function runEval(argv: readonly string[], checked?: HostModelFile): Promise<EvalResult> {
  const args = parseArgs('eval', argv);
  const result = await evaluateFile(checked ?? (await checkEvalArgs(args)), async () => {
    // A score on the synthetic images would read like an accuracy: eval needs the real test set.
    const splits = await loadDataSplits({ data: args.data, allowSynthetic: false, testOnly: true });
    console.log(splits.description);
    return splits;
  }, args.batchSize, consoleSink, { unmasked: args.unmasked });
  console.log(
    `${args.checkpoint}: ${result.name}, test accuracy ${(100 * result.accuracy).toFixed(2)}%, loss ${result.loss.toFixed(4)} ` +
      `on ${result.count} ${result.data.kind === 'synthetic' ? 'synthetic' : 'CIFAR-10'} test images`,
  );
  return result;
}
