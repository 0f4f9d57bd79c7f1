// scripts/sfp-vs-hard.sh drives `train` and `report` through npx; here a stub npx records each call and plays a
// train that is killed after every epoch, so the script's resuming, skipping and stopping are checked without a GPU.
import { spawnSync } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';

const STUB_NPX = `#!/usr/bin/env bash
echo "$*" >> "$STUB_LOG"
[ "$3" = report ] && exit 0
[ "$STUB_MODE" = refuse ] && exit 2
[ "$STUB_MODE" = fail ] && exit 1
out=""; epochs=""; prev=""
for a in "$@"; do
  [ "$prev" = --out ] && out=$a
  [ "$prev" = --epochs ] && epochs=$a
  prev=$a
done
mkdir -p "$out"
# As train: go on from the epoch the checkpoint was saved at, record the next epoch, then save the checkpoint.
checkpoint="$out/checkpoint.safetensors"
done_epochs=$(node -e "$READ_EPOCH" "$checkpoint")
echo "{\\"epoch\\":$((done_epochs + 1)),\\"testAccuracy\\":0.5}" >> "$out/metrics.jsonl"
if [ "$STUB_MODE" = die-before-last-save ] && [ $((done_epochs + 1)) -ge "$epochs" ] && [ ! -e "$out/died" ]; then
  # Stopped before the end-of-epoch save: the checkpoint left is a mid-epoch one (train saves every 50 steps).
  touch "$out/died"
  node -e "$WRITE_EPOCH" "$checkpoint" "$done_epochs" 1
  exit 1
fi
node -e "$WRITE_EPOCH" "$checkpoint" $((done_epochs + 1))
[ $((done_epochs + 1)) -ge "$epochs" ]
`;

// A checkpoint's position, as train writes it: the safetensors length, then a header whose metadata holds epoch and step.
const READ_EPOCH = `const fs = require('fs');
try { const b = fs.readFileSync(process.argv[1]); console.log(JSON.parse(b.subarray(8, 8 + Number(b.readBigUInt64LE(0))).toString()).__metadata__.epoch); }
catch { console.log(0); }`;
const WRITE_EPOCH = `const header = Buffer.from(JSON.stringify({ __metadata__: { epoch: process.argv[2], step: process.argv[3] ?? '0' } }));
const size = Buffer.alloc(8);
size.writeBigUInt64LE(BigInt(header.length));
require('fs').writeFileSync(process.argv[1], Buffer.concat([size, header]));`;

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'sfp-vs-hard-'));
  await mkdir(join(root, 'scripts'));
  await mkdir(join(root, 'bin'));
  await copyFile('scripts/sfp-vs-hard.sh', join(root, 'scripts/sfp-vs-hard.sh'));
  await writeFile(join(root, 'bin/npx'), STUB_NPX);
  await chmod(join(root, 'bin/npx'), 0o755);
});

function runScript(args: string[], mode = 'progress') {
  const result = spawnSync('bash', [join(root, 'scripts/sfp-vs-hard.sh'), ...args], {
    env: {
      ...process.env,
      PATH: `${join(root, 'bin')}:${process.env.PATH}`,
      STUB_LOG: join(root, 'calls'),
      STUB_MODE: mode,
      READ_EPOCH,
      WRITE_EPOCH,
      SFP_RETRY_SECONDS: '0',
    },
    encoding: 'utf8',
  });
  return { status: result.status, stderr: result.stderr };
}

const calls = async () => (await readFile(join(root, 'calls'), 'utf8').catch(() => '')).trim().split('\n').filter(Boolean);

describe('scripts/sfp-vs-hard.sh', () => {
  it('trains the baseline, then SFP and hard pruning from its checkpoint, resuming each run after every stop, then reports', async () => {
    expect(runScript(['resnet56', '0.4', '2', '1']).status).toBe(0);
    const fineTune = '--model resnet56 --pretrained results/resnet56-onecycle2/checkpoint.safetensors --sfp-rate 0.4 --schedule cosine --lr 0.02 --warmup-epochs 0 --bn-recalibrate 50 --checkpoint-every 50';
    expect(await calls()).toEqual([
      'tsx src/cli/main.ts train --model resnet56 --lr 0.2 --schedule onecycle --checkpoint-every 50 --epochs 2 --out results/resnet56-onecycle2',
      'tsx src/cli/main.ts train --model resnet56 --lr 0.2 --schedule onecycle --checkpoint-every 50 --epochs 2 --out results/resnet56-onecycle2 --resume results/resnet56-onecycle2/checkpoint.safetensors',
      `tsx src/cli/main.ts train ${fineTune} --epochs 1 --out results/resnet56-sfp40-ft1`,
      `tsx src/cli/main.ts train ${fineTune} --hard-prune --epochs 1 --out results/resnet56-hard40-ft1`,
      'tsx src/cli/main.ts report --run results/resnet56-onecycle2 --run results/resnet56-sfp40-ft1 --run results/resnet56-hard40-ft1',
      'tsx src/cli/main.ts report --compare baseline=results/resnet56-onecycle2,sfp=results/resnet56-sfp40-ft1,hard=results/resnet56-hard40-ft1 --paper auto',
    ]);
    // Run again: every run has its last epoch, so only the reports are made again.
    expect(runScript(['resnet56', '0.4', '2', '1']).status).toBe(0);
    expect((await calls()).slice(6).map((c) => c.split(' ')[2])).toEqual(['report', 'report']);
  });

  it("resumes a run stopped after its last epoch's record but before the checkpoint that follows it", async () => {
    expect(runScript(['resnet20', '0.3', '2', '1'], 'die-before-last-save').status).toBe(0);
    const baseline = 'tsx src/cli/main.ts train --model resnet20 --lr 0.2 --schedule onecycle --checkpoint-every 50 --epochs 2 --out results/resnet20-onecycle2';
    const resume = ' --resume results/resnet20-onecycle2/checkpoint.safetensors';
    // Epoch 2 is recorded by the second call, which stops before saving: a third call trains it again from the epoch-1 checkpoint.
    expect((await calls()).slice(0, 3)).toEqual([baseline, baseline + resume, baseline + resume]);
    // Each fine-tune stops once the same way, and is tried again.
    expect((await calls()).map((c) => c.split(' ')[2])).toEqual(['train', 'train', 'train', 'train', 'train', 'train', 'train', 'report', 'report']);
  });

  it('goes on through any number of stops that each record an epoch', async () => {
    // Four baseline epochs: three stops in a row, each after an epoch, then the fourth finishes the stage.
    expect(runScript(['resnet20', '0.3', '4', '1']).status).toBe(0);
    expect((await calls()).filter((c) => c.includes('--out results/resnet20-onecycle4'))).toHaveLength(4);
  });

  it('stops, leaving the records alone, where epochs are recorded but the checkpoint is gone', async () => {
    await mkdir(join(root, 'results/resnet20-onecycle2'), { recursive: true });
    await writeFile(join(root, 'results/resnet20-onecycle2/metrics.jsonl'), '{"epoch":1,"testAccuracy":0.5}\n');
    const result = runScript(['resnet20', '0.3', '2', '1']);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('results/resnet20-onecycle2 records epoch 1 but has no checkpoint.safetensors');
    expect(await calls()).toEqual([]);
    expect(await readFile(join(root, 'results/resnet20-onecycle2/metrics.jsonl'), 'utf8')).toBe('{"epoch":1,"testAccuracy":0.5}\n');
  });

  it('stops at once when train refuses its arguments, and after three failed tries otherwise', async () => {
    const refused = runScript(['resnet20', '0.3', '2', '1'], 'refuse');
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('train refused its arguments');
    expect(await calls()).toHaveLength(1);
    const failed = runScript(['resnet20', '0.3', '2', '1'], 'fail');
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain('train stopped 3 times before epoch 2 of results/resnet20-onecycle2');
    expect(await calls()).toHaveLength(4);
  });

  it('names its arguments when given too few', () => {
    const result = runScript(['resnet56', '0.4']);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('usage: bash scripts/sfp-vs-hard.sh MODEL RATE BASELINE_EPOCHS FINETUNE_EPOCHS [OUT_ROOT]');
  });
});
