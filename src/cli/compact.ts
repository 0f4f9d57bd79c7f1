/**
 * `compact`: a pruned training checkpoint (weights + masks) → the smaller dense model. Loads the model, zeroes
 * the masked filters (a mid-epoch soft-pruning checkpoint has regrown them; that is reported), builds and
 * prints the CompactionPlan, compacts, and checks on the CIFAR-10 test set (or the synthetic fallback) that
 * the compact model's eval-mode logits equal the masked model's. It refuses to write the file when they do not.
 */
import { ArgsError, parseArgs, type Args } from './args.js';
import type { ProgressSink } from '../train/progress.js';
import { terminalSink } from './terminal.js';
import type { CifarResNet } from '../models/resnet.js';
import { cifarResNetOf, outputReplacesProblem, readModelFile, saveCompactModel, type HostModelFile } from '../io/checkpoint-files.js';
import { loadDataSplits, type DataSplits } from '../data/node-files.js';
import { LoaderSource } from '../train/sources.js';
import { buildCompactionPlan, type CompactionPlan } from '../prune/plan.js';
import { checkEquivalence, compactModel, equivalenceProblem, zeroMaskedFilters, type CompactResNet, type EquivalenceReport, type HostImages } from '../prune/compact.js';
import { compactFlops, compactParameters } from '../prune/flops.js';

/** What compaction leaves in memory: the masked model, its plan and compact model, and the check's report. */
export interface CompactRun {
  report: EquivalenceReport;
  plan: CompactionPlan;
  masked: CifarResNet;
  compact: CompactResNet;
  data: DataSplits;
}

export async function runCompact(argv: readonly string[], checked?: HostModelFile): Promise<EquivalenceReport> {
  return (await compactCheckpoint(parseArgs('compact', argv), { checked })).report;
}

/** The checks of compact's flags and file that need no GPU (the CLI runs them before starting it); the checkpoint is read here, once. */
export async function checkCompactArgs(args: Args<'compact'>): Promise<HostModelFile> {
  const outProblem = await outputReplacesProblem(args.out, args.checkpoint, ['training checkpoint']);
  if (outProblem) throw new ArgsError(`compact: --out ${args.out}: ${outProblem}`);
  return readModelFile(args.checkpoint, { checkpointOnly: true });
}

/** The `compact` command on parsed flags; `data` may be given already loaded, and `checked` what checkCompactArgs returned. */
export async function compactCheckpoint(
  args: Args<'compact'>,
  options: { sink?: ProgressSink; data?: DataSplits; checked?: HostModelFile } = {},
): Promise<CompactRun> {
  const sink = options.sink ?? terminalSink();
  const { checkpoint } = options.checked ?? (await checkCompactArgs(args));
  const model = cifarResNetOf(checkpoint, args.checkpoint);
  model.loadStateDict(checkpoint.model);
  model.eval();
  const masks = checkpoint.masks;
  if (masks.size === 0) sink.line(`${args.checkpoint} has no masks: nothing is pruned, the plan is the identity`);
  const regrown = await zeroMaskedFilters(model, masks);
  if (regrown > 0) {
    sink.line(`note: ${regrown} non-zero weights in masked filters (a checkpoint written mid-epoch in soft mode?); they are zeroed, and the compact model equals the masked model`);
  }
  const plan = await buildCompactionPlan(model, masks);
  sink.line(`compaction plan of depth-${model.depth} ResNet (${args.checkpoint}):`);
  sink.line(plan.toString());

  const compact = await compactModel(model, plan);
  const fullParams = compactParameters(model);
  const params = compact.parameterCount();
  const fullFlops = compactFlops(model).total;
  const flops = compactFlops(model, plan.keptCounts(), plan.streamWidths()).total;
  sink.line(
    `parameters ${fullParams} → ${params} (−${(100 * (1 - params / fullParams)).toFixed(1)} %), ` +
      `FLOPs ${fullFlops.toExponential(3)} → ${flops.toExponential(3)} (−${(100 * (1 - flops / fullFlops)).toFixed(1)} %)`,
  );

  const data = options.data ?? (await loadDataSplits({ data: args.data, testOnly: true }));
  sink.line(data.description);
  const limit = args.checkImages > 0 ? args.checkImages : Infinity;
  const test = new LoaderSource(data.test, { batchSize: args.batchSize, train: false });
  function* batches(): Iterable<HostImages> {
    let seen = 0;
    for (const b of test.batches()) {
      if (seen >= limit) return;
      const size = Math.min(b.size, limit - seen);
      seen += size;
      yield { x: b.x.subarray(0, size * 3 * 32 * 32), shape: [size, 3, 32, 32], y: b.y.subarray(0, size) };
    }
  }
  const report = await checkEquivalence(model, compact, batches());
  sink.line(
    `equivalence on ${report.images} ${data.kind} test images: max |Δlogit| ${report.maxAbsDiff.toExponential(2)} (logits up to ${report.maxAbsLogit.toFixed(2)}), ` +
      `${report.predictionMismatches} predictions differ; accuracy masked ${(100 * report.maskedCorrect / report.images).toFixed(2)} %, ` +
      `compact ${(100 * report.compactCorrect / report.images).toFixed(2)} %`,
  );
  const problem = equivalenceProblem(report);
  if (problem) throw new Error(`the compact model does not match the masked model (${problem}); ${args.out} was not written`);
  await saveCompactModel(args.out, compact, { source: args.checkpoint, equivalence: { ...report, data: data.kind } });
  sink.line(`compact model written to ${args.out}`);
  return { report, plan, masked: model, compact, data };
}
