/** `eval`: the test-set accuracy and loss of a training checkpoint's model or of a compact model. */
import { parseArgs } from './args.js';
import { loadModelFile } from '../io/checkpoint-files.js';
import { loadDataSplits, type DataSplits } from '../data/node-files.js';
import { SGD } from '../optim/sgd.js';
import { Trainer, type EvalResult } from '../train/trainer.js';
import { LoaderSource } from '../train/sources.js';
import { LrSchedule } from '../optim/schedule.js';
import { consoleSink, type ProgressSink } from '../train/progress.js';

/** The test-set accuracy and loss of the model in `path` (either kind of file), and what it held. */
export async function evaluateFile(path: string, data: DataSplits, batchSize: number, sink: ProgressSink = consoleSink): Promise<EvalResult & { name: string }> {
  const { model, name } = await loadModelFile(path);
  const test = new LoaderSource(data.test, { batchSize, train: false });
  const trainer = new Trainer(model, new SGD([], { lr: 0 }), test, test, { epochs: 1, schedule: new LrSchedule({ kind: 'constant', lr: 1, epochs: 1 }) }, null, sink);
  try {
    return { ...(await trainer.evaluate(test)), name };
  } finally {
    trainer.dispose();
  }
}

export async function runEval(argv: readonly string[]): Promise<EvalResult> {
  const args = parseArgs('eval', argv);
  const data = await loadDataSplits({ data: args.data });
  console.log(data.description);
  const result = await evaluateFile(args.checkpoint, data, args.batchSize);
  console.log(`${args.checkpoint}: ${result.name}, test accuracy ${(100 * result.accuracy).toFixed(2)}%, loss ${result.loss.toFixed(4)} on ${result.count} images`);
  return result;
}
