// train's guards for finished work: a fresh run into a folder that holds a run's checkpoint is refused
// before anything is read or written, since it would empty metrics.jsonl and replace the checkpoint; a
// resume with other settings is refused, naming each flag that differs.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkTrainArgs, configOf, trainCommandOf, trainModel } from '../../src/cli/train.js';
import { compactCheckpoint } from '../../src/cli/compact.js';
import { COMPACT_FORMAT } from '../../src/prune/compact.js';
import { saveCheckpoint } from '../../src/io/checkpoint-files.js';
import { parseArgs } from '../../src/cli/args.js';
import { syntheticCifar10 } from '../../src/data/synthetic.js';
import type { DataSplits } from '../../src/data/node-files.js';

const silent = { status: () => {}, line: () => {} };
const data: DataSplits = { train: syntheticCifar10(16, 1), test: syntheticCifar10(8, 2), kind: 'synthetic', dir: '', description: 'synthetic' };
const dirs: string[] = [];

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('train into a folder that holds a run', () => {
  it('is refused, naming --resume with the checkpoint, and leaves the checkpoint and metrics as they were', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-train-out-'));
    dirs.push(out);
    const checkpoint = join(out, 'checkpoint.safetensors');
    await writeFile(checkpoint, 'weights of a long run');
    await writeFile(join(out, 'metrics.jsonl'), '{"epoch":1}\n');
    const args = parseArgs('train', ['--model', 'resnet20', '--epochs', '1', '--batch-size', '8', '--max-steps', '1', '--out', out]);
    await expect(trainModel(args, { sink: silent, data })).rejects.toThrow(`continue it with --resume ${checkpoint}, or give another --out`);
    expect(await readFile(checkpoint, 'utf8')).toBe('weights of a long run');
    expect(await readFile(join(out, 'metrics.jsonl'), 'utf8')).toBe('{"epoch":1}\n');
  });

  it('is refused where a run recorded epochs but left no checkpoint, and the records stay; a run that recorded none may start again there', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-train-records-'));
    dirs.push(out);
    await writeFile(join(out, 'metrics.jsonl'), '{"epoch":1}\n');
    await writeFile(join(out, 'run.json'), '{"command":"an earlier run"}\n');
    const args = parseArgs('train', ['--epochs', '1', '--batch-size', '8', '--max-steps', '1', '--out', out]);
    await expect(checkTrainArgs(args)).rejects.toThrow(`holds another run's epochs (${join(out, 'metrics.jsonl')}) and no checkpoint to resume`);
    expect(await readFile(join(out, 'metrics.jsonl'), 'utf8')).toBe('{"epoch":1}\n');
    // A run that failed before its first epoch's record (its run.json written, its metrics empty) is no run to keep.
    await writeFile(join(out, 'metrics.jsonl'), '');
    await expect(checkTrainArgs(args)).resolves.toMatchObject({ resumed: null });
  });

  it('by a pipeline is refused unless the folder is new, empty or a pipeline made it (its pipeline.json)', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-pipeline-out-'));
    dirs.push(out);
    const { checkPipelineArgs } = await import('../../src/cli/pipeline.js');
    await expect(checkPipelineArgs(parseArgs('pipeline', ['--out', join(out, 'new')]))).resolves.toBeUndefined();
    const args = parseArgs('pipeline', ['--out', out]);
    await expect(checkPipelineArgs(args)).resolves.toBeUndefined();
    await mkdir(join(out, 'train'));
    await writeFile(join(out, 'train', 'checkpoint.safetensors'), 'weights of a long run');
    await expect(checkPipelineArgs(args)).rejects.toThrow(`pipeline: --out ${out} holds files no pipeline wrote (train; no pipeline.json)`);
    await writeFile(join(out, 'pipeline.json'), '{}');
    await expect(checkPipelineArgs(args)).resolves.toBeUndefined();
  });
});

describe('train --resume with other settings', () => {
  it('is refused, naming each flag that differs with its old and new value', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-train-resume-'));
    dirs.push(out);
    const checkpoint = join(out, 'checkpoint.safetensors');
    const common = ['--model', 'resnet20', '--epochs', '4', '--batch-size', '8', '--out', out];
    const config = configOf(parseArgs('train', [...common, '--sfp-rate', '0.3', '--pretrained', 'base.safetensors']));
    // No position at all: refused before the settings are compared.
    await saveCheckpoint(checkpoint, { model: new Map(), optimizer: new Map(), masks: new Map(), meta: { epoch: 1, config } });
    await expect(trainModel(parseArgs('train', [...common, '--resume', checkpoint]), { sink: silent, data })).rejects.toThrow(
      `--resume ${checkpoint}: the checkpoint holds no training settings or position (config set, epoch 1, step undefined, loader missing): was it written by train?`,
    );
    await saveCheckpoint(checkpoint, { model: new Map(), optimizer: new Map(), masks: new Map(), meta: { epoch: 1, step: 0, loader: { position: 0 }, config } });
    const args = parseArgs('train', [...common, '--sfp-rate', '0.4', '--resume', checkpoint]);
    const refusal = (await trainModel(args, { sink: silent, data }).catch((e: Error) => e)) as Error;
    expect(refusal.message).toContain(
      `--resume ${checkpoint}: the run was trained with other settings (--pretrained was base.safetensors, now (not given); --sfp-rate was 0.3, now 0.4); ` +
        'resume it with its own settings: npx tsx src/cli/main.ts train ',
    );
    // The command it prints passes the settings check (and fails later only because this checkpoint holds no weights).
    const printed = refusal.message.split('resume it with its own settings: ')[1].split(' ');
    expect(printed.slice(0, 4)).toEqual(['npx', 'tsx', 'src/cli/main.ts', 'train']);
    expect(printed.slice(-2)).toEqual(['--resume', checkpoint]);
    await expect(trainModel(parseArgs('train', printed.slice(4)), { sink: silent, data })).rejects.toThrow(/keys do not match the model/);
    // The same settings pass the check (and fail later only because this checkpoint holds no weights),
    // the pretrained file spelled another way too.
    for (const pretrained of ['base.safetensors', './base.safetensors', join(process.cwd(), 'base.safetensors')]) {
      const same = parseArgs('train', [...common, '--sfp-rate', '0.3', '--pretrained', pretrained, '--resume', checkpoint]);
      await expect(trainModel(same, { sink: silent, data })).rejects.toThrow(/keys do not match the model/);
    }
  });

  it('a config from before --warmup-shape resumes with the linear warm-up it had, where the schedule warms up', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-train-warmup-'));
    dirs.push(out);
    const checkpoint = join(out, 'checkpoint.safetensors');
    const common = ['--model', 'resnet20', '--epochs', '4', '--batch-size', '8', '--out', out];
    const written = async (flags: string[]) => {
      const { warmupShape: _absent, ...config } = configOf(parseArgs('train', [...common, ...flags]));
      await saveCheckpoint(checkpoint, { model: new Map(), meta: { epoch: 0, step: 3, loader: { position: 0 }, config } });
    };
    const resume = (flags: string[]) => trainModel(parseArgs('train', [...common, ...flags, '--resume', checkpoint]), { sink: silent, data });
    const passesTheCheck = /keys do not match the model/; // fails later only because this checkpoint holds no weights

    await written(['--schedule', 'cosine']);
    await expect(resume(['--schedule', 'cosine'])).rejects.toThrow(/--warmup-shape was linear, now constant\); resume it with its own settings: .* --warmup-shape linear /);
    await expect(resume(['--schedule', 'cosine', '--warmup-shape', 'linear'])).rejects.toThrow(passesTheCheck);
    // A report of such a run without run.json rebuilds the command it ran.
    const { warmupShape: _absent, ...cosine } = configOf(parseArgs('train', ['--schedule', 'cosine']));
    expect(trainCommandOf(cosine, out)).toContain('--schedule cosine --warmup-shape linear');
    // No warm-up to shape: the flag's default is what the run did.
    await written(['--schedule', 'cosine', '--warmup-epochs', '0']);
    await expect(resume(['--schedule', 'cosine', '--warmup-epochs', '0'])).rejects.toThrow(passesTheCheck);
    await written(['--schedule', 'onecycle']);
    await expect(resume(['--schedule', 'onecycle'])).rejects.toThrow(passesTheCheck);
  });

  it('on other data than the run read, says to resume with the data it was trained on', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-train-data-'));
    dirs.push(out);
    const common = ['--model', 'resnet20', '--epochs', '1', '--batch-size', '8', '--warmup-epochs', '0', '--out', out];
    const first = await trainModel(parseArgs('train', [...common, '--max-steps', '1']), { sink: silent, data });
    first.trainer.dispose();
    const other: DataSplits = { ...data, train: syntheticCifar10(24, 1) };
    const resume = parseArgs('train', [...common, '--resume', first.checkpoint]);
    await expect(trainModel(resume, { sink: silent, data: other })).rejects.toThrow(
      /the state is from a loader with count 16; this one has count 24; resume with the data the run was trained on \(--data or CIFAR10_DIR\)/,
    );
  });

  it('an output path that cannot be written is refused before any work: train --out naming a file, compact --out in a missing folder', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-train-outfile-'));
    dirs.push(out);
    const file = join(out, 'notes.txt');
    await writeFile(file, 'not a folder');
    await expect(trainModel(parseArgs('train', ['--model', 'resnet20', '--max-steps', '1', '--out', file]), { sink: silent, data })).rejects.toThrow(
      `train: --out ${file} is a file; it names a folder`,
    );
    // The checkpoint does not exist either: the output is checked first, before minutes of compaction and checking.
    const missing = join(out, 'no-such-folder', 'compact.safetensors');
    await expect(compactCheckpoint(parseArgs('compact', ['--checkpoint', join(out, 'nope.safetensors'), '--out', missing]), { sink: silent, data })).rejects.toThrow(
      `compact: --out ${missing}: the folder ${join(out, 'no-such-folder')} does not exist`,
    );
  });

  it('without --out continues in the checkpoint\'s folder; an --out that holds another run is refused and left as it was', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-train-own-'));
    const other = await mkdtemp(join(tmpdir(), 'sfp-train-other-'));
    dirs.push(out, other);
    const common = ['--model', 'resnet20', '--epochs', '1', '--batch-size', '8', '--warmup-epochs', '0', '--max-steps', '1'];
    const first = await trainModel(parseArgs('train', [...common, '--out', out]), { sink: silent, data });
    first.trainer.dispose();
    await writeFile(join(other, 'checkpoint.safetensors'), 'weights of another run');
    await expect(trainModel(parseArgs('train', [...common, '--resume', first.checkpoint, '--out', other]), { sink: silent, data })).rejects.toThrow(
      `--resume ${first.checkpoint} would write its checkpoints to ${join(other, 'checkpoint.safetensors')}, which holds another checkpoint; leave --out out`,
    );
    expect(await readFile(join(other, 'checkpoint.safetensors'), 'utf8')).toBe('weights of another run');
    const resumed = await trainModel(parseArgs('train', [...common, '--resume', first.checkpoint]), { sink: silent, data });
    resumed.trainer.dispose();
    expect(resumed.checkpoint).toBe(first.checkpoint);
    const run = JSON.parse(await readFile(join(out, 'run.json'), 'utf8'));
    expect(run.resumes).toHaveLength(1);
  });

  it('of another file in a folder that holds a checkpoint is refused: its first save would replace that checkpoint', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-train-backup-'));
    dirs.push(out);
    const common = ['--model', 'resnet20', '--epochs', '2', '--batch-size', '8', '--warmup-epochs', '0', '--max-steps', '1'];
    const first = await trainModel(parseArgs('train', [...common, '--out', out]), { sink: silent, data });
    first.dispose();
    const backup = join(out, 'older.safetensors');
    await writeFile(backup, await readFile(first.checkpoint));
    await writeFile(first.checkpoint, 'the newer checkpoint');
    for (const flags of [['--resume', backup], ['--resume', backup, '--out', out]]) {
      await expect(trainModel(parseArgs('train', [...common, ...flags]), { sink: silent, data })).rejects.toThrow(
        `--resume ${backup} would write its checkpoints to ${first.checkpoint}, which holds another checkpoint; resume ${first.checkpoint} itself, or copy ${backup} into an empty folder`,
      );
    }
    expect(await readFile(first.checkpoint, 'utf8')).toBe('the newer checkpoint');
  });

  it("into a folder whose run.json records another run is refused: reports would describe the wrong run", async () => {
    const own = await mkdtemp(join(tmpdir(), 'sfp-train-own-run-'));
    const foreign = await mkdtemp(join(tmpdir(), 'sfp-train-foreign-run-'));
    dirs.push(own, foreign);
    const common = ['--model', 'resnet20', '--epochs', '2', '--batch-size', '8', '--warmup-epochs', '0', '--max-steps', '1', '--sfp-rate', '0.3'];
    const first = await trainModel(parseArgs('train', [...common, '--out', own]), { sink: silent, data });
    first.dispose();
    // A hard-pruning run stopped before its first checkpoint left only its records.
    const hard = await trainModel(parseArgs('train', [...common, '--hard-prune', '--out', foreign, '--checkpoint-every', '0']), { sink: silent, data });
    hard.dispose();
    await rm(hard.checkpoint);
    const record = await readFile(join(foreign, 'run.json'), 'utf8');
    await expect(trainModel(parseArgs('train', [...common, '--resume', first.checkpoint, '--out', foreign]), { sink: silent, data })).rejects.toThrow(
      `train: ${join(foreign, 'run.json')} records another run (--hard-prune was true, now false); continue the run in an empty folder`,
    );
    expect(await readFile(join(foreign, 'run.json'), 'utf8')).toBe(record);
  });

  it('of a finished run is refused, pointing to --pretrained for training on', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-train-finished-'));
    dirs.push(out);
    const checkpoint = join(out, 'checkpoint.safetensors');
    const common = ['--model', 'resnet20', '--epochs', '4', '--batch-size', '8'];
    const config = configOf(parseArgs('train', common));
    await saveCheckpoint(checkpoint, { model: new Map(), meta: { epoch: 4, step: 0, loader: { position: 0 }, config } });
    await expect(checkTrainArgs(parseArgs('train', [...common, '--resume', checkpoint]))).rejects.toThrow(
      `--resume ${checkpoint}: the run has finished its 4 epochs (a resumed run keeps its schedule); to train on from its weights, start a new run: --pretrained ${checkpoint} --out <another folder>`,
    );
    // Inside its last epoch it is not finished.
    await saveCheckpoint(checkpoint, { model: new Map(), meta: { epoch: 3, step: 5, loader: { position: 0 }, config } });
    await expect(checkTrainArgs(parseArgs('train', [...common, '--resume', checkpoint]))).resolves.toMatchObject({ rate: null });
  });

  it('of a file that is not there says so (not that the folder holds another checkpoint)', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-train-typo-'));
    dirs.push(out);
    await writeFile(join(out, 'checkpoint.safetensors'), 'a run');
    const typo = join(out, 'chekpoint.safetensors');
    await expect(checkTrainArgs(parseArgs('train', ['--resume', typo]))).rejects.toThrow(`train: --resume ${typo}: no such file`);
  });

  it('of a run recorded with settings refused today (an empty --stage-rates, milestones past its end) still resumes', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-train-older-rules-'));
    dirs.push(out);
    const checkpoint = join(out, 'checkpoint.safetensors');
    const common = ['--epochs', '4', '--batch-size', '8', '--milestones', '2,6'];
    const config = { ...configOf(parseArgs('train', ['--epochs', '4', '--batch-size', '8'])), milestones: [2, 6], stageRates: [] };
    await saveCheckpoint(checkpoint, { model: new Map(), meta: { epoch: 1, step: 0, loader: { position: 0 }, config } });
    await expect(checkTrainArgs(parseArgs('train', [...common, '--resume', checkpoint]))).resolves.toMatchObject({ rate: null });
    // A fresh run with those milestones is refused.
    await expect(checkTrainArgs(parseArgs('train', [...common, '--out', join(out, 'fresh')]))).rejects.toThrow('--milestones 6 is not before the end of --epochs 4');
  });

  it('uses the checks it is handed (the CLI ran them before starting the GPU) rather than reading the checkpoint a second time', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-train-checked-'));
    dirs.push(out);
    const checkpoint = join(out, 'checkpoint.safetensors');
    const args = parseArgs('train', ['--model', 'resnet20', '--epochs', '4', '--batch-size', '8', '--resume', checkpoint]);
    await saveCheckpoint(checkpoint, { model: new Map(), optimizer: new Map(), masks: new Map(), meta: { epoch: 1, step: 0, loader: { position: 0 }, config: configOf(args) } });
    const checked = await checkTrainArgs(args);
    // Read again, the file would now be refused as not safetensors; the run goes on with the checkpoint already read.
    await writeFile(checkpoint, 'replaced after the check');
    await expect(trainModel(args, { sink: silent, data, checked })).rejects.toThrow(/keys do not match the model/);
  });

  it('of a checkpoint written before a flag existed takes that flag\'s default as the run\'s setting', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-train-old-'));
    dirs.push(out);
    const checkpoint = join(out, 'checkpoint.safetensors');
    const common = ['--model', 'resnet20', '--epochs', '4', '--batch-size', '8', '--sfp-rate', '0.3'];
    const { skipStem: _s, skipLast: _l, coupled: _c, asymptotic: _a, bnRecalibrate: _b, pruneEverySteps: _p, ...older } = configOf(parseArgs('train', common));
    await saveCheckpoint(checkpoint, { model: new Map(), optimizer: new Map(), masks: new Map(), meta: { epoch: 1, step: 0, loader: { position: 0 }, config: older } });
    // Past the settings check (this checkpoint holds no weights, which is what stops it).
    await expect(trainModel(parseArgs('train', [...common, '--resume', checkpoint]), { sink: silent, data })).rejects.toThrow(/keys do not match the model/);
    // A flag set away from its default is still a difference.
    await expect(trainModel(parseArgs('train', [...common, '--skip-stem', '--resume', checkpoint]), { sink: silent, data })).rejects.toThrow(
      '--skip-stem was false, now true',
    );
  });
});

describe('train flags that would silently do something else', () => {
  const check = (argv: string[]) => checkTrainArgs(parseArgs('train', [...argv, '--out', join(tmpdir(), 'sfp-never-written')]));

  it('a warm-up as long as the run, milestones the run never reaches, Nesterov without momentum', async () => {
    await expect(check(['--epochs', '2', '--warmup-epochs', '3'])).rejects.toThrow(
      'train: --warmup-epochs 3 is longer than the run (--epochs 2): it would train at the warm-up rate throughout',
    );
    await expect(check(['--epochs', '2', '--schedule', 'cosine', '--warmup-epochs', '2.5'])).rejects.toThrow('--warmup-epochs 2.5 is longer than the run');
    await expect(check(['--epochs', '10', '--milestones', '5,10,30'])).rejects.toThrow(
      'train: --milestones 10,30 are not before the end of --epochs 10, so the rate never changes there; give milestones below 10',
    );
    await expect(check(['--momentum', '0', '--nesterov'])).rejects.toThrow('train: --nesterov needs --momentum above 0');
    // Accepted: the defaults (Nesterov on) with momentum 0, milestones inside the run, a warm-up shorter than it.
    for (const argv of [['--momentum', '0'], ['--epochs', '10', '--milestones', '5,9'], ['--epochs', '2', '--warmup-epochs', '2'], ['--epochs', '1']]) {
      await expect(check(argv), argv.join(' ')).resolves.toMatchObject({ resumed: null });
    }
  });

  it('an empty --stage-rates is refused rather than training a dense model', () => {
    expect(() => parseArgs('train', ['--stage-rates', ''])).toThrow('--stage-rates must be a comma-separated list of numbers in [0, 1)');
  });

  it('a run as short as its warm-up, or shorter than its first default milestone, says so', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-train-note-'));
    dirs.push(out);
    const lines: string[] = [];
    const run = await trainModel(parseArgs('train', ['--epochs', '1', '--batch-size', '8', '--max-steps', '1', '--out', out]), {
      sink: { status: () => {}, line: (l) => lines.push(l) },
      data,
    });
    run.dispose();
    expect(lines).toContain('note: the warm-up (--warmup-epochs 1) lasts the whole run, so it never trains at --lr 0.1; --warmup-epochs 0 skips it');
    expect(lines).toContain('note: the run ends before the first milestone (60), so its rate never decays; give --milestones or --schedule cosine for a short run');
  });
});

describe('compact and export never write over what they read or over a training checkpoint (export: nor a compact model)', () => {
  it('--out naming the --checkpoint, or another training checkpoint, is refused and both files stay as they were', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-compact-over-'));
    dirs.push(out);
    // A training checkpoint as far as the refusal looks (its position in the metadata) and as the commands' checks
    // read it before the GPU (the tensors that give a CIFAR ResNet's shape).
    const run = { checkpoint: join(out, 'checkpoint.safetensors') };
    const config = configOf(parseArgs('train', ['--sfp-rate', '0.3']));
    const shapes: [string, number[]][] = [['conv1.weight', [4, 3, 3, 3]], ['layer1.0.conv1.weight', [4, 4, 3, 3]], ['layer2.0.conv1.weight', [8, 4, 3, 3]], ['layer3.0.conv1.weight', [8, 8, 3, 3]], ['fc.weight', [10, 8]]];
    const model = new Map(shapes.map(([name, shape]) => [name, { dtype: 'f32' as const, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) }]));
    await saveCheckpoint(run.checkpoint, { model, meta: { epoch: 1, step: 0, loader: { position: 0 }, config } });
    const bytes = await readFile(run.checkpoint);
    const other = join(out, 'another-run.safetensors');
    await writeFile(other, bytes);
    const { checkExportArgs } = await import('../../src/cli/export.js');
    // The same file spelled another way: with a ./ inside, and relative to the working folder.
    for (const target of [run.checkpoint, `${out}/./checkpoint.safetensors`, relative(process.cwd(), run.checkpoint)]) {
      await expect(compactCheckpoint(parseArgs('compact', ['--checkpoint', run.checkpoint, '--out', target]), { sink: silent, data })).rejects.toThrow(
        `compact: --out ${target}: it is the --checkpoint being read; writing it would replace that file`,
      );
      await expect(checkExportArgs(parseArgs('export', ['--checkpoint', run.checkpoint, '--out', target]))).rejects.toThrow('it is the --checkpoint being read');
    }
    await expect(compactCheckpoint(parseArgs('compact', ['--checkpoint', run.checkpoint, '--out', other]), { sink: silent, data })).rejects.toThrow(
      `compact: --out ${other}: it holds a training checkpoint, which this would replace`,
    );
    expect(await readFile(run.checkpoint)).toEqual(bytes);
    expect(await readFile(other)).toEqual(bytes);
    // Any other file may be replaced, and compact may rewrite a compact model; export (ONNX) may not.
    await writeFile(join(out, 'model.onnx'), 'an older export');
    await expect(checkExportArgs(parseArgs('export', ['--checkpoint', run.checkpoint, '--out', join(out, 'model.onnx')]))).resolves.toMatchObject({ kind: 'training checkpoint' });
    const compactFile = join(out, 'compact.safetensors');
    await saveCheckpoint(compactFile, { model: new Map(), meta: { format: COMPACT_FORMAT } });
    const { checkCompactArgs } = await import('../../src/cli/compact.js');
    await expect(checkCompactArgs(parseArgs('compact', ['--checkpoint', run.checkpoint, '--out', compactFile]))).resolves.toMatchObject({ kind: 'training checkpoint' });
    await expect(checkExportArgs(parseArgs('export', ['--checkpoint', run.checkpoint, '--out', compactFile]))).rejects.toThrow(
      `export: --out ${compactFile}: it holds a compact model, which this would replace`,
    );
  });
});

describe('two runs into one folder', () => {
  it('a run is refused while another running process holds the folder; a lock left by an ended process is taken over', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-train-lock-'));
    dirs.push(out);
    const flags = ['--epochs', '1', '--batch-size', '8', '--warmup-epochs', '0', '--max-steps', '1', '--out', out];
    // A live process that is not this one: the parent of this test's worker.
    await writeFile(join(out, '.lock'), `${process.ppid}\n`);
    await expect(trainModel(parseArgs('train', flags), { sink: silent, data })).rejects.toThrow(
      `train: ${out} is in use by process ${process.ppid}, which is writing a run there; wait for it to end or stop it`,
    );
    expect(await readFile(join(out, '.lock'), 'utf8')).toBe(`${process.ppid}\n`);
    // A pid no process has: the lock is stale, the run goes ahead and removes it at its end.
    await writeFile(join(out, '.lock'), '2147483646\n');
    const run = await trainModel(parseArgs('train', flags), { sink: silent, data });
    run.dispose();
    await expect(readFile(join(out, '.lock'))).rejects.toThrow(/ENOENT/);
  });
});
