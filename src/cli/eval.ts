/** `eval`: a training checkpoint's accuracy and loss on the test set. */
import { parseArgs } from './args.js';
import { loadCheckpoint } from '../io/checkpoint-files.js';
import { loadDataSplits } from '../data/node-files.js';
import { cifarResNet, CIFAR_DEPTHS, type CifarResNetName } from '../models/resnet.js';
import { SGD } from '../optim/sgd.js';
import { Trainer, type EvalResult } from '../train/trainer.js';
import { LoaderSource } from '../train/sources.js';
import { LrSchedule } from '../optim/schedule.js';
import { consoleSink } from '../train/progress.js';

export async function runEval(argv: readonly string[]): Promise<EvalResult> {
  const args = parseArgs('eval', argv);
  const checkpoint = await loadCheckpoint(args.checkpoint);
  const config = (checkpoint.meta.config ?? {}) as { model?: string };
  const name = config.model as CifarResNetName | undefined;
  if (!name || !(name in CIFAR_DEPTHS)) {
    throw new Error(`${args.checkpoint}: the checkpoint does not say which model it holds (meta.config.model = ${String(config.model)})`);
  }
  const model = cifarResNet(name);
  model.loadStateDict(checkpoint.model);
  const data = await loadDataSplits({ data: args.data });
  console.log(data.description);
  const test = new LoaderSource(data.test, { batchSize: args.batchSize, train: false });
  const trainer = new Trainer(model, new SGD([], { lr: 0 }), test, test, { epochs: 1, schedule: new LrSchedule({ kind: 'constant', lr: 1, epochs: 1 }) }, null, consoleSink);
  const result = await trainer.evaluate(test);
  console.log(`${args.checkpoint}: ${name}, test accuracy ${(100 * result.accuracy).toFixed(2)}%, loss ${result.loss.toFixed(4)} on ${result.count} images`);
  trainer.dispose();
  return result;
}
