/** `train`: a CIFAR ResNet on CIFAR-10 (or the synthetic fallback), optionally with SFP or hard pruning. */
import { mkdir, appendFile, writeFile, access, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ArgsError, argvOf, commands, flagName, parseArgs, shellCommand, wasGiven, type Args } from './args.js';
import { cifarResNet, type CifarResNet } from '../models/resnet.js';
import { SGD } from '../optim/sgd.js';
import { LrSchedule, type ScheduleOptions } from '../optim/schedule.js';
import { Trainer, type EpochRecord, type RunStore, type TrainerState } from '../train/trainer.js';
import { LoaderSource } from '../train/sources.js';
import { pruningHooks } from '../train/pruning.js';
import { FilterPruner, FilterMasks } from '../prune/sfp.js';
import { loadDataSplits, type DataSplits } from '../data/node-files.js';
import type { LoadedCheckpoint } from '../io/checkpoint.js';
import { cifarShapeOf, loadCheckpoint, refuseCompactModel, saveCheckpoint } from '../io/checkpoint-files.js';
import { claimFolder, fileSha256, folderHolder, outputFolderProblem, sameFile, writeFileAtomic } from '../io/files.js';
import { parseRunRecord, type RunRecord } from '../report/runs.js';
import { terminalSink } from './terminal.js';
import type { ProgressSink } from '../train/progress.js';

export const CHECKPOINT_FILE = 'checkpoint.safetensors';
export const METRICS_FILE = 'metrics.jsonl';
export const RUN_FILE = 'run.json';
const DEFAULT_OUT = 'runs/train';

/** Flags with the output folder settled: --out as given, else the resumed checkpoint's own folder, else runs/train. */
type TrainArgs = Args<'train'> & { out: string };

function withOutput(args: Args<'train'>): TrainArgs {
  return { ...args, out: args.out ?? (args.resume ? dirname(args.resume) : DEFAULT_OUT) };
}

export function scheduleFrom(args: Args<'train'>): LrSchedule {
  const options: ScheduleOptions = {
    kind: args.schedule,
    lr: args.lr,
    epochs: args.epochs,
    milestones: args.milestones,
    gamma: args.gamma,
    warmupEpochs: args.warmupEpochs,
    warmupShape: args.warmupShape,
  };
  return new LrSchedule(options);
}

/** The settings a resumed run must share with the run it continues. */
export function configOf(args: Args<'train'>): Record<string, unknown> {
  const { resume: _resume, out: _out, data: _data, checkpointEvery: _every, maxSteps: _max, ...rest } = args;
  return rest;
}

class NodeRunStore implements RunStore {
  constructor(
    readonly dir: string,
    private readonly config: Record<string, unknown>,
    private readonly pruner: FilterPruner | null,
  ) {}

  async appendMetrics(record: EpochRecord): Promise<void> {
    await appendFile(join(this.dir, METRICS_FILE), JSON.stringify(record) + '\n');
  }

  async saveCheckpoint(state: TrainerState): Promise<void> {
    const { masks: _m, ...extra } = state.extra;
    await saveCheckpoint(join(this.dir, CHECKPOINT_FILE), {
      model: state.stateDict,
      optimizer: state.momentum,
      masks: this.pruner?.masks?.byName() ?? new Map(),
      meta: { epoch: state.epoch, step: state.step, config: this.config, optimizerSteps: state.optimizerSteps, ...extra },
    });
  }
}

/** Puts a loaded checkpoint's weights, momentum, masks and position into a fresh run. */
export function restore(checkpoint: LoadedCheckpoint, model: CifarResNet, optimizer: SGD, trainer: Trainer, pruner: FilterPruner | null): void {
  const problem = positionProblem(checkpoint);
  if (problem) throw new Error(problem); // before anything is loaded into the run
  model.loadStateDict(checkpoint.model);
  optimizer.loadVelocity(model.namedParameters(), checkpoint.optimizer);
  optimizer.stepCount = Number(checkpoint.meta.optimizerSteps ?? 0);
  if (pruner && checkpoint.masks.size) {
    pruner.restore(FilterMasks.fromByName(checkpoint.masks));
  }
  const { epoch, step, loader, config: _c, optimizerSteps: _o, ...extra } = checkpoint.meta as Record<string, unknown>;
  try {
    trainer.train.setState(loader);
  } catch (error) {
    // The usual cause: other data than the run read (another --data, or the synthetic fallback).
    throw new Error(`${(error as Error).message}; resume with the data the run was trained on (--data or CIFAR10_DIR)`);
  }
  trainer.resumeAt(Number(epoch), Number(step), extra);
}

/** The train command rebuilt from a run's config (as its checkpoint keeps it), for runs without run.json. */
export function trainCommandOf(config: Record<string, unknown>, out: string, data?: string): string {
  return shellCommand('train', argvOf('train', { ...behaviourBeforeFlags(config), ...config, out, data }));
}

/**
 * Writes run.json: how the run was started (the command, config, data and time), so that a report prints the
 * command that was run rather than a reconstruction. A resume adds its own command to `resumes`; a resume of a
 * run that has no run.json yet records the command rebuilt from the config, with an unknown start.
 */
export async function recordRun(flags: Args<'train'>, argv: readonly string[] | undefined, data: string, pretrainedSha256?: string): Promise<void> {
  const args = withOutput(flags);
  const path = join(args.out, RUN_FILE);
  const config = configOf(args);
  const now = new Date().toISOString();
  const command = shellCommand('train', argv ?? argvOf('train', args));
  let record: RunRecord = { command, config, data, startedAt: now, ...(pretrainedSha256 && { pretrainedSha256 }) };
  if (args.resume) {
    const previous: RunRecord = (await exists(path))
      ? parseRunRecord(await readFile(path, 'utf8'), path)
      : { command: trainCommandOf(config, args.out, args.data), config, data, startedAt: null };
    record = { ...previous, resumes: [...(previous.resumes ?? []), { command, startedAt: now }] };
  }
  await writeFileAtomic(path, new TextEncoder().encode(JSON.stringify(record, null, 1) + '\n'));
}

/** What a training run leaves in memory, for callers that continue with the model (the pipeline). */
export interface TrainRun {
  records: EpochRecord[];
  model: CifarResNet;
  optimizer: SGD;
  trainer: Trainer;
  pruner: FilterPruner | null;
  data: DataSplits;
  checkpoint: string;
  metrics: string;
  /** Releases the model, momentum, masks and the trainer's counters (the files stay). */
  dispose(): void;
}

export interface TrainOptions {
  sink?: ProgressSink;
  /** Already loaded data (else --data is resolved and loaded). */
  data?: DataSplits;
  /** The command line's flags, for run.json (else they are rebuilt from the parsed flags). */
  argv?: readonly string[];
  /** Start afresh even where --out holds a run's checkpoint (the pipeline owns its folder); else that is refused. */
  replaceRun?: boolean;
  /** What checkTrainArgs gave for these flags, when the caller ran it already (the CLI, before starting the GPU). */
  checked?: CheckedTrainArgs;
}

/** The pruning rate the flags ask for (one, or one per stage), or null for a dense run; wrong combinations are usage errors. */
export function pruningRate(args: Args<'train'>): number | number[] | null {
  if (args.hardPrune && args.asymptotic) throw new ArgsError('train: --asymptotic grows the rate from 0, but hard pruning keeps the masks it chose before training, at rate 0 (drop one of them)');
  if (args.hardPrune && args.pruneEverySteps > 0) throw new ArgsError('train: --prune-every-steps re-chooses soft masks; hard pruning keeps its first masks (drop one of them)');
  const stageRates = args.stageRates ?? [];
  if (stageRates.length > 0 && args.sfpRate > 0) throw new ArgsError('train: give --sfp-rate or --stage-rates, not both');
  // Every CIFAR ResNet has three stages (16, 32, 64 channels): checked here, before anything is loaded or created.
  if (stageRates.length > 0 && stageRates.length !== 3) throw new ArgsError(`train: --stage-rates needs one rate per stage of ${args.model} (3), got ${stageRates.length}`);
  if (stageRates.length > 0) return stageRates;
  if (args.sfpRate > 0) return args.sfpRate;
  const needsRate = (['hardPrune', 'skipStem', 'skipLast', 'coupled', 'asymptotic'] as const).filter((k) => args[k]).map((k) => `--${flagName(k)}`);
  if (args.bnRecalibrate > 0) needsRate.push('--bn-recalibrate');
  if (args.pruneEverySteps > 0) needsRate.push('--prune-every-steps');
  for (const key of ['criterion', 'pruneEvery'] as const) if (wasGiven(args, key)) needsRate.push(`--${flagName(key)}`);
  if (needsRate.length > 0) {
    throw new ArgsError(`train: ${needsRate.join(', ')} ${needsRate.length === 1 ? 'needs' : 'need'} --sfp-rate or --stage-rates (a dense run prunes nothing)`);
  }
  return null;
}

/** The pruner the flags ask for, or null for a dense run; `rate` is pruningRate(args) when already known. */
export function prunerFor(model: CifarResNet, args: Args<'train'>, rate = pruningRate(args)): FilterPruner | null {
  if (rate === null) return null;
  const stages = model.widths.length;
  if (Array.isArray(rate) && rate.length !== stages) {
    throw new ArgsError(`train: --stage-rates needs one rate per stage of ${args.model} (${stages}), got ${rate.length}`);
  }
  return new FilterPruner(model, {
    rate,
    mode: args.hardPrune ? 'hard' : 'soft',
    criterion: args.criterion,
    skipStem: args.skipStem,
    skipLast: args.skipLast,
    coupled: args.coupled,
    asymptotic: args.asymptotic,
  });
}

/** The checkpoint --pretrained names, refused when its run trained another model. */
async function loadPretrained(path: string, model: string): Promise<LoadedCheckpoint> {
  const pretrained = await loadCheckpoint(path);
  refuseCompactModel(pretrained, `--pretrained ${path}`);
  const recorded = (pretrained.meta.config as { model?: unknown } | undefined)?.model;
  // A plain state dict (PyTorch's save_file) records no config: its tensors tell the depth.
  const trainedModel = typeof recorded === 'string' ? recorded : `resnet${cifarShapeOf(pretrained, `--pretrained ${path}`).depth}`;
  if (trainedModel !== model) {
    throw new ArgsError(`--pretrained ${path} holds a ${trainedModel}, not the ${model} this run trains: pass --model ${trainedModel}, or a ${model} checkpoint`);
  }
  return pretrained;
}

/** Why a checkpoint holds no training position to continue from (and, with `needConfig`, no settings), or null. */
function positionProblem(checkpoint: LoadedCheckpoint, needConfig = false): string | null {
  const { epoch, step, loader, config } = checkpoint.meta as Record<string, unknown>;
  const hasConfig = typeof config === 'object' && config !== null;
  if ((hasConfig || !needConfig) && Number.isInteger(epoch) && Number.isInteger(step) && typeof loader === 'object' && loader !== null) return null;
  return `the checkpoint holds no training settings or position (config ${hasConfig ? 'set' : 'missing'}, epoch ${String(epoch)}, step ${String(step)}, loader ${loader ? 'set' : 'missing'}): was it written by train?`;
}

/** Whether a schedule starts with --warmup-epochs of warm-up (the schedules the flag table allows it with). */
function hasWarmup(schedule: unknown): boolean {
  return (commands.train.flags['warmup-epochs'].onlyWith.values as readonly string[]).includes(String(schedule));
}

/** For a config written before a flag existed, the setting that gives what the run did then, where it differs from the flag's default. */
function behaviourBeforeFlags(config: Record<string, unknown>): Record<string, unknown> {
  const warmsUp = hasWarmup(config.schedule) && Number(config.warmupEpochs ?? 1) > 0;
  // Before --warmup-shape, warm-up ramped from lr/10 to lr.
  return warmsUp ? { warmupShape: 'linear' } : {};
}

/** A recorded run config completed as the run had it: a setting it does not record is a flag added since (its default, or what the code did before the flag). */
function completeConfig(recorded: Record<string, unknown>): Record<string, unknown> {
  const config = { ...configOf(parseArgs('train', [])), ...behaviourBeforeFlags(recorded), ...recorded };
  // An empty --stage-rates (once accepted) meant none: recorded as [], now written by leaving the flag out.
  if (Array.isArray(config.stageRates) && config.stageRates.length === 0) delete config.stageRates;
  return config;
}

/** Each setting in which `config` differs from a recorded run's, named as its flag ("--lr was 0.1, now 0.2"). */
function configDifferences(recorded: Record<string, unknown>, config: Record<string, unknown>): string[] {
  const saved = completeConfig(recorded);
  const shown = (v: unknown) => (v === undefined ? '(not given)' : Array.isArray(v) ? v.join(',') : String(v));
  // A path names the same file however it is spelled (relative to the same folder, or absolute).
  const comparable = (key: string, v: unknown) => (key === 'pretrained' && typeof v === 'string' ? resolve(v) : v);
  return [...new Set([...Object.keys(saved), ...Object.keys(config)])]
    .filter((key) => JSON.stringify(comparable(key, saved[key])) !== JSON.stringify(comparable(key, config[key])))
    .map((key) => `--${flagName(key)} was ${shown(saved[key])}, now ${shown(config[key])}`);
}

/** The checkpoint --resume names, refused when it holds no position, its run was trained with other settings (each named as its flag), or it has finished. */
async function loadResumed(path: string, args: TrainArgs): Promise<LoadedCheckpoint> {
  const checkpoint = await loadCheckpoint(path);
  const problem = positionProblem(checkpoint, true);
  if (problem) throw new ArgsError(`--resume ${path}: ${problem}`);
  const recorded = checkpoint.meta.config as Record<string, unknown>;
  const differences = configDifferences(recorded, configOf(args));
  if (differences.length) {
    const command = shellCommand('train', [...argvOf('train', { ...completeConfig(recorded), out: dirname(path) }), '--resume', path]);
    throw new ArgsError(`--resume ${path}: the run was trained with other settings (${differences.join('; ')}); resume it with its own settings: ${command}`);
  }
  const { epoch, step } = checkpoint.meta as { epoch: number; step: number };
  if (epoch >= args.epochs && step === 0) {
    throw new ArgsError(
      `--resume ${path}: the run has finished its ${args.epochs} epochs (a resumed run keeps its schedule); ` +
        `to train on from its weights, start a new run: --pretrained ${path} --out <another folder>`,
    );
  }
  return checkpoint;
}

/** The schedule and optimizer flags that would silently do something else than asked. */
function scheduleProblem(flags: Args<'train'>): string | null {
  if (hasWarmup(flags.schedule) && flags.warmupEpochs > flags.epochs) {
    return `--warmup-epochs ${flags.warmupEpochs} is longer than the run (--epochs ${flags.epochs}): it would train at the warm-up rate throughout; give fewer warm-up epochs`;
  }
  const unreached = flags.milestones.filter((m) => m >= flags.epochs);
  if (flags.schedule === 'multistep' && wasGiven(flags, 'milestones') && unreached.length > 0) {
    return `--milestones ${unreached.join(',')} ${unreached.length === 1 ? 'is' : 'are'} not before the end of --epochs ${flags.epochs}, so the rate never changes there; give milestones below ${flags.epochs}`;
  }
  if (wasGiven(flags, 'nesterov') && flags.nesterov && flags.momentum === 0) {
    return '--nesterov needs --momentum above 0 (PyTorch refuses the pair too); give a momentum, or --no-nesterov';
  }
  return null;
}

/** What a short run's defaults do that its user may not expect (said, not refused: `train --epochs 1` is a fair smoke run). */
function scheduleNotes(flags: Args<'train'>): string[] {
  const notes: string[] = [];
  if (hasWarmup(flags.schedule) && flags.warmupEpochs > 0 && flags.warmupEpochs === flags.epochs) {
    notes.push(`the warm-up (--warmup-epochs ${flags.warmupEpochs}) lasts the whole run, so it never trains at --lr ${flags.lr}; --warmup-epochs 0 skips it`);
  }
  if (flags.schedule === 'multistep' && flags.epochs <= flags.milestones[0]) {
    notes.push(`the run ends before the first milestone (${flags.milestones[0]}), so its rate never decays; give --milestones or --schedule cosine for a short run`);
  }
  return notes;
}

/** What the checks before training settle: the pruning rate and the resumed checkpoint, if any. */
export interface CheckedTrainArgs {
  rate: number | number[] | null;
  resumed: LoadedCheckpoint | null;
  pretrained: LoadedCheckpoint | null;
}

/**
 * Every check of the flags and of the --out and --resume files that needs no GPU, so that a mistake is reported
 * before the adapter is sought and before anything is written: the CLI runs it before starting the GPU, and
 * trainModel runs it first.
 */
export async function checkTrainArgs(flags: Args<'train'>, options: Pick<TrainOptions, 'replaceRun'> = {}): Promise<CheckedTrainArgs> {
  const args = withOutput(flags);
  const rate = pruningRate(args);
  // A resumed run keeps the settings it was started with (loadResumed compares them).
  const schedule = args.resume ? null : scheduleProblem(flags);
  if (schedule) throw new ArgsError(`train: ${schedule}`);
  const outProblem = await outputFolderProblem(args.out);
  if (outProblem) throw new ArgsError(`train: --out ${outProblem}`);
  const holder = await folderHolder(args.out);
  if (holder) throw new ArgsError(`train: ${holder}`);
  if (args.resume && !(await exists(args.resume))) throw new ArgsError(`train: --resume ${args.resume}: no such file`);
  const previous = join(args.out, CHECKPOINT_FILE);
  if (!args.resume && !options.replaceRun && (await exists(previous))) {
    // A fresh run would empty metrics.jsonl at once and replace the checkpoint at its first save.
    throw new ArgsError(`train: ${args.out} already holds a run (${previous}): continue it with --resume ${previous}, or give another --out (or delete that folder to start over)`);
  }
  const metrics = join(args.out, METRICS_FILE);
  if (!args.resume && !options.replaceRun && (await nonEmptyFile(metrics))) {
    // Epochs recorded by a run whose checkpoint is gone (or was never kept): a fresh run would empty the file.
    throw new ArgsError(`train: ${args.out} holds another run's epochs (${metrics}) and no checkpoint to resume; give another --out (or delete that file to start over there)`);
  }
  if (args.resume && (await exists(previous)) && !(await sameFile(previous, args.resume))) {
    // The resumed run would replace that checkpoint at its first save and append to its metrics.
    throw new ArgsError(
      `train: --resume ${args.resume} would write its checkpoints to ${previous}, which holds another checkpoint; ` +
        (resolve(args.out) === resolve(dirname(args.resume))
          ? `resume ${previous} itself, or copy ${args.resume} into an empty folder and resume it there`
          : "leave --out out to continue in the checkpoint's folder, or name an empty folder to continue the run there"),
    );
  }
  if (!args.resume) return { rate, resumed: null, pretrained: args.pretrained ? await loadPretrained(args.pretrained, args.model) : null };
  const resumed = await loadResumed(args.resume, args);
  const runFile = join(args.out, RUN_FILE);
  if (await exists(runFile)) {
    // run.json is what reports read the run's settings from: it must describe the run being continued.
    const differences = configDifferences(parseRunRecord(await readFile(runFile, 'utf8'), runFile).config, configOf(args));
    if (differences.length) {
      throw new ArgsError(`train: ${runFile} records another run (${differences.join('; ')}); continue the run in an empty folder (--out), or in the folder of its own run.json`);
    }
  }
  return { rate, resumed, pretrained: null };
}

/** The `train` command on parsed flags. */
export async function trainModel(flags: Args<'train'>, options: TrainOptions = {}): Promise<TrainRun> {
  const args = withOutput(flags);
  const sink = options.sink ?? terminalSink();
  const { rate, resumed, pretrained } = options.checked ?? (await checkTrainArgs(flags, options)); // before the data is read
  const data = options.data ?? (await loadDataSplits({ data: args.data }));
  sink.line(data.description);
  await mkdir(args.out, { recursive: true });
  const config = configOf(args);
  const model = cifarResNet(args.model, args.seed);
  const optimizer = new SGD(model.parameters(), {
    lr: args.lr,
    momentum: args.momentum,
    weightDecay: args.weightDecay,
    nesterov: args.nesterov && args.momentum > 0,
  });
  const train = new LoaderSource(data.train, { batchSize: args.batchSize, train: true, seed: args.seed });
  const test = new LoaderSource(data.test, { batchSize: 500, train: false });
  const pruner = prunerFor(model, args, rate);
  // Its own loader, restarted for every recalibration, so the training batches do not depend on it.
  const recalibrate =
    args.bnRecalibrate > 0
      ? { source: new LoaderSource(data.train, { batchSize: args.batchSize, train: true, seed: args.seed + 1 }), batches: args.bnRecalibrate }
      : undefined;
  const hooks = pruner
    ? pruningHooks(pruner, { epochs: args.epochs, pruneEvery: args.pruneEvery, pruneEverySteps: args.pruneEverySteps, log: (t) => sink.line(t), recalibrate }, test)
    : {};
  const store = new NodeRunStore(args.out, config, pruner);
  const trainer = new Trainer(model, optimizer, train, test, { epochs: args.epochs, schedule: scheduleFrom(args), maxSteps: args.maxSteps || undefined, checkpointEvery: args.checkpointEvery }, store, sink, hooks);
  // From here on the run writes into its folder.
  const release = await claimFolder(args.out);
  let records: EpochRecord[];
  try {
    if (resumed) {
      restore(resumed, model, optimizer, trainer, pruner);
      sink.line(`resuming from ${args.resume} at epoch ${trainer.epoch + 1}, step ${trainer.step}`);
    } else {
      if (pretrained) {
        // Before trainer.run(): the pruning hooks choose their first masks from these weights.
        model.loadStateDict(pretrained.model);
        sink.line(`starting from the weights of ${args.pretrained} (trained ${String(pretrained.meta.epoch ?? '?')} epochs)`);
      }
      await writeFile(join(args.out, METRICS_FILE), '');
    }
    await recordRun(args, options.argv, data.description, pretrained ? await fileSha256(args.pretrained!, 'checkpoint') : undefined);
    sink.line(`training ${args.model} for ${args.epochs} epochs, batch ${args.batchSize}, ${args.schedule} schedule, lr ${args.lr}` +
      (pruner ? `, ${pruner.mode} pruning at ${rate} (${args.criterion})` : ''));
    for (const note of scheduleNotes(flags)) sink.line(`note: ${note}`);
    records = await trainer.run();
  } finally {
    await release();
  }
  const paths = { checkpoint: join(args.out, CHECKPOINT_FILE), metrics: join(args.out, METRICS_FILE) };
  sink.line(`checkpoint: ${paths.checkpoint}; metrics: ${paths.metrics}`);
  const dispose = () => {
    trainer.dispose();
    pruner?.dispose();
    optimizer.dispose();
    model.dispose();
  };
  return { records, model, optimizer, trainer, pruner, data, ...paths, dispose };
}

export async function runTrain(argv: readonly string[], checked?: CheckedTrainArgs): Promise<EpochRecord[]> {
  return (await trainModel(parseArgs('train', argv), { argv, checked })).records;
}

export async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

async function nonEmptyFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile() && s.size > 0, () => false);
}
